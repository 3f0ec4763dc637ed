"""What real pages and a real network do to a crawl, over generated mirrors (folder and loopback HTTP): one crawl of a
mirror mixing every fault ends with every review written or counted lost; robots.txt holds under concurrency; the
HTTP mirror crawls with the live politeness (delay, retry back-off)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from crawl_support import run_crawl

from crawler.urls import ajax_review_url, long_review_url, review_list_url
from sitegen.mirror import generate_mirror

pytestmark = pytest.mark.slow
MAX_IMAGES = 4
MAXSIZE = 200_000


def _path(url: str) -> str:
    return url.split("://", 1)[1]


def _edit(root: Path, url: str, old: str, new: str, count: int = 1) -> None:
    file = root / _path(url)
    text = file.read_bytes().decode("gbk")
    assert text.count(old) >= count, (url, old)
    file.write_bytes(text.replace(old, new).encode("gbk"))


@pytest.fixture(scope="module")
def base_site(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("real") / "mirror"
    return root, generate_mirror(root, products=4, reviews_per_product=10, seed=3)


def _copy(base: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(base, to)
    return to


def _faulty_mirror(base_site, to: Path) -> tuple[Path, dict, dict]:
    """The generated mirror with one of each fault (see the test); returns it, its manifest and what must happen."""
    base, manifest = base_site
    root = _copy(base, to)
    products = [p["product_id"] for p in manifest["products"]]
    reviews = {pid: [r for r in manifest["reviews"] if r["product_id"] == pid] for pid in products}
    cases = manifest["edge_cases"]
    by_id = {r["review_id"]: r for r in manifest["reviews"]}
    p0, p1, p2, p3 = products
    faults = {
        _path(ajax_review_url(p0, 3)): [404],  # a failing AJAX page: counted, page 4 still read
        _path(review_list_url(p3)): [404],  # a failing review list: its card's 10 counted lost
    }
    failing_long = by_id[cases["long_without_icon"]]  # a long page failing past the retries: list data
    faults[_path(long_review_url(p1, failing_long["aid"]))] = [500, 500, 500]
    (root / "faults.json").write_text(json.dumps(faults), encoding="utf-8")
    # the last AJAX page says isEnd with nothing: 3 of the 33 declared reviews are never listed
    (root / _path(ajax_review_url(p0, 4))).write_text('{"list":"","isEnd":1}', encoding="ascii")
    # the 查看更多 link renamed: noticed, and the declared count still leads to the AJAX pages
    _edit(root, review_list_url(p0), 'id="_j_view_more_comments"', 'id="_j_more_reviews"')
    # a long link to another site, and one to another review's long page: both keep their list data
    offsite, shared, owner = (by_id[cases[name]] for name in ("long_dated", "long_cover", "long_many_images"))
    _edit(
        root,
        review_list_url(p0),
        f"//t.zol.com.cn/57/{p0}/evaluation_{offsite['aid']}.html",
        f"//t.zol-mirror.example.com/57/{p0}/evaluation_{offsite['aid']}.html",
        count=2,
    )
    _edit(
        root,
        review_list_url(p0),
        f"/57/{p0}/evaluation_{shared['aid']}.html",
        f"/57/{p0}/evaluation_{owner['aid']}.html",
        count=2,
    )
    # a review without any id: counted lost
    no_id = next(r for r in reviews[p1][4:] if not r["long"] and r["review_id"] not in cases.values())
    _edit(root, review_list_url(p1), no_id["review_id"], "", count=3)
    # one image URL that cannot be requested, one too large, one that is not an image: counted, reviews kept
    relative = by_id[cases["relative_images"]]
    _edit(root, review_list_url(p1), "/" + _path(relative["image_urls"][0]).split("/", 1)[1], "http://[bad/x.jpg")
    sibling = by_id[cases["sibling_variant"]]
    (root / _path(sibling["image_urls"][0])).write_bytes(b"\xff\xd8\xff" + b"\0" * (MAXSIZE + 1))
    (root / _path(sibling["image_urls"][1])).write_bytes(b"<html>404 Not Found</html>")
    lost_ids = {r["review_id"] for r in reviews[p0][20:]} | {r["review_id"] for r in reviews[p3]} | {no_id["review_id"]}
    expect = {
        "written": {r["review_id"] for r in manifest["reviews"]} - lost_ids,
        "lost": {"ajax_page_failed": 10, "short_of_declared": 3, "review_list_failed": 10, "review_without_id": 1},
        "fallbacks": {offsite["review_id"], shared["review_id"], failing_long["review_id"]},
        "image_failures": {"bad_url": 1, "too_large": 1, "not_an_image": 1},
        "sibling": sibling,
    }
    return root, manifest, expect


@pytest.mark.parametrize("transport", ["folder", "http"])
def test_a_crawl_of_every_fault_accounts_for_every_review(base_site, mirror_server, tmp_path, transport):
    root, manifest, expect = _faulty_mirror(base_site, tmp_path / "mirror")
    mirror = str(root) if transport == "folder" else mirror_server(root).url
    result = run_crawl(
        tmp_path / "out", mirror, f"max_images_per_review={MAX_IMAGES}", settings=(f"DOWNLOAD_MAXSIZE={MAXSIZE}",)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stats, reviews = result.stats, {r["review_id"]: r for r in result.reviews}
    assert set(reviews) == expect["written"]
    assert stats["reviews_lost"] == expect["lost"]
    assert (
        stats["reviews"] + sum(stats["reviews_lost"].values()) == stats["reviews_accounted"] == len(manifest["reviews"])
    )
    assert "review(s) listed by the site were lost" in result.stderr  # at ERROR level, with the reasons
    assert stats["layout_errors"] == {"view_more_link_missing": 1}
    assert stats["long_fallback_to_list"] == 3 and stats["long_offsite"] == 1 and stats["long_shared_url"] == 1
    for review_id in expect["fallbacks"]:  # the list's data, its excerpt as the body
        assert reviews[review_id]["body"] and "evaluation_" in reviews[review_id]["url"]
    images = stats["images"]
    assert images["failed_by_reason"] == expect["image_failures"]
    assert images["urls"] == images["ok"] + images["failed"] + images["capped"] and images["capped"] > 0
    assert all(len(r["images"]) <= MAX_IMAGES for r in reviews.values())
    sibling = reviews[expect["sibling"]["review_id"]]  # both product ids kept; its images beyond the faulty two
    assert (sibling["product_id"], sibling["review_product_id"]) == (
        expect["sibling"]["product_id"],
        expect["sibling"]["review_product_id"],
    )
    assert [i["url"] for i in sibling["images"]] == expect["sibling"]["image_urls"][2:MAX_IMAGES]
    files = list((result.out / "images").iterdir())
    assert len(files) == images["ok"] and all(f.read_bytes()[:3] == b"\xff\xd8\xff" for f in files)


def test_robots_txt_holds_for_concurrent_requests(base_site, mirror_server, tmp_path):
    """Every long page of the site is disallowed; they are requested at once while robots.txt is slow to come:
    none of them may reach the server (Scrapy's own middleware lets all but the first waiter through)."""
    root = _copy(base_site[0], tmp_path / "mirror")
    manifest = base_site[1]
    (root / "t.zol.com.cn" / "robots.txt").write_text("User-agent: *\nDisallow: /57/\n", encoding="utf-8")
    server = mirror_server(root)
    server.faults.script["t.zol.com.cn/robots.txt"] = [("sleep", 1.0)]
    result = run_crawl(tmp_path / "out", server.url, settings=("CONCURRENT_REQUESTS_PER_DOMAIN=16",))
    assert result.returncode == 0, result.stderr[-3000:]
    long_reviews = [r for r in manifest["reviews"] if r["long"]]
    assert len(long_reviews) >= 5
    assert [path for _, path in server.log if re.match(r"t\.zol\.com\.cn/57/", path)] == []
    assert result.stats["robots_forbidden"] == len(long_reviews)
    assert result.stats["long_fallback_to_list"] == len(long_reviews)
    assert len(result.reviews) == len(manifest["reviews"]) and result.stats["reviews_lost"] == {}


def test_http_mirror_keeps_the_politeness_settings(base_site, mirror_server, tmp_path):
    """DOWNLOAD_DELAY spaces the requests to a host and a retry waits its back-off, as live."""
    root, manifest = base_site
    product = manifest["products"][2]["product_id"]
    server = mirror_server(root)
    server.faults.script[_path(review_list_url(product))] = [503]
    delay, backoff = 0.3, 0.6
    result = run_crawl(
        tmp_path / "out",
        server.url,
        f"products={product}",
        settings=(f"DOWNLOAD_DELAY={delay}", "CONCURRENT_REQUESTS_PER_DOMAIN=1", f"RETRY_BACKOFF_BASE={backoff}"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stats["retries"]["count"] == 1
    hits = [t for t, path in server.log if path == _path(review_list_url(product))]
    assert len(hits) == 2 and hits[1] - hits[0] >= 0.75 * backoff
    for host in ("detail.zol.com.cn", "pro-fd.zol-img.com.cn"):
        times = sorted(t for t, path in server.log if path.startswith(host + "/") and not path.endswith("robots.txt"))
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert gaps and min(gaps) >= 0.5 * delay * 0.9, (host, gaps)  # RANDOMIZE_DOWNLOAD_DELAY: 0.5-1.5 x
