"""Faults over a loopback server (real HTTP through Scrapy's downloader): retries, 404s, truncated and undecodable
pages, layout drift, duplicates across pages, and a crawl killed midway then resumed with JOBDIR."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crawl_support import (
    AJAX_3,
    AJAX_4,
    FIXTURES,
    LONG_FIGURES,
    REPO,
    REVIEW_LIST,
    RunResult,
    run_crawl,
    scrapy_command,
)

from crawler.output import image_file_name

pytestmark = pytest.mark.slow
EMPTY_PRODUCT = "1234567"
EMPTY_LIST = "detail.zol.com.cn/1235/1234567/review.shtml"
LONG_404 = "t.zol.com.cn/57/1184692/evaluation_1364.html"  # review 1675433
LONG_TRUNCATED = "t.zol.com.cn/57/1165672/evaluation_1303.html"  # review 1675216
MISSING_IMAGE = "pro-fd.zol-img.com.cn/g5/M00/00/06/ChMkJ1nQoqaIEFV-AABlUyZCgvgAAg8lQKvcAYAAGVr853.jpg"  # 1649732's 2nd
FIXTURE_IDS = {
    "1675433",
    "1675216",
    "1673139",
    "1675181",
    "1675312",
    "1664937",
    "1671190",
    "1673323",
    "1676826",
    "1671833",
    "1671596",
    "1671812",
    "1677243",
    "1671594",
    "1661315",
    "1666561",
    "1671768",
    "1675426",
    "1649732",
    "1569741",
    "1661065",
    "1655227",
    "1604132",
    "1631477",
    "1669464",
    "1620422",
    "1611404",
    "1655196",
    "1664037",
}  # 20 embedded + 10 on AJAX page 3, 1569741 on both


def _add_empty_product(root: Path) -> None:
    """A review list page that claims 89 ratings but lists no review (layout drift)."""
    page = (FIXTURES / "review.shtml").read_bytes()
    start = page.index(b'<div id="_j_comment_list" class="comments-list">')
    end = page.index(b'<div class="view-more-comments">')
    target = root / EMPTY_LIST
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(page[:start] + b'<div id="_j_comment_list" class="comments-list"></div></div>' + page[end:])


@pytest.fixture
def faulty_crawl(fixture_mirror, mirror_server, tmp_path) -> RunResult:
    root, _ = fixture_mirror
    _add_empty_product(root)
    (root / MISSING_IMAGE).unlink()
    server = mirror_server(root)
    server.faults.script.update(
        {
            REVIEW_LIST: [500, "garble"],  # retried, then served with bytes that are not GBK
            AJAX_3: [429],  # retried
            AJAX_4: [("sleep", 2.5)],  # outlives DOWNLOAD_TIMEOUT=1, retried
            LONG_404: [404, 404, 404],  # not retried: the list's data stands in
            LONG_TRUNCATED: ["truncate"],  # no article body: the list's data stands in
        }
    )
    result = run_crawl(
        tmp_path / "out", server.url, "products=1184692," + EMPTY_PRODUCT, settings=("DOWNLOAD_TIMEOUT=1",)
    )
    result.server = server
    return result


def test_faults_are_survived_and_counted(faulty_crawl):
    result = faulty_crawl
    assert result.returncode == 0, result.stderr[-3000:]
    reviews = result.reviews
    assert [r["review_id"] for r in reviews] == sorted(FIXTURE_IDS, key=int)  # each once, sorted
    stats = result.stats
    assert stats["retries"]["count"] == 3
    assert stats["http_statuses"]["500"] == 1 and stats["http_statuses"]["429"] == 1
    assert stats["http_statuses"]["404"] == 3 + 1 + 1  # robots.txt x3, a long page, an image
    assert stats["exceptions"] == {"scrapy.exceptions.DownloadTimeoutError": 1}
    assert stats["page_failures"] == {"long": 1}
    assert stats["layout_errors"] == {
        "long_page_without_review": 1,
        "review_page_without_reviews": 1,
        "fewer_reviews_than_declared": 2,
    }
    # both review lists claim 89 ratings: 1184692 serves 30 (one twice), the empty product none
    assert stats["reviews_lost"] == {"short_of_declared": (89 - 30) + 89}
    assert stats["long_fallback_to_list"] == 2
    assert stats["decode_errors"] == {"chars": 2, "pages": 1}
    assert stats["duplicates_skipped"] == 1
    assert stats["images"]["failed"] == 1
    assert stats["pages"] == {"ajax": 2, "ajax_empty_last": 1, "long": 16, "review_list": 2}
    assert result.server.faults.hits[AJAX_4] == 2 and result.server.faults.hits[REVIEW_LIST] == 2


def test_long_page_fallbacks_keep_the_list_data(faulty_crawl):
    by_id = {r["review_id"]: r for r in faulty_crawl.reviews}
    failed = by_id["1675433"]  # long page 404
    assert failed["url"] == "https://" + LONG_404
    assert failed["body"].startswith("10月20日，华为在国内正式发布了") and failed["likes"] == 348
    assert failed["scores"] == {"battery": 10, "camera": 10, "performance": 8, "appearance": 10, "price_performance": 8}
    assert [i["path"] for i in failed["images"]] == [
        image_file_name("https://pro-fd.zol-img.com.cn/g5/M00/01/04/ChMkJlpVgUKIYpWFAALrGww6vpYAAj_0wHzMREAAusz526.jpg")
    ]
    assert by_id["1675216"]["body"].startswith("手机开箱很惊艳")  # truncated long page
    fetched = by_id["1673139"]  # an intact long page wins over the list
    assert fetched["body"] == "外观\n第一段\n第二段\n总结\n值得买" and fetched["overall_score"] == 8.4
    assert fetched["title"] == "长篇 990"
    # the long page's figures, then the list's own pictures of the review (not on the long page)
    assert len(fetched["images"]) == LONG_FIGURES + 3 and fetched["image_urls"][0].endswith("/long/990_0.jpg")
    garbled = by_id["1675433"]
    assert garbled["pros"] == "运行流畅\n外观漂亮"  # the undecodable label did not cost the text
    image_less = by_id["1649732"]
    assert len(image_less["image_urls"]) == 2 and len(image_less["images"]) == 1


def test_no_reviews_at_all_exits_non_zero(fixture_mirror, mirror_server, tmp_path):
    root, _ = fixture_mirror
    _add_empty_product(root)
    result = run_crawl(tmp_path / "out", mirror_server(root).url, "products=" + EMPTY_PRODUCT)
    assert result.returncode == 3
    assert not result.out.exists()  # nothing to replace it with: the run's output stays in the staging folder
    assert result.written == tmp_path / ".out.partial"
    assert result.stats["reviews"] == 0
    assert result.stats["layout_errors"] == {"review_page_without_reviews": 1, "fewer_reviews_than_declared": 1}
    assert result.stats["reviews_lost"] == {"short_of_declared": 89}
    assert (result.written / "reviews.jsonl").read_bytes() == b""
    assert "ERROR" in result.stderr and "no review on" in result.stderr
    assert f"{tmp_path / 'out'} left unchanged" in result.stderr


def _hand_crawl(*spider_args: str, settings: tuple[str, ...] = (), timeout: float = 120) -> subprocess.CompletedProcess:
    """`scrapy crawl zol -a ...` as a user types it: no ZOL_MIRROR nor ZOL_OUT in the environment."""
    command = [sys.executable, "-m", "scrapy", "crawl", "zol"]
    for arg in spider_args:
        command += ["-a", arg]
    for setting in ("RETRY_TIMES=0", "RETRY_BACKOFF_BASE=0", "DOWNLOAD_TIMEOUT=5", *settings):
        command += ["-s", setting]
    env = {k: v for k, v in os.environ.items() if k not in ("ZOL_MIRROR", "ZOL_OUT", "ZOL_CRAWLED_AT")}
    env.update(PYTHONPATH=str(REPO), ZOL_LOG_LEVEL="WARNING")
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed when the block ends: nothing listens there


def test_a_hand_crawl_reads_a_mirror_argument_and_never_destroys_a_good_crawl(fixture_mirror, tmp_path):
    root, _ = fixture_mirror
    _add_empty_product(root)
    out = tmp_path / "out"
    good = _hand_crawl(f"out={out}", f"mirror={root}", "crawl_date=2018-09-15")
    assert good.returncode == 0, good.stderr[-3000:]
    reviews = [json.loads(line) for line in (out / "reviews.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(r["review_id"] for r in reviews) == sorted(FIXTURE_IDS)
    before = _tree(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror", "out"]  # no staging, no lock left behind

    unreachable = _hand_crawl(f"out={out}", "products=1184692", f"mirror=http://127.0.0.1:{_closed_port()}")
    assert unreachable.returncode != 0
    assert f"{out} left unchanged" in unreachable.stderr
    empty = _hand_crawl(f"mirror={root}", "products=" + EMPTY_PRODUCT, settings=(f"ZOL_OUT={out}",))  # as the stage
    assert empty.returncode == 3
    assert json.loads((tmp_path / ".out.partial" / "crawl_stats.json").read_text(encoding="utf-8"))["reviews"] == 0
    assert _tree(out) == before  # byte-identical after both failed crawls


def test_a_hand_crawl_refuses_unknown_arguments_in_one_line(tmp_path):
    done = _hand_crawl(f"out={tmp_path / 'out'}", "mirorr=/somewhere", timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: unknown spider argument(s) mirorr; known: ") and "mirror" in lines[-1]
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()
    bad = _hand_crawl(f"out={tmp_path / 'out'}", "review_pages=x", timeout=60)  # a known one, a bad value
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and not (tmp_path / "out").exists()
    assert bad.stderr.strip().splitlines()[-1] == (
        "error: spider arguments: 'crawl.review_pages' must be a whole number, got 'x'"
    )


def _partial_lines(jobdir: Path) -> int:
    path = jobdir / "zol_partial_reviews.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.parametrize("kill_signal, first_exit", [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGTERM, 4)])
def test_killed_crawl_resumes_without_loss_or_duplicates(
    fixture_mirror, mirror_server, tmp_path, kill_signal, first_exit
):
    root, _ = fixture_mirror
    server = mirror_server(root)
    server.delay = 0.04
    jobdir, out = tmp_path / "job", tmp_path / "out"
    settings = (f"JOBDIR={jobdir}", "CONCURRENT_REQUESTS=2")
    command, env = scrapy_command(out, server.url, settings=settings)
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _partial_lines(jobdir) < 8 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(kill_signal)
    assert process.wait(timeout=60) == first_exit
    scraped_before = _partial_lines(jobdir)
    assert 8 <= scraped_before < len(FIXTURE_IDS)

    server.delay = 0.0
    resumed = run_crawl(out, server.url, settings=settings)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ids = [r["review_id"] for r in resumed.reviews]
    assert sorted(ids, key=int) == sorted(FIXTURE_IDS, key=int)  # nothing lost, nothing twice
    stats = resumed.stats
    assert stats["resumed_from_jobdir"] == scraped_before
    assert stats["reviews"] == len(FIXTURE_IDS)
    for review in resumed.reviews:  # every image file whole, whichever run fetched it
        for image in review["images"]:
            data = (out / "images" / image["path"]).read_bytes()
            assert data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")


def test_robots_txt_in_the_mirror_is_obeyed(fixture_mirror, tmp_path):
    root, _ = fixture_mirror
    (root / "detail.zol.com.cn" / "robots.txt").write_text("User-agent: *\nDisallow: /xhr4_\n", encoding="utf-8")
    result = run_crawl(tmp_path / "out", str(root))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.reviews) == 20  # review.shtml only: the AJAX endpoint is disallowed
    # one failed AJAX page does not end the pagination: pages 3..9 of the 89 declared reviews are each tried
    assert result.stats["robots_forbidden"] == 7 and result.stats["page_failures"] == {"ajax": 7}
    assert result.stats["reviews_lost"] == {"ajax_page_failed": 89 - 20}
    assert result.stats["reviews_accounted"] == 89
