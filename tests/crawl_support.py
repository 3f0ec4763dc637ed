"""Helpers of the crawler tests: a mirror built from the real 2018 pages, a loopback HTTP server with fault
injection, and `scrapy crawl zol` run as a subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "zol-2018"
FIXTURES_2026 = Path(__file__).resolve().parent / "fixtures" / "zol-2026"
CRAWLED_AT = "2018-09-15T00:00:00+00:00"


def fragment_json(fragment: bytes, is_end: int) -> bytes:
    """The AJAX answer as served: the GBK fragment decoded and escaped inside JSON (`\\u…`, `\\/`)."""
    html = fragment.decode("gbk")
    return json.dumps({"list": html, "isEnd": is_end}).replace("/", "\\/").encode("ascii")


def tiny_jpeg(seed: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8 + seed % 5, 6), ((seed * 37) % 256, (seed * 91) % 256, 128)).save(buffer, "JPEG")
    return buffer.getvalue()


@dataclass
class RunResult:
    returncode: int
    out: Path
    stderr: str

    @property
    def written(self) -> Path:
        """Where this run's output is: `out` when the crawl succeeded, else the staging folder it left beside `out`
        (a failed crawl never replaces `out`)."""
        return self.out if self.returncode == 0 else self.out.with_name(f".{self.out.name}.partial")

    @property
    def reviews(self) -> list[dict]:
        path = self.written / "reviews.jsonl"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []

    @property
    def stats(self) -> dict:
        return json.loads((self.written / "crawl_stats.json").read_text(encoding="utf-8"))


def scrapy_command(out: Path, mirror: str, *spider_args: str, settings: tuple[str, ...] = ()) -> tuple[list, dict]:
    # every image of a review (the params' default, 5, is what the model reads); a later -a wins
    command = [sys.executable, "-m", "scrapy", "crawl", "zol", "-a", "crawl_date=2018-09-15"]
    command += ["-a", "max_images_per_review=0"]
    for arg in spider_args:
        command += ["-a", arg]
    for setting in (
        "AUTOTHROTTLE_ENABLED=0",
        "DOWNLOAD_DELAY=0",
        "CONCURRENT_REQUESTS_PER_DOMAIN=8",
        "RETRY_TIMES=2",
        "DOWNLOAD_TIMEOUT=5",
        "RETRY_BACKOFF_BASE=0",
        *settings,
    ):
        command += ["-s", setting]
    env = {
        **os.environ,
        "ZOL_MIRROR": mirror,
        "ZOL_OUT": str(out),
        "ZOL_CRAWLED_AT": CRAWLED_AT,
        "ZOL_LOG_LEVEL": "INFO",
        "PYTHONPATH": str(REPO),
    }
    return command, env


def run_crawl(
    out: Path, mirror: str, *spider_args: str, settings: tuple[str, ...] = (), timeout: float = 120
) -> RunResult:
    command, env = scrapy_command(out, mirror, *spider_args, settings=settings)
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    return RunResult(done.returncode, out, done.stderr)


@dataclass
class Faults:
    """Per-path scripted answers (path = the mirror-relative file): each request pops the next action: an int
    status, "truncate" (a third of the body), "garble" (bytes that are not GBK), ("sleep", seconds), ("body", bytes) (served with 200), or as in a
    mirror's faults.json "blocked" (the verification page) and "stub" (the ~150-byte page)."""

    script: dict[str, list] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_action(self, path: str):
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            actions = self.script.get(path)
            return actions.pop(0) if actions else None


