"""Real crawls (`scrapy crawl zol` over a loopback mirror) of the real 2026 page and of refusals: today's formats are
written whole, an absent AJAX page is counted and not fatal, a crop stands in for a missing original; a verification
page, a stub or an unreachable site ends the crawl non-zero saying so (never "layout drift"); and losing the short
reviews' text is layout drift that fails the crawl."""

from __future__ import annotations

import socket

import pytest
from crawl_support import (
    PRODUCT_2026,
    REDIRECTING_LIST_2026,
    REVIEW_LIST,
    REVIEW_LIST_2026,
    STUB_PAGE,
    VERIFICATION_PAGE,
    build_2026_mirror,
    redirects_2026,
    run_crawl,
)

pytestmark = pytest.mark.slow
PHOTO_REVIEW = "12317803"  # the one review of the page with images (3)


@pytest.fixture
def site_2026(tmp_path):
    root = tmp_path / "mirror"
    return root, build_2026_mirror(root)


def test_a_crawl_of_the_2026_site(site_2026, mirror_server, tmp_path):
    root, images = site_2026
    server = mirror_server(root)
    redirects_2026(server)
    result = run_crawl(tmp_path / "out", server.url, "list_pages=1")
    assert result.returncode == 0, result.stderr[-3000:]
    stats, reviews = result.stats, {r["review_id"]: r for r in result.reviews}
    assert len(reviews) == 20 and {r["product_rank"] for r in reviews.values()} == {1}
    assert stats["reviews_by_layout"] == {"2026-scored": 5, "2026-short": 15}
    assert stats["reviews_without_scores"] == 15
    assert all(r["overall_score"] is not None and (r["body"] or r["pros"]) for r in reviews.values())
    assert (
        stats["field_coverage"]["2026-short"]["text"] == 1.0 and stats["field_coverage"]["2026-scored"]["scores"] == 1.0
    )
    # no AJAX form answers in 2026: two pages tried in both forms, counted, the rest of the 200 expected lost by reason
    assert stats["ajax"] == {"2018/missing": 2, "2019/missing": 2, "unavailable": 1}
    assert stats["reviews_lost"] == {"ajax_page_failed": 10, "ajax_unavailable": 170}
    assert stats["reviews_accounted"] == 200 and stats["layout_errors"] == {} and stats["blocked"] == {}
    # originals asked for; the one missing on the server replaced by its crop, counted
    photo = reviews[PHOTO_REVIEW]
    assert photo["image_urls"] == images["originals"]
    assert [i["url"] for i in photo["images"]] == images["originals"][:2] + images["crop_only"]
    assert stats["images"]["crop_fallback"] == 1 and stats["images"]["failed"] == 0
    # the card's /0/ link followed through its 301; every request with a Referer and the honest User-Agent
    paths = [path for _, path in server.log]
    assert paths.index(REDIRECTING_LIST_2026) < paths.index(REVIEW_LIST_2026)
    assert all(referer for _, referer, _ in server.headers)
    assert all(agent.startswith("zol-mimn/0.1 (+research crawler") for _, _, agent in server.headers)


@pytest.mark.parametrize("kind, page", [("verification", VERIFICATION_PAGE), ("stub", STUB_PAGE)])
def test_a_refused_review_list_ends_the_crawl_as_blocked(fixture_mirror, mirror_server, tmp_path, kind, page):
    root, _ = fixture_mirror
    server = mirror_server(root)
    server.faults.script[REVIEW_LIST] = [("body", page)] * 3  # RETRY_TIMES=2: every try refused
    result = run_crawl(tmp_path / "out", server.url, "products=1184692")
    assert result.returncode == 6, result.stderr[-3000:]
    assert result.stats["blocked"] == {kind: 3} and result.stats["retries"]["count"] == 2
    assert result.stats["layout_errors"] == {}  # not declared_count_missing nor review_page_without_reviews
    assert result.stats["finish_reason"] == "blocked"
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: blocked by the site (" + kind) and "crawl.user_agent" in last
    assert "layout or the mirror is broken" not in result.stderr


def test_a_refusal_that_passes_is_retried_and_counted(fixture_mirror, mirror_server, tmp_path):
    root, _ = fixture_mirror
    server = mirror_server(root)
    server.faults.script[REVIEW_LIST] = [("body", VERIFICATION_PAGE)]
    result = run_crawl(tmp_path / "out", server.url, "products=1184692")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stats["blocked"] == {"verification": 1} and len(result.reviews) == 29
    assert result.stats["reviews_by_layout"] == {"2018": 29}


def test_an_unreachable_site_ends_the_crawl_as_network(tmp_path):
    with socket.socket() as probe:  # a loopback port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_crawl(tmp_path / "out", f"http://127.0.0.1:{port}", f"products={PRODUCT_2026}")
    assert result.returncode == 7, result.stderr[-3000:]
    assert result.stats["network_failures"] == {"review_list": 1} and result.stats["layout_errors"] == {}
    assert result.stderr.strip().splitlines()[-1].startswith("error: network failure (")


@pytest.mark.parametrize("fail_on_drift, exit_code", [(True, 5), (False, 0)])
def test_losing_the_short_texts_is_layout_drift(site_2026, mirror_server, tmp_path, fail_on_drift, exit_code):
    root, _ = site_2026
    page = root / REVIEW_LIST_2026
    page.write_bytes(page.read_bytes().replace(b'class="words-article"', b'class="words-article-v2"'))
    result = run_crawl(
        tmp_path / "out",
        mirror_server(root).url,
        f"products={PRODUCT_2026}",
        settings=(f"ZOL_FAIL_ON_LAYOUT_DRIFT={int(fail_on_drift)}",),
    )
    assert result.returncode == exit_code, result.stderr[-3000:]
    assert len(result.reviews) == 20 and result.stats["field_coverage"]["2026-short"]["text"] == 0.0
    assert result.stats["layout_errors"] == {"field_coverage/2026-short.text": 1}
    assert "layout drift (field_coverage): 0.00 of the reviews carry 2026-short.text" in result.stderr
    if fail_on_drift:
        assert result.stderr.strip().splitlines()[-1].startswith("error: layout drift: 2026-short.text 0.00")
