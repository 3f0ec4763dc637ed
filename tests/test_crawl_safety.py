"""Fast checks of the crawl's rules on real-world pages: the ranking is the ranked cards, long reviews are whole,
relative URLs resolve, a failed page is counted and does not end the pagination, images are checked, a resumed
crawl trusts only what it can, and the stage never replaces a folder that is not a crawl's output."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from crawl_support import FIXTURES, REPO
from hypothesis import given
from hypothesis import strategies as st
from parsel import Selector
from scrapy import Request
from scrapy.http import HtmlResponse
from scrapy.utils.test import get_crawler
from twisted.python.failure import Failure

from crawler.items import ReviewItem
from crawler.parse_list import Product
from crawler.parse_long import parse_long_review
from crawler.parse_ranking import RankedProduct
from crawler.pipelines import download_plan, is_image
from crawler.resume import ResumeMismatch, load_resume, partial_path, save_arguments
from crawler.spiders.zol import ZolSpider
from crawler.tally import ProductTally
from crawler.urls import ajax_review_url, ranking_url, resolve, review_list_url
from sitegen.catalog_pages import ranking_page
from sitegen.pages2018 import long_review_page
from sitegen.plan import plan_site


def _spider(**kwargs) -> ZolSpider:
    crawler = get_crawler(ZolSpider)
    spider = ZolSpider.from_crawler(crawler, crawl_date="2018-09-15", **kwargs)
    crawler.spider = spider
    return spider


def _stat(spider: ZolSpider, key: str):
    return spider.crawler.stats.get_value(f"zol/{key}")


@pytest.fixture(scope="module")
def site():
    return plan_site(12, 1, 4)


# ---- item 1: the ranking -------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_products, expected", [(0, 10), (3, 3)])
def test_ranking_takes_the_cards_in_rank_order_not_the_sidebars(site, max_products, expected):
    ranked, unranked = site
    html = ranking_page(1, 2, ranked[:10], unranked, elsewhere=ranked[10:])
    spider = _spider(max_products=max_products)
    response = HtmlResponse(ranking_url(1), body=html.encode("gbk"), request=Request(ranking_url(1), meta={"page": 1}))
    requests = list(spider.parse_ranking(response))
    lists = [r for r in requests if r.meta["zol_kind"] == "review_list"]
    assert [r.meta["ranked"].product_id for r in lists] == [p.product_id for p in ranked[:expected]]
    assert [r.meta["rank"] for r in lists] == list(range(1, expected + 1))
    assert lists[0].meta["ranked"].listed_reviews == len(ranked[0].reviews) == 33
    assert lists[0].meta["ranked"].listed_score is not None
    assert lists[0].url == review_list_url(ranked[0].product_id)
    assert any(r.meta["zol_kind"] == "ranking" for r in requests) == (max_products == 0)
    assert _stat(spider, "layout/ranking_without_cards") is None


def test_a_ranking_page_without_cards_is_layout_drift(site):
    ranked, unranked = site
    html = ranking_page(1, 1, ranked[:3], unranked).replace("data-follow-id", "data-x")
    spider = _spider()
    response = HtmlResponse(ranking_url(1), body=html.encode("gbk"), request=Request(ranking_url(1), meta={"page": 1}))
    lists = [r for r in spider.parse_ranking(response) if r.meta["zol_kind"] == "review_list"]
    assert _stat(spider, "layout/ranking_without_cards") == 1
    # the fallback reads product links inside the ranking list only, never the sidebars'
    assert [r.meta["ranked"].product_id for r in lists] == [p.product_id for p in ranked[:3]]


# ---- items 2 and 3: long reviews whole, URLs resolved ---------------------------------------------------------


def test_long_review_body_keeps_nested_headings_in_page_order(site):
    ranked, _ = site
    product = ranked[0]
    review = product.reviews[0]  # the edge case long_many_images: 12 figures spread over the sections
    assert review.long and len(review.images) == 12
    url = f"https://t.zol.com.cn/57/{review.product_id}/evaluation_{review.aid}.html"
    long = parse_long_review(Selector(text=long_review_page(product, review)), date(2018, 9, 15), url)
    expected = [line for heading, paragraphs in review.text.sections for line in (heading, *paragraphs)]
    assert long.body.split("\n") == expected
    assert long.image_urls == [image.url for image in review.images]


def test_relative_links_and_image_urls_resolve_and_no_review_is_lost():
    page = (FIXTURES / "review.shtml").read_bytes().decode("gbk")
    page = page.replace("http://t.zol.com.cn/57/1184692/evaluation_1364.html", "/57/1184692/evaluation_1364.html")
    page = page.replace('data-bigurl="//pro-fd.zol-img.com.cn/g5/M00/01/04/', 'data-bigurl="../../g5/M00/01/04/', 1)
    url = review_list_url("1184692")
    spider = _spider()
    response = HtmlResponse(
        url,
        body=page.encode("gbk"),
        request=Request(url, meta={"ranked": RankedProduct("1184692", None, None, None, url), "rank": None}),
    )
    out = list(spider.parse_review_list(response))
    longs = {r.meta["listed"].item.review_id: r for r in out if isinstance(r, Request) and r.meta["zol_kind"] == "long"}
    items = [o for o in out if isinstance(o, ReviewItem)]
    assert len(longs) + len(items) == 20  # every review of the page, the relative one's followers included
    first = longs["1675433"]
    assert first.url == "https://detail.zol.com.cn/57/1184692/evaluation_1364.html"
    assert first.meta["listed"].item.image_urls == [
        "https://detail.zol.com.cn/g5/M00/01/04/ChMkJlpVgUKIYpWFAALrGww6vpYAAj_0wHzMREAAusz526.jpg"
    ]


@pytest.mark.parametrize(
    "base, url, expected",
    [
        (
            "https://detail.zol.com.cn/1185/1184692/review.shtml",
            "//pro-fd.zol-img.com.cn/a.jpg",
            "https://pro-fd.zol-img.com.cn/a.jpg",
        ),
        (
            "https://detail.zol.com.cn/1185/1184692/review.shtml",
            "/1185/1184692/review_0_0_1_1.shtml",
            "https://detail.zol.com.cn/1185/1184692/review_0_0_1_1.shtml",
        ),
        ("https://t.zol.com.cn/57/1/evaluation_2.html", "img/3.jpg", "https://t.zol.com.cn/57/1/img/3.jpg"),
        (
            "https://detail.zol.com.cn/",
            "http://t.zol.com.cn/57/1/evaluation_2.html",
            "https://t.zol.com.cn/57/1/evaluation_2.html",
        ),
        ("https://detail.zol.com.cn/", "javascript:;", None),
        ("https://detail.zol.com.cn/", "http://[bad/x.jpg", None),
        ("https://detail.zol.com.cn/", "  ", None),
    ],
)
def test_resolve(base, url, expected):
    assert resolve(base, url) == expected


# ---- item 4: nothing lost silently ----------------------------------------------------------------------------


def test_a_failed_ajax_page_is_counted_and_the_next_page_still_read():
    spider = _spider()
    spider.tallies["1"] = ProductTally(Product("1", "x", "y"), declared=45, review_pages=20, read=20)
    request = Request(ajax_review_url("1", 3), meta={"zol_kind": "ajax", "product_id": "1", "page": 3})
    failure = Failure(ValueError("connection lost"))
    failure.request = request
    out = list(spider.page_failed(failure))
    assert [r.url for r in out] == [ajax_review_url("1", 4)]
    assert _stat(spider, "lost/ajax_page_failed") == 10
    request5 = Request(ajax_review_url("1", 5), meta={"zol_kind": "ajax", "product_id": "1", "page": 5})
    failure.request = request5
    assert list(spider.page_failed(failure)) == []  # page 5 holds the last 5 of 45: no page 6
    assert _stat(spider, "lost/ajax_page_failed") == 15
    assert spider.tallies["1"].done and _stat(spider, "lost/short_of_declared") == 45 - 20 - 15


def test_a_dropped_long_request_is_counted():
    spider = _spider()
    from crawler.parse_list import ListedReview

    listed = ListedReview(ReviewItem("9", "1"), "https://t.zol.com.cn/57/1/evaluation_2.html", ())
    spider.request_dropped(Request(listed.long_url, meta={"zol_kind": "long", "listed": listed}))
    assert _stat(spider, "lost/long_request_dropped") == 1 and _stat(spider, "requests_dropped/long") == 1


# ---- item 6: images --------------------------------------------------------------------------------------------


def test_images_are_sniffed_and_capped():
    assert is_image(b"\xff\xd8\xff\xe0...") and is_image(b"\x89PNG\r\n\x1a\n...") and is_image(b"RIFF\0\0\0\0WEBPVP8")
    assert not is_image(b"<html>404</html>") and not is_image(b"") and not is_image(b'{"list": ""}')
    urls = ["https://pro-fd.zol-img.com.cn/1.jpg", "http://[bad/2.jpg", "https://pro-fd.zol-img.com.cn/3.jpg"]
    assert download_plan(urls, 0) == ([urls[0], urls[2]], [urls[1]], 0)
    assert download_plan(urls, 2) == ([urls[0]], [urls[1]], 1)


# ---- item 7: resume and output safety --------------------------------------------------------------------------


def test_resume_trusts_only_records_with_their_files_and_the_same_arguments(tmp_path):
    jobdir, images = str(tmp_path / "job"), tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_bytes(b"\xff\xd8\xffA")
    (images / "torn.jpg").write_bytes(b"\xff\xd8")
    checksum = hashlib.md5(b"\xff\xd8\xffA").hexdigest()
    records = [
        {"review_id": "1", "images": [{"path": "a.jpg", "checksum": checksum}]},
        {"review_id": "2", "images": [{"path": "gone.jpg", "checksum": "x"}]},
        {"review_id": "3", "images": [{"path": "torn.jpg", "checksum": checksum}]},
        {"review_id": "4", "images": []},
    ]
    partial = partial_path(jobdir)
    partial.parent.mkdir()
    partial.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"review_id": "5", "ima', encoding="utf-8")
    arguments = {"products": ["1"], "review_pages": 20}
    save_arguments(jobdir, arguments)
    state = load_resume(jobdir, arguments, images)
    assert sorted(state.records) == ["1", "4"] and sorted(state.untrusted) == ["2", "3"]
    with pytest.raises(ResumeMismatch, match=r"other arguments \(products\)"):
        load_resume(jobdir, {**arguments, "products": ["2"]}, images)


def _stage(tmp_path: Path, out: Path, *options: str) -> subprocess.CompletedProcess:
    mirror = tmp_path / "mirror"
    mirror.mkdir(exist_ok=True)
    params = tmp_path / "params.yaml"
    params.write_text(
        f"crawl:\n  mirror: '{mirror}'\n  out: '{out}'\n  list_pages: 1\n  review_pages: 20\n"
        f"  products: '1'\n  max_products: 0\n  max_images_per_review: 5\n  polite: auto\n"
        f"  crawl_date: '2018-09-15'\n",
        encoding="utf-8",
    )
    return subprocess.run(
        [sys.executable, "-m", "crawler.crawl", "--params", str(params), *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_stage_refuses_an_out_folder_holding_other_things(tmp_path):
    out = tmp_path / "data"
    (out / "images").mkdir(parents=True)
    (out / "thesis.tex").write_text("precious", encoding="utf-8")
    done = _stage(tmp_path, out)
    assert done.returncode == 2 and done.stderr.startswith("error: crawl.out ") and "thesis.tex" in done.stderr
    assert (out / "thesis.tex").read_text(encoding="utf-8") == "precious"


def test_stage_refuses_a_jobdir_of_another_crawl(tmp_path):
    jobdir = tmp_path / "job"
    jobdir.mkdir()
    partial_path(str(jobdir)).write_text('{"review_id": "1"}\n', encoding="utf-8")
    save_arguments(str(jobdir), {"products": ["2"]})
    done = _stage(tmp_path, tmp_path / "raw", "--jobdir", str(jobdir))
    assert done.returncode == 2 and "holds a partial crawl made with other arguments" in done.stderr
    assert partial_path(str(jobdir)).read_text(encoding="utf-8") == '{"review_id": "1"}\n'


def test_the_dupefilter_never_drops_the_spiders_own_pages():
    from crawler.resume import MemoryDupeFilter

    crawler = get_crawler(ZolSpider)
    dupefilter = MemoryDupeFilter.from_crawler(crawler)
    page = Request("https://t.zol.com.cn/57/1/evaluation_2.html", meta={"zol_kind": "long"})
    assert not dupefilter.request_seen(page) and not dupefilter.request_seen(page.copy())
    other = Request("https://detail.zol.com.cn/x.html")
    assert not dupefilter.request_seen(other) and dupefilter.request_seen(other.copy())


def _write_good_crawl(out: Path) -> dict[str, bytes]:
    """A previous crawl's output (what a failed crawl must leave byte-identical); returns its files' bytes."""
    (out / "images").mkdir(parents=True)
    files = {
        "reviews.jsonl": b'{"review_id": "1", "product_id": "2"}\n',
        "crawl_stats.json": b'{"reviews": 1}\n',
        "images/a.jpg": b"\xff\xd8\xffgood",
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
    return files


def _tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_stage_refuses_a_second_crawl_into_the_same_out(tmp_path):
    from crawler.staging import CrawlOutput

    out = tmp_path / "raw"
    files = _write_good_crawl(out)
    with CrawlOutput(out):  # a crawl running into `out`
        done = _stage(tmp_path, out)
    assert done.returncode == 2 and done.stderr.count("\n") <= 2, done.stderr
    assert f"another crawl is writing {out}" in done.stderr
    assert _tree(out) == files


# ---- the Redis queue member codec (--backend redis) -----------------------------------------------------------


def _codec_spider() -> ZolSpider:
    return _spider()


def test_codec_round_trips_the_spiders_requests(site):
    from crawler.parse_list import ListedReview
    from crawler.request_codec import decode_request, encode_request
    from crawler.tally import RankingState

    spider = _codec_spider()
    listed = ListedReview(
        ReviewItem(review_id="1", product_id="2", scores={"性价比": 4.0}, image_urls=["u"]),
        "https://t.zol.com.cn/57/2/evaluation_3.html",
        ("新标签",),
    )
    requests = [
        spider._request(
            "https://t.zol.com.cn/57/2/evaluation_3.html",
            "long",
            spider.parse_long,
            meta={"listed": listed, "retry_times": 2},
        ),
        spider._ranking_request(ranking_url(2), 2, RankingState(["1", "2"], 7)),
        # parse_ajax is a method of a mixin (crawler.ajax_pages), not of the spider class itself
        spider._ajax_request(ProductTally(Product("7", "P", "B", 1, 7.5), 33, 20, read=20), 2, tried=("2018",)),
        Request(
            "https://detail.zol.com.cn/x",
            method="POST",
            body=b"\xff\x00",
            headers={"X-A": "b"},
            priority=-3,
            dont_filter=True,
            callback=spider.parse_review_list,
            meta={"k": {1: {2, 3}}},
        ),
    ]
    for request in requests:
        member = encode_request(request, spider)
        json.loads(member)  # JSON, not a pickle
        again = decode_request(member, spider)
        assert again.to_dict(spider=spider) == request.to_dict(spider=spider)
        assert again.callback == request.callback and again.errback == request.errback
    assert decode_request(encode_request(requests[0], spider), spider).meta["listed"] == listed


PICKLE = (
    b"\x80\x04\x95\x35\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94"
    b"\x8c\x0etouch PWNED\x94\x85\x94R\x94."
)


@pytest.mark.parametrize(
    "member, reason",
    [
        (PICKLE, "not_json"),
        (b"junk", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[1, 2]", "not_a_request"),
        (b'{"url": 5}', "not_a_request"),
        (b'{"method": "GET"}', "not_a_request"),
        (b'{"url": "https://x.cn/", "callback": "close"}', "bad_callback"),
        (b'{"url": "https://x.cn/", "callback": "__init__"}', "bad_callback"),
        (b'{"url": "https://x.cn/", "errback": "parse_long"}', "bad_callback"),
        (b'{"url": "https://x.cn/", "_class": "os.system"}', "not_a_request"),
        (
            b'{"url": "https://x.cn/", "meta": {"a": {"$t": "dc", "c": "subprocess.Popen", "v": {"args": "touch PWNED"}}}}',  # noqa: E501
            "bad_type",
        ),
        (
            b'{"url": "https://x.cn/", "meta": {"a": {"$t": "dc", "c": "crawler.frontier.Frontier", "v": {}}}}',
            "bad_type",
        ),
        (b'{"url": "https://x.cn/", "meta": {"a": {"$t": "eval", "v": "1"}}}', "bad_tag"),
        (b'{"url": "not a url"}', "bad_request"),
        (b'{"url": "file:///etc/passwd", "callback": "parse_long"}', "bad_request"),
        (b'{"url": "https://x.cn/", "meta": {"proxy": "http://evil:8080"}}', "unsafe_meta"),
        (b'{"url": "https://x.cn/", "meta": {"dont_obey_robotstxt": true}}', "unsafe_meta"),
        (b'{"url": "https://x.cn/", "body": {"$t": "bytes", "v": "!!"}}', "bad_request"),
        (b"[" * 100000 + b"]" * 100000, "too_deep"),
    ],
)
def test_codec_refuses_what_is_not_a_request(member, reason, tmp_path, monkeypatch):
    from crawler.request_codec import PoisonMember, decode_request

    monkeypatch.chdir(tmp_path)
    with pytest.raises(PoisonMember) as caught:
        decode_request(member, _codec_spider())
    assert caught.value.reason == reason or (reason == "too_deep" and caught.value.reason == "not_json")
    assert not (tmp_path / "PWNED").exists()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_request_like = st.fixed_dictionaries(
    {"url": st.text(max_size=30) | st.just("https://detail.zol.com.cn/a")},
    optional={
        "callback": st.text(max_size=12) | st.just("parse_long"),
        "errback": st.text(max_size=12),
        "meta": _json_values,
        "headers": _json_values,
        "body": _json_values,
        "priority": _json_values,
        "$t": st.text(max_size=6),
        "v": _json_values,
        "c": st.text(max_size=30),
    },
)


@given(
    member=st.binary(max_size=200)
    | _json_values.map(lambda v: json.dumps(v).encode())
    | _request_like.map(lambda v: json.dumps(v).encode())
)
def test_property_any_queue_member_is_a_request_or_poison(member):
    from crawler.request_codec import UNSAFE_META, PoisonMember, decode_request

    spider = _CODEC_SPIDER
    try:
        request = decode_request(member, spider)
    except PoisonMember as exc:
        assert exc.reason and "\n" not in str(exc)
    else:
        assert isinstance(request, Request) and request.url.startswith(("http://", "https://"))
        assert not UNSAFE_META & set(request.meta)
        assert request.callback is None or request.callback.__name__.startswith("parse")


_CODEC_SPIDER = _codec_spider()


# ---- merging a shared crawl's worker folders ------------------------------------------------------------------


def _worker_folder(folder: Path, records: list, stats: dict | None = None, extra_lines: str = "") -> Path:
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.jpg").write_bytes(b"\xff\xd8\xffA")
    lines = "".join(json.dumps(r) + "\n" for r in records) + extra_lines
    (folder / "journal.jsonl").write_text(lines, encoding="utf-8")
    saved = (
        stats
        if stats is not None
        else {"crawl_finished": True, "crawl": {"zol/reviews/scraped": len(records)}, "local": {}}
    )
    (folder / "worker_stats.json").write_text(json.dumps(saved), encoding="utf-8")
    return folder


def _merge_cli(tmp_path: Path, *folders: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "crawler.merge", *map(str, folders), "--out", str(tmp_path / "raw")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_merge_reads_and_writes_plain_image_names_only(tmp_path):
    from crawler.merge import merge

    secret = tmp_path / "stolen.txt"
    secret.write_text("secret", encoding="utf-8")
    good = {"review_id": "1", "product_id": "9", "images": [{"path": "a.jpg", "checksum": None}]}
    records = [
        good,
        {"review_id": "2", "product_id": "9", "images": [{"path": "../../stolen.txt"}]},
        {"review_id": "3", "product_id": "9", "images": [{"checksum": "x"}]},
        {"review_id": "4", "product_id": "9", "images": ["a.jpg"]},
        {"review_id": "5"},
        [1],
    ]
    folder = _worker_folder(tmp_path / "w" / "x", records, extra_lines='{"review_id": "6", "pro')
    summary = merge([folder], tmp_path / "raw")
    assert summary["reviews"] == 1 and _tree(tmp_path / "raw")["images/a.jpg"] == b"\xff\xd8\xffA"
    assert summary["journal_rejected"] == {
        "image_path_not_a_file_name": 1,
        "image_without_path": 1,
        "image_entry_not_an_object": 1,
        "no_review_or_product_id": 1,
        "not_an_object": 1,
        "not_json": 1,
    }
    assert sorted(_tree(tmp_path / "raw")) == ["crawl_stats.json", "images/a.jpg", "reviews.jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "stolen.txt", "w"]


def test_merge_reads_no_image_through_a_link(tmp_path):
    """A worker folder is written by another machine: a link in its images/ (to a file of the merging machine) is
    no image of the crawl, so its target is never read into the merged output."""
    secret = tmp_path / "stolen.txt"
    secret.write_bytes(b"secret")
    records = [
        {"review_id": "1", "product_id": "9", "images": [{"path": "a.jpg"}]},
        {"review_id": "2", "product_id": "9", "images": [{"path": "evil.jpg"}]},
    ]
    folder = _worker_folder(tmp_path / "w", records)
    (folder / "images" / "evil.jpg").symlink_to(secret)
    out = tmp_path / "raw"
    files = _write_good_crawl(out)
    done = _merge_cli(tmp_path, folder)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "image evil.jpg of review 2 is in no worker folder" in done.stderr
    assert _tree(out) == files  # nothing of the secret anywhere under the output


def test_merge_reads_no_images_folder_that_is_a_link(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "passwd").write_bytes(b"secret")
    folder = _worker_folder(tmp_path / "w", [{"review_id": "1", "product_id": "9", "images": [{"path": "passwd"}]}])
    (folder / "images" / "a.jpg").unlink()
    (folder / "images").rmdir()
    (folder / "images").symlink_to(elsewhere, target_is_directory=True)
    done = _merge_cli(tmp_path, folder)
    assert done.returncode == 2 and "image passwd of review 1 is in no worker folder" in done.stderr, done.stderr
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize(
    "stats_text, message",
    [
        ('{"crawl_finished": true, "crawl": {"zol/rev', "is torn or not JSON"),
        ('{"crawl_finished": true, "crawl": [], "local": {}}', "is not a worker's stats"),
        (
            '{"crawl_finished": true, "crawl": {}, "local": {}}',
            "the crawl's counters are empty while the journals hold 1",
        ),
        ('{"crawl": ' + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "}", "is torn or not JSON"),  # nested too deep
    ],
)
def test_merge_refuses_torn_stats_and_empty_counters_in_one_line(tmp_path, stats_text, message):
    folder = _worker_folder(tmp_path / "w", [{"review_id": "1", "product_id": "9", "images": []}])
    (folder / "worker_stats.json").write_text(stats_text, encoding="utf-8")
    out = tmp_path / "raw"
    files = _write_good_crawl(out)
    done = _merge_cli(tmp_path, folder)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr
    assert _tree(out) == files


@given(
    text=st.text(max_size=300)
    | st.lists(_json_values, max_size=5).map(lambda values: "\n".join(json.dumps(v) for v in values))
)
def test_property_a_journal_line_is_a_record_or_a_counted_rejection(text):
    from crawler.merge import journal_record

    for line in text.split("\n"):
        record, reason = journal_record(line)
        assert (record is None) != (reason is None)
        if record is not None:
            assert isinstance(record["review_id"], str) and isinstance(record["product_id"], str)
            for image in record.get("images") or []:
                assert Path(image["path"]).name == image["path"] and image["path"] not in (".", "..")


@given(
    text=st.text(max_size=300)
    | st.lists(_json_values | st.just({"review_id": "1", "product_id": "2"}), max_size=5).map(
        lambda values: "\n".join(json.dumps(v) for v in values)
    )
)
def test_property_every_journal_line_is_read_or_counted(text, tmp_path):
    from crawler.merge import read_journal

    path = tmp_path / "journal.jsonl"
    path.write_text(text, encoding="utf-8", newline="")
    records, rejected = read_journal(path)
    lines = [line for line in path.read_bytes().decode("utf-8").split("\n") if line.strip()]
    assert len(records) + sum(rejected.values()) == len(lines)
