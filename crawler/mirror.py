"""Offline mirror (ZOL_MIRROR): a download handler that fetches every http(s) URL from a mirror of the site.

ZOL_MIRROR=<dir>: each request is answered from `<dir>/<host>/<path>` (the path exactly as in the URL, percent
encoding kept; 404 when missing) under the original URL. `<dir>/faults.json` ({"<host>/<path>": [503, ...]})
scripts failures: each request for that path takes the next answer of its list, then the file is served. An answer
is an HTTP status, "blocked" (200 with the site's verification page, BLOCKED_PAGE) or "stub" (200 with the ~150-byte
page a client that does not look like a desktop browser gets, STUB_PAGE). `<dir>/redirects.json`
({"<host>/<path>": "https://..."}) answers those paths with a 301 to the URL, every time.
ZOL_MIRROR=http://127.0.0.1:PORT: the request is fetched over real HTTP from `http://127.0.0.1:PORT/<host>/<path>`
by Scrapy's own HTTP handler (time-outs, 5xx, 429 and DOWNLOAD_MAXSIZE as live) and answered under the original URL.
ZOL_MIRROR empty: the live site, through Scrapy's HTTP handler untouched.

Being a download handler, the mirror sits where the network would: every middleware (robots.txt, offsite, retry,
stats) and the downloader's per-host slots (concurrency, DOWNLOAD_DELAY, AutoThrottle) see the original URL and
act as they do live. The folder mirror refuses a file larger than DOWNLOAD_MAXSIZE as the network handler does.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import threading
from pathlib import Path
from urllib.parse import quote, urlsplit

from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler
from scrapy.exceptions import DownloadCancelledError
from scrapy.http import Headers, Request, Response
from scrapy.responsetypes import responsetypes

logger = logging.getLogger(__name__)

FAULTS_FILE = "faults.json"
REDIRECTS_FILE = "redirects.json"
BLOCKED, STUB = "blocked", "stub"  # scripted answers besides HTTP statuses
# what ZOL sends a client it takes for a robot (docs/zol-site.md, "The site in 2026"): a verification page, or a stub
BLOCKED_PAGE = (
    '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="GBK"/>\n<title>您正在进行防刷验证...</title>\n</head>\n'
    '<body>\n<div class="verify-box">\n<h3>您正在进行防刷验证</h3>\n'
    "<p>访问过于频繁，请拖动滑块完成验证后继续访问。</p>\n"
    '<div id="captcha" class="slider"></div>\n</div>\n</body>\n</html>\n'
).encode("gbk")
STUB_PAGE = (
    b'<html><head><meta http-equiv="refresh" content="0;url=https://www.zol.com.cn/"></head>'
    b'<body><script>location.href="https://www.zol.com.cn/";</script></body></html>\n'
)
_TEXT_TYPES = {
    ".html": "text/html",
    ".shtml": "text/html",
    ".htm": "text/html",
    ".txt": "text/plain",
    ".json": "application/json",
}
_URL_SAFE = "/=,;:@!$&'()*+~"


def mirror_relative_path(url: str) -> str | None:
    """`https://detail.zol.com.cn/a/b%5Ec.html` -> `detail.zol.com.cn/a/b%5Ec.html`; None for unsafe paths."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if path.endswith("/"):
        path += "index.html"
    if parts.query:
        path += "?" + parts.query
    relative = f"{parts.hostname or ''}{path}"
    segments = relative.split("/")
    if not parts.hostname or any(seg in ("", ".", "..") for seg in segments) or "\\" in relative:
        return None
    return relative


def content_type(path: str) -> bytes:
    suffix = Path(path.split("?", 1)[0]).suffix.lower()
    kind = _TEXT_TYPES.get(suffix) or mimetypes.guess_type("x" + suffix)[0] or "application/octet-stream"
    return kind.encode()


def scripted_answer(action: int | str) -> tuple[int, bytes]:
    """(status, body) of one scripted answer of faults.json."""
    if action == BLOCKED:
        return 200, BLOCKED_PAGE
    if action == STUB:
        return 200, STUB_PAGE
    return int(action), b"scripted fault"