class _QuietServer(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops connections when Scrapy opens many at once
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a client that timed out and hung up
        pass


class MirrorServer:
    """A loopback HTTP server whose root is a mirror folder (`/<host>/<path>`), with fault injection."""

    def __init__(self, root: Path) -> None:
        from crawler.mirror import BLOCKED, REDIRECTS_FILE, STUB, load_redirects, scripted_answer  # scrapy: lazily

        self.root = root
        self.faults = Faults()
        self.log: list[tuple[float, str]] = []  # (monotonic time, path) of every request
        self.headers: list[tuple[str, str | None, str | None]] = []  # (path, Referer, User-Agent) of every request
        faults_file = root / "faults.json"  # the mirror's scripted faults, played as the folder mirror does
        if faults_file.is_file():
            self.faults.script.update(json.loads(faults_file.read_text(encoding="utf-8")))
        self.redirects = load_redirects(root / REDIRECTS_FILE)  # path -> URL, answered with a 301 every time
        self.delay = 0.0  # seconds added to every answer
        self.gate: threading.Event | None = None  # when set to an Event: every answer waits for it (30 s at most)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                raw_path = self.path.split("?", 1)[0]
                path = unquote(raw_path)  # like any static file server
                server.log.append((time.monotonic(), path.lstrip("/")))
                server.headers.append((path.lstrip("/"), self.headers.get("Referer"), self.headers.get("User-Agent")))
                if server.gate is not None:
                    server.gate.wait(30)
                action = server.faults.next_action(path.lstrip("/"))
                time.sleep(server.delay)
                if isinstance(action, tuple) and action[0] == "sleep":  # outlive the client's timeout
                    time.sleep(action[1])
                if isinstance(action, int):
                    return self._send(action, b"fault")
                if action in (BLOCKED, STUB):
                    return self._send(*scripted_answer(action))
                if isinstance(action, tuple) and action[0] == "body":
                    return self._send(200, action[1])
                if path.lstrip("/") in server.redirects:
                    return self._send(301, b"", location=server.redirects[path.lstrip("/")])
                file = server.root / path.lstrip("/")
                if ".." in path or not file.is_file():
                    return self._send(404, b"")
                body = file.read_bytes()
                if action == "truncate":
                    body = body[: len(body) // 3]
                elif action == "garble":
                    body = body.replace("优点".encode("gbk"), b"\xff\xfe", 1)
                self._send(200, body)

            def _send(self, status: int, body: bytes, location: str | None = None) -> None:
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MirrorServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- a small mirror made of the real 2018 pages ---------------------------------------------------------------
RANKING_1 = "detail.zol.com.cn/cell_phone_index/subcate57_list_1.html"
RANKING_2 = "detail.zol.com.cn/cell_phone_index/subcate57_0_list_1_0_1_2_0_2.html"
REVIEW_LIST = "detail.zol.com.cn/1185/1184692/review.shtml"
AJAX_3 = "detail.zol.com.cn/xhr4_Review_GetList_%5EproId=1184692%5Epage=3.html"
AJAX_4 = "detail.zol.com.cn/xhr4_Review_GetList_%5EproId=1184692%5Epage=4.html"
LONG_FIGURES = 2  # figures on each hand-written long page


def _long_page(aid: str) -> bytes:
    """A long-review page following docs/zol-site.md (no real one was saved)."""
    figures = "".join(
        f'<div class="figure"><img src="//pro-fd.zol-img.com.cn/g5/M00/long/{aid}_{i}.jpg"></div>'
        for i in range(LONG_FIGURES)
    )
    html = f"""<html><head><meta charset="GBK"/></head><body>
<h1 class="title">长篇 {aid}</h1><div class="user-info"><span class="name">作者{aid}</span><span class="time">2018-01-09 11:06:57</span></div>
<span class="_j_vote_num">12</span><div class="discuss-btn">3条评论</div>
<div class="total-score"><strong>8.4</strong></div>
<ul class="score-list"><li><span class="label">性价比</span><span class="score-num">8</span></li>
<li><span class="label">性能配置</span><span class="score-num">6</span></li><li><span class="label">电池续航</span><span class="score-num">10</span></li>
<li><span class="label">外观手感</span><span class="score-num">8</span></li><li><span class="label">拍照效果</span><span class="score-num">10</span></li></ul>
<div class="merits-and-faults"><div class="merits"><ol><li>快</li><li>稳</li></ol></div><div class="faults"><ol><li>贵</li></ol></div></div>
<div class="article-box"><div class="article-item"><h4>外观</h4><p>第一段</p>{figures}<p>第二段</p></div>
<div class="article-item"><h4>总结</h4><p>值得买</p></div></div></body></html>"""
    return html.encode("gbk")


def build_fixture_mirror(root: Path) -> dict:
    """Two ranking pages -> product 1184692 -> review.shtml (20) + AJAX page 3 (10, one already on page 1) + an
    empty last page 4; the 17 long reviews' pages; every image. Returns what a crawl of it must find."""
    import re

    review_list = (FIXTURES / "review.shtml").read_bytes()
    fragment = (FIXTURES / "xhr4_review_list_page3.html").read_bytes()
    files: dict[str, bytes] = {
        RANKING_1: (
            '<html><body><div class="hot-words"><a href="/cell_phone/index1234567.shtml">热词</a></div>'
            '<ul id="J_PicMode"><li data-follow-id="p1184692"><a class="pic" href="/cell_phone/index1184692'
            '.shtml"></a><h3><a href="/cell_phone/index1184692.shtml">华为Mate 10</a></h3>'
            '<span class="score">8.6</span><a class="comment-num" href="/1185/1184692/review.shtml">89人点评'
            '</a></li></ul><div class="pagebar"><a class="next" '
            'href="/cell_phone_index/subcate57_0_list_1_0_1_2_0_2.html">下一页</a></div></body></html>'
        ).encode("gbk"),
        RANKING_2: b'<html><body><ul id="J_PicMode"><li data-follow-id="p1184692"><h3><a href="https://detail.zol.com.cn'
        b'/cell_phone/index1184692.shtml">again</a></h3></li></ul></body></html>',
        REVIEW_LIST: review_list,
        AJAX_3: fragment_json(fragment, 0),
        AJAX_4: json.dumps({"list": "", "isEnd": 1}).encode(),
    }
    long_paths = {}
    for match in re.finditer(rb"t\.zol\.com\.cn/57/(\d+)/evaluation_(\d+)\.html", review_list):
        path = f"t.zol.com.cn/57/{match.group(1).decode()}/evaluation_{match.group(2).decode()}.html"
        long_paths[path] = match.group(2).decode()
    for path, aid in long_paths.items():
        files[path] = _long_page(aid)
    image_urls = set(re.findall(rb'data-bigurl="(?:https:)?//([^"]+)"', review_list + fragment))
    image_paths = {url.decode() for url in image_urls}
    image_paths |= {
        f"pro-fd.zol-img.com.cn/g5/M00/long/{aid}_{i}.jpg" for aid in long_paths.values() for i in range(LONG_FIGURES)
    }
    for n, path in enumerate(sorted(image_paths)):
        files[path] = tiny_jpeg(n)
    for path, body in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    return {"long_pages": sorted(long_paths), "images": sorted(image_paths)}


# ---- a small mirror made of the real 2026 page -------------------------------------------------------------------
PRODUCT_2026 = "1427365"
REVIEW_LIST_2026 = "detail.zol.com.cn/1428/1427365/review.shtml"
REDIRECTING_LIST_2026 = "detail.zol.com.cn/0/1427365/review.shtml"  # answered with a 301 to REVIEW_LIST_2026
VERIFICATION_PAGE = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>您正在进行防刷验证...</title></head>'
    '<body><div id="captcha"></div><script src="/verify.js"></script></body></html>'
).encode()
STUB_PAGE = (
    b'<html><head><meta http-equiv="refresh" content="0;url=https://www.zol.com.cn/"></head>'  # not followed
    b'<body><script>location.href="https://www.zol.com.cn/";</script></body></html>\n'
)


def build_2026_mirror(root: Path, missing_original: int = 1) -> dict:
    """A ranking page whose one card links `/0/1427365/review.shtml` (serve it with `redirects_2026`) -> the real
    2026 review list (20 reviews; no AJAX page: none is known for 2026) -> its images: the originals, except the
    last `missing_original` ones, whose crops alone are there. Returns the image URLs by kind."""
    import re

    page = (FIXTURES_2026 / "review.shtml").read_bytes()
    files: dict[str, bytes] = {
        RANKING_1: (
            '<html><body><ul id="J_PicMode"><li data-follow-id="p1427365"><h3><a href="/cell_phone/'
            'index1427365.shtml">苹果iPhone 15 128GB</a></h3><span class="score">9.1</span><a class="comment-num" '
            'href="/0/1427365/review.shtml">9885人点评</a></li></ul></body></html>'
        ).encode("gbk"),
        REVIEW_LIST_2026: page,
    }
    crops = [url.decode() for url in re.findall(rb'data-bigurl="//([^"]+)"', page)]
    originals = [re.sub(r"/t_s\d+x\d+[a-z0-9]*/", "/", url, count=1) for url in crops]
    kept = len(originals) - missing_original
    for n, path in enumerate(originals[:kept] + crops[kept:]):
        files[path] = tiny_jpeg(n)
    for path, body in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    # the 301 as a mirror folder scripts it (for servers that read redirects.json; redirects_2026 sets it too)
    (root / "redirects.json").write_text(json.dumps({REDIRECTING_LIST_2026: "https://" + REVIEW_LIST_2026}))
    return {
        "originals": ["https://" + p for p in originals],
        "crops": ["https://" + p for p in crops],
        "crop_only": ["https://" + p for p in crops[kept:]],
    }


def redirects_2026(server: MirrorServer) -> None:
    server.redirects[REDIRECTING_LIST_2026] = "https://" + REVIEW_LIST_2026


# ---- a real Redis server for the shared-frontier tests ----------------------------------------------------------
class RedisServer:
    """`redis-server` on a free loopback port, in a temporary folder, nothing saved to disk."""

    def __init__(self, folder: Path, port: int = 0) -> None:
        """`port` 0: a free one; else that port (an empty Redis restarted where another one was)."""
        import shutil
        import socket

        executable = shutil.which("redis-server")
        if executable is None:
            raise FileNotFoundError("redis-server is not on PATH (Debian: apt-get install redis-server)")
        self.port = port
        if not port:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
