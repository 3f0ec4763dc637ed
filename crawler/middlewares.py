"""Offline mirror (ZOL_MIRROR): a downloader middleware that answers every request from a mirror of the site.

ZOL_MIRROR=<dir>: each request is answered from `<dir>/<host>/<path>` (the path exactly as in the URL, percent
encoding kept; 404 when missing) as a real Response under the original URL.
ZOL_MIRROR=http://127.0.0.1:PORT: the request is fetched over real HTTP from `http://127.0.0.1:PORT/<host>/<path>`
through Scrapy's own download handler (so timeouts, 5xx and 429 reach the retry middleware) and the response is
given back under the original URL.
The middleware sits last in the chain, so robots.txt (looked up in the mirror too), offsite filtering, retries
and stats all see the original URL; the spider runs the same code path as live.
"""
from __future__ import annotations

import logging
import mimetypes
from pathlib import Path
from urllib.parse import quote, urlsplit

from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import DeferredSemaphore
from scrapy.exceptions import NotConfigured
from scrapy.http import Headers, Request, Response
from scrapy.responsetypes import responsetypes

logger = logging.getLogger(__name__)

_TEXT_TYPES = {".html": "text/html", ".shtml": "text/html", ".htm": "text/html", ".txt": "text/plain",
               ".json": "application/json"}

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


def _content_type(path: str) -> bytes:
    suffix = Path(path.split("?", 1)[0]).suffix.lower()
    kind = _TEXT_TYPES.get(suffix) or mimetypes.guess_type("x" + suffix)[0] or "application/octet-stream"
    return kind.encode()


class MirrorMiddleware:
    def __init__(self, mirror: str, crawler) -> None:
        self.crawler = crawler
        self.is_http = mirror.startswith(("http://", "https://"))
        self.base = mirror.rstrip("/") if self.is_http else Path(mirror)
        self.netloc = urlsplit(mirror).netloc if self.is_http else None
        self.per_host = max(1, crawler.settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN"))
        self._slots: dict[str | None, DeferredSemaphore] = {}
        if not self.is_http and not self.base.is_dir():
            raise NotConfigured(f"ZOL_MIRROR {mirror} is not a folder")
        logger.info("answering every request from the mirror %s", mirror)

    @classmethod
    def from_crawler(cls, crawler):
        mirror = (crawler.settings.get("ZOL_MIRROR") or "").strip()
        if not mirror:
            raise NotConfigured("ZOL_MIRROR not set: crawling the live site")
        return cls(mirror, crawler)

    async def process_request(self, request: Request, spider=None) -> Response | None:
        if self.is_http and urlsplit(request.url).netloc == self.netloc:
            return None  # already addressed to the mirror server
        relative = mirror_relative_path(request.url)
        self.crawler.stats.inc_value("zol/mirror/requests")
        if self.is_http:
            if relative is None:
                return Response(request.url, status=404, request=request, flags=["mirror"])
            # the file name keeps the URL's percent encoding, so it is quoted once more for a static file server
            mirrored = request.replace(url=f"{self.base}/{quote(relative, safe=_URL_SAFE)}")
            # answered before the downloader's slots: keep their per-host concurrency limit ourselves
            slot = self._slots.setdefault(urlsplit(request.url).hostname, DeferredSemaphore(self.per_host))
            await maybe_deferred_to_future(slot.acquire())
            try:
                response = await self.crawler.engine.downloader.handlers.download_request_async(mirrored)
            finally:
                slot.release()
            return response.replace(url=request.url, request=request, flags=[*response.flags, "mirror"])
        return self._from_folder(request, relative)

    def _from_folder(self, request: Request, relative: str | None) -> Response:
        path = self.base / relative if relative else None
        if path is None or not path.is_file():
            return Response(request.url, status=404, request=request, flags=["mirror"])
        body = path.read_bytes()
        headers = Headers({"Content-Type": _content_type(relative)})
        response_cls = responsetypes.from_args(headers=headers, url=request.url, body=body)
        return response_cls(request.url, status=200, headers=headers, body=body, request=request, flags=["mirror"])