class ScriptedFaults:
    """faults.json of a mirror folder: path -> answers (statuses, "blocked", "stub"), one per request, before the
    file is served."""

    def __init__(self, path: Path) -> None:
        self.script: dict[str, list[int | str]] = {}
        if path.is_file():
            loaded = json.loads(path.read_text(encoding="utf-8"))
            self.script = {
                str(key): [s if s in (BLOCKED, STUB) else int(s) for s in value] for key, value in loaded.items()
            }
        self.lock = threading.Lock()

    def next_status(self, relative: str) -> int | str | None:
        with self.lock:
            queue = self.script.get(relative)
            return queue.pop(0) if queue else None


def load_redirects(path: Path) -> dict[str, str]:
    """redirects.json of a mirror folder: path -> the URL it is moved to (301)."""
    return {str(k): str(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()} if path.is_file() else {}


class MirrorDownloadHandler:
    lazy = False

    def __init__(self, crawler) -> None:
        self.crawler = crawler
        self.http = HTTP11DownloadHandler(crawler)
        mirror = (crawler.settings.get("ZOL_MIRROR") or "").strip()
        self.mirror = mirror
        self.is_http = mirror.startswith(("http://", "https://"))
        self.base = mirror.rstrip("/") if self.is_http else Path(mirror) if mirror else None
        self.maxsize = crawler.settings.getint("DOWNLOAD_MAXSIZE")
        if self.base is not None and not self.is_http and not self.base.is_dir():
            raise ValueError(f"ZOL_MIRROR {mirror} is not a folder")
        self.faults = ScriptedFaults(self.base / FAULTS_FILE) if isinstance(self.base, Path) else None
        self.redirects = load_redirects(self.base / REDIRECTS_FILE) if isinstance(self.base, Path) else {}
        if mirror:
            logger.info("answering every request from the mirror %s", mirror)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    async def download_request(self, request: Request) -> Response:
        if not self.mirror:
            return await self.http.download_request(request)
        self.crawler.stats.inc_value("zol/mirror/requests")
        relative = mirror_relative_path(request.url)
        if relative is None:
            return Response(request.url, status=404, request=request, flags=["mirror"])
        if self.is_http:
            # the file name keeps the URL's percent encoding, so it is quoted once more for a static file server
            mirrored = request.replace(url=f"{self.base}/{quote(relative, safe=_URL_SAFE)}")
            response = await self.http.download_request(mirrored)
            if "download_latency" in mirrored.meta:  # AutoThrottle reads it from the original request
                request.meta["download_latency"] = mirrored.meta["download_latency"]
            return response.replace(url=request.url, request=request, flags=[*response.flags, "mirror"])
        return self._from_folder(request, relative)

    def _from_folder(self, request: Request, relative: str) -> Response:
        request.meta["download_latency"] = 0.0
        action = self.faults.next_status(relative)
        if action is not None:
            status, body = scripted_answer(action)
            headers = Headers({"Content-Type": b"text/html"}) if status == 200 else None
            response_cls = responsetypes.from_args(headers=headers, url=request.url, body=body)
            return response_cls(
                request.url, status=status, headers=headers, body=body, request=request, flags=["mirror"]
            )
        if relative in self.redirects:
            return Response(
                request.url,
                status=301,
                headers={"Location": self.redirects[relative]},
                request=request,
                flags=["mirror"],
            )
        path = self.base / relative
        if not path.is_file():
            return Response(request.url, status=404, request=request, flags=["mirror"])
        maxsize = request.meta.get("download_maxsize", self.maxsize)
        size = path.stat().st_size
        if maxsize and size > maxsize:
            logger.warning(
                "Cancelling download of %s: expected response size (%d) larger than download max size (%d).",
                request.url,
                size,
                maxsize,
            )
            raise DownloadCancelledError(
                f"Expected to receive {size} bytes which is larger than download max size "
                f"({maxsize}) in request {request}."
            )
        body = path.read_bytes()
        headers = Headers({"Content-Type": content_type(relative)})
        response_cls = responsetypes.from_args(headers=headers, url=request.url, body=body)
        return response_cls(request.url, status=200, headers=headers, body=body, request=request, flags=["mirror"])

    async def close(self) -> None:
        await self.http.close()
