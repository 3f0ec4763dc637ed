"""`scrapy crawl zol` end to end over a generated mirror, read from the folder and over loopback HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from crawl_support import REPO, run_crawl
from PIL import Image

from crawler.output import image_file_name
from crawler.resume import partial_path
from crawler.urls import long_review_url, short_review_url
from sitegen.era2026 import apply_era
from sitegen.manifest import review_truth
from sitegen.mirror import generate_mirror
from sitegen.plan import plan_site

pytestmark = pytest.mark.slow
PRODUCTS, REVIEWS_PER_PRODUCT, SEED = 12, 4, 5  # 4 a product: the edge cases of products 1 and 2 exist


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("site") / "mirror"
    manifest = generate_mirror(root, PRODUCTS, REVIEWS_PER_PRODUCT, SEED)
    return root, manifest


@pytest.fixture(scope="module")
def folder_crawl(site, tmp_path_factory):
    root, manifest = site
    result = run_crawl(tmp_path_factory.mktemp("crawl") / "out", str(root), f"crawl_date={manifest['crawl_date']}")
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_crawl_equals_manifest(site, folder_crawl):
    _, manifest = site
    reviews = {r["review_id"]: r for r in folder_crawl.reviews}
    expected = {r["review_id"]: r for r in manifest["reviews"]}
    assert len(folder_crawl.reviews) == len(reviews)  # one line per review
    assert set(reviews) == set(expected)
    products = {p["product_id"]: p for p in manifest["products"]}
    for review_id, want in expected.items():
        got = reviews[review_id]
        assert got["product_id"] == want["product_id"]
        assert got["review_product_id"] == want["review_product_id"]
        assert (got["product_rank"], got["product_listed_score"]) == (
            products[want["product_id"]]["rank"],
            products[want["product_id"]]["listed_score"],
        )
        assert (got["product_name"], got["brand"]) == (
            products[want["product_id"]]["name"],
            products[want["product_id"]]["brand"],
        )
        assert got["scores"] == want["scores"], review_id
        assert got["overall_score"] == want["overall_score"]
        assert got["published"] == want["published"]
        assert got["image_urls"] == want["image_urls"]
        assert len(got["images"]) == want["n_images"]
        assert (got["body"] is not None) == want["long"]
        assert got["url"] == (
            long_review_url(want["review_product_id"], want["aid"])
            if want["long"]
            else short_review_url(want["review_product_id"], review_id)
        )
        assert got["source"] == "zol" and got["crawled_at"] == "2018-09-15T00:00:00+00:00"


# ---- every era (sample.era): the manifest's reviews with their layout, text, scores and original images -------
TEXT_FIELDS = ("title", "pros", "cons", "summary", "body")


def _truths(era: str) -> dict[str, dict]:
    """Layout and text per review, from the plan (a 2018 site's manifest predates them and does not carry them)."""
    site, unranked = plan_site(PRODUCTS, REVIEWS_PER_PRODUCT, SEED)
    apply_era(site, unranked, SEED, era)
    return {r.review_id: review_truth(r) for p in site for r in p.reviews}


@pytest.fixture(
    scope="module",
    params=[pytest.param("2018", id="2018"), pytest.param("2026", id="2026"), pytest.param("mixed", id="mixed")],
)
def era_crawl(request, tmp_path_factory):
    era = request.param
    if era == "2018":  # the module's own 2018 site and crawl
        _, manifest = request.getfixturevalue("site")
        return era, manifest, request.getfixturevalue("folder_crawl")
    root = tmp_path_factory.mktemp(f"site{era}") / "mirror"
    manifest = generate_mirror(root, PRODUCTS, REVIEWS_PER_PRODUCT, SEED, era=era)
    result = run_crawl(
        tmp_path_factory.mktemp(f"crawl{era}") / "out", str(root), f"crawl_date={manifest['crawl_date']}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return era, manifest, result


def test_every_era_crawls_each_review_with_its_layout_text_scores_and_originals(era_crawl):
    era, manifest, crawl = era_crawl
    truths = _truths(era)
    if era != "2018":
        assert {r["review_id"]: {"layout": r["layout"], "text": r["text"]} for r in manifest["reviews"]} == {
            rid: truth for rid, truth in truths.items() if rid in {r["review_id"] for r in manifest["reviews"]}
        }
    got = {r["review_id"]: r for r in crawl.reviews}
    assert len(got) == len(crawl.reviews) and set(got) == {r["review_id"] for r in manifest["reviews"]}
    for want in manifest["reviews"]:
        review, truth = got[want["review_id"]], truths[want["review_id"]]
        assert review["layout"] == truth["layout"], want["review_id"]
        assert {name: review[name] for name in TEXT_FIELDS} == truth["text"], want["review_id"]
        assert (review["overall_score"], review["scores"]) == (want["overall_score"], want["scores"]), want["review_id"]
        assert review["image_urls"] == want["image_urls"] and len(review["images"]) == want["n_images"]
    if era != "2018":  # the review lists that answered the verification page and the stub once were crawled again
        blocked = {answer for answers in manifest["faults"].values() for answer in answers if isinstance(answer, str)}
        assert blocked == {"blocked", "stub"}
        assert crawl.stats["blocked"] == {"stub": 1, "verification": 1}, "the blocked answers are not counted"


def test_images_downloaded_once_and_decodable(site, folder_crawl):
    _, manifest = site
    urls = {url for r in manifest["reviews"] for url in r["image_urls"]}
    files = sorted((folder_crawl.out / "images").iterdir())
    assert len(files) == len(urls)
    for path in files:
        with Image.open(path) as image:
            image.verify()
    for review in folder_crawl.reviews:
        assert [i["url"] for i in review["images"]] == review["image_urls"]
        for image in review["images"]:
            assert (folder_crawl.out / "images" / image["path"]).is_file()
            assert image["path"] == image_file_name(image["url"])
    assert folder_crawl.stats["images"] == {
        "urls": sum(len(r["image_urls"]) for r in manifest["reviews"]),
        "ok": sum(r["n_images"] for r in manifest["reviews"]),
        "failed": 0,
        "crop_fallback": 0,
        "capped": 0,
        "failed_by_reason": {},
        "files": {"downloaded": len(urls)},
    }


def test_stats_count_aspects_pages_and_the_unknown_label(site, folder_crawl):
    _, manifest = site
    stats = folder_crawl.stats
    aspects = Counter(key for r in manifest["reviews"] for key in r["scores"])
    assert stats["aspects"] == dict(sorted(aspects.items()))
    assert stats["unknown_labels"] == {"信号": 1}
    assert stats["reviews"] == len(manifest["reviews"])
    n_long = sum(r["long"] for r in manifest["reviews"])
    assert stats["pages"] == {"ajax": 2, "long": n_long, "ranking": 2, "review_list": PRODUCTS}
    assert stats["page_failures"] == {} and stats["layout_errors"] == {} and stats["parse_failures"] == {}
    assert stats["reviews_lost"] == {} and stats["reviews_accounted"] == len(manifest["reviews"])
    assert stats["retries"]["count"] == 1 and stats["http_statuses"]["503"] == 1  # faults.json: a page fails once
    assert stats["http_statuses"].get("404", 0) == 3  # the three robots.txt


def test_loopback_http_mirror_writes_the_same_bytes(site, folder_crawl, mirror_server, tmp_path):
    root, manifest = site
    server = mirror_server(root)
    result = run_crawl(tmp_path / "out", server.url, f"crawl_date={manifest['crawl_date']}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (result.out / "reviews.jsonl").read_bytes() == (folder_crawl.out / "reviews.jsonl").read_bytes()
    assert sorted(p.name for p in (result.out / "images").iterdir()) == sorted(
        p.name for p in (folder_crawl.out / "images").iterdir()
    )


@pytest.mark.parametrize(
    "args, expect",
    [
        (("list_pages=1",), "first_ranking_page"),
        (("max_products=3",), "three_products"),
        (("review_pages=3",), "pages_up_to_3"),
    ],
)
def test_spider_arguments_limit_the_crawl(site, tmp_path, args, expect):
    root, manifest = site
    result = run_crawl(tmp_path / "out", str(root), f"crawl_date={manifest['crawl_date']}", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    order = [p["product_id"] for p in manifest["products"]]
    per_product = Counter(r["product_id"] for r in result.reviews)
    full = Counter(r["product_id"] for r in manifest["reviews"])
    if expect == "first_ranking_page":
        assert set(per_product) == set(order[:10]) and result.stats["pages"]["ranking"] == 1
    elif expect == "three_products":  # the top three cards, not the phones the sidebars link first
        assert set(per_product) == set(order[:3])
        assert {r["product_rank"] for r in result.reviews} == {1, 2, 3}
    else:
        assert per_product[order[0]] == 30 and full[order[0]] > 30  # 20 embedded + page 3
        assert result.stats["pages"]["ajax"] == 1


def test_products_argument_skips_the_ranking(site, tmp_path):
    root, manifest = site
    wanted = [manifest["products"][1]["product_id"], manifest["products"][4]["product_id"]]
    result = run_crawl(
        tmp_path / "out", str(root), f"crawl_date={manifest['crawl_date']}", "products=" + ",".join(wanted)
    )
    assert result.returncode == 0
    assert {r["product_id"] for r in result.reviews} == set(wanted)
    assert "ranking" not in result.stats["pages"]


def _stage_command(tmp_path: Path, mirror: str, out: Path, crawl_date: str = "", *options: str) -> list[str]:
    """`python -m crawler.crawl` over the first two products of `mirror`, with a params file written for it."""
    params = tmp_path / "params.yaml"
    params.write_text(
        f"crawl:\n  mirror: '{mirror}'\n  out: '{out}'\n  list_pages: 50\n  review_pages: 20\n"
        f"  products: ''\n  max_products: 2\n  max_images_per_review: 0\n  polite: false\n"
        f"  crawl_date: '{crawl_date}'\n",
        encoding="utf-8",
    )
    return [sys.executable, "-m", "crawler.crawl", "--params", str(params), *options]


def _stage(tmp_path: Path, mirror: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(_stage_command(tmp_path, mirror, out), cwd=REPO, capture_output=True, text=True, timeout=120)


def test_stage_rewrites_output_whole_and_stops_on_no_reviews(site, tmp_path):
    root, manifest = site
    out = tmp_path / "raw"
    (out / "images").mkdir(parents=True)
    (out / "images" / "stale.jpg").write_bytes(b"old")
    done = _stage(tmp_path, str(root), out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "crawl:" in done.stdout and " reviews (0 lost), images " in done.stdout
    reviews = [json.loads(line) for line in (out / "reviews.jsonl").read_text(encoding="utf-8").splitlines()]
    first_two = {p["product_id"] for p in manifest["products"][:2]}
    assert {r["product_id"] for r in reviews} == first_two
    # the mirror's crawl date was used for the yearless dates
    assert {r["published"] for r in reviews} == {
        r["published"] for r in manifest["reviews"] if r["product_id"] in first_two
    }
    assert not (out / "images" / "stale.jpg").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "raw"]  # no staging left behind

    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    before = (out / "reviews.jsonl").read_bytes()
    failed = _stage(tmp_path, str(empty), out)
    assert failed.returncode == 3, failed.stderr[-2000:]
    assert "no reviews" in failed.stderr
    assert (out / "reviews.jsonl").read_bytes() == before  # the previous output is left alone


def test_stage_names_a_missing_mirror(tmp_path):
    done = _stage(tmp_path, str(tmp_path / "nowhere"), tmp_path / "raw")
    assert done.returncode == 2
    assert done.stderr.startswith("error: crawl.mirror ") and "nowhere" in done.stderr


def _stage_process(tmp_path: Path, mirror: str, out: Path, jobdir: Path) -> subprocess.Popen:
    command = _stage_command(tmp_path, mirror, out, "2018-09-15", "--jobdir", str(jobdir))
    return subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )  # its own process group: killed with scrapy below


def test_stage_resumed_with_jobdir_keeps_the_images_of_the_killed_run(site, mirror_server, tmp_path):
    """python -m crawler.crawl --jobdir: killed midway (stage and scrapy together), run again: every review once,
    every image file there, and a finished crawl leaves no partial state for the next one."""
    root, manifest = site
    server = mirror_server(root)
    server.delay = 0.05
    out, jobdir = tmp_path / "raw", tmp_path / "job"
    partial = partial_path(str(jobdir))
    first = _stage_process(tmp_path, server.url, out, jobdir)
    deadline = time.monotonic() + 60
    while (not partial.exists() or partial.read_bytes().count(b"\n") < 5) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    partial_count = partial.read_bytes().count(b"\n")
    assert 5 <= partial_count

    server.delay = 0.0
    first_two = {p["product_id"] for p in manifest["products"][:2]}
    expected = sorted(r["review_id"] for r in manifest["reviews"] if r["product_id"] in first_two)
    for _ in range(2):  # the resumed run, then a later crawl with the same JOBDIR
        run = _stage_process(tmp_path, server.url, out, jobdir)
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr[-3000:]
        reviews = [json.loads(line) for line in (out / "reviews.jsonl").read_text(encoding="utf-8").splitlines()]
        assert sorted(r["review_id"] for r in reviews) == expected
        for review in reviews:
            assert len(review["images"]) == len(review["image_urls"])
            for image in review["images"]:
                Image.open(out / "images" / image["path"]).verify()
        assert not partial.exists()


def test_stage_over_http_mirror_dates_by_the_manifest(site, mirror_server, tmp_path):
    root, manifest = site
    out = tmp_path / "raw"
    done = _stage(tmp_path, mirror_server(root).url, out)
    assert done.returncode == 0, done.stderr[-3000:]
    reviews = [json.loads(line) for line in (out / "reviews.jsonl").read_text(encoding="utf-8").splitlines()]
    expected = {r["review_id"]: r["published"] for r in manifest["reviews"]}
    assert {r["review_id"]: r["published"] for r in reviews} == {
        r["review_id"]: expected[r["review_id"]] for r in reviews
    }
    assert {r["crawled_at"] for r in reviews} == {f"{manifest['crawl_date']}T00:00:00+00:00"}
