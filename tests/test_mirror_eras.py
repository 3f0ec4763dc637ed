"""The offline mirror's eras (sample.era): 2026 pages shaped like the real page of June 2026, a manifest that
agrees with them, a mixed site, the 2018 site unchanged, and the blocked, stub and redirect answers of the mirror."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from parsel import Selector
from PIL import Image

from common.aspects import canonical_aspect
from crawler.urls import ajax_review_url, ranking_url, redirecting_review_list_url, review_list_url
from sitegen.era2026 import ERAS, LAYOUT_SCORED, LAYOUT_SHORT, apply_era, products_in_2026
from sitegen.mirror import generate_mirror, main
from sitegen.plan import plan_site

REPO = Path(__file__).resolve().parents[1]
REAL_2026 = REPO / "tests" / "fixtures" / "zol-2026" / "review.shtml"  # the page saved from the live site
SMALL_2026 = dict(products=3, reviews_per_product=23, seed=11, era="2026")
CROP_RE = re.compile(r"^//pro-fd\.zol-img\.com\.cn/t_s400x300c/g7/M00/[0-9A-F]{2}/[0-9A-F]{2}/[\w-]+\.jpg$")
DATE_RE = re.compile(r"^发表于：(\d{4})年(\d\d)月(\d\d)日 (\d\d):(\d\d)$")


def site_file(root: Path, url: str) -> Path:
    return root / url.split("://", 1)[1]


def page_of(path: Path) -> Selector:
    return Selector(text=path.read_bytes().decode("gb18030"))  # the real page is GB18030 bytes declared GBK


@pytest.fixture(scope="module")
def site26(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("era2026") / "site"
    return root, generate_mirror(root, **SMALL_2026)


# ---- an independent reader of the 2026 markup, with plain selectors (the spider has its own) -------------------


def star_width(node: Selector) -> int:
    return int(re.fullmatch(r"width:(\d+)%", node.css("div.single-score div.star em::attr(style)").get()).group(1))


def read_item(node: Selector) -> dict:
    scores = {}
    for span in node.css("div.single-score p.good-score span"):
        label = span.xpath("./text()").get().strip().rstrip("：")
        scores[canonical_aspect(label) or label] = float(span.css("em::text").get())
    words = {
        strong.css("::text").get(): strong.xpath("following-sibling::p[1]/text()").get()
        for strong in node.css("div.words > strong")
    }
    return {
        "review_id": node.css("a._j_review_vote::attr(data-rid)").get(),
        "aid": node.css("a._j_review_vote::attr(data-aid)").get(),
        "layout": LAYOUT_SCORED if scores else LAYOUT_SHORT,
        "scores": scores,
        "width": star_width(node),
        "title": node.css("div.title > a::text").get(),
        "words": words,
        "article": node.css("div.words-article p::text").get(),
        "good_score_children": len(node.css("div.single-score p.good-score *")),
        "bigurls": node.css("div.media-group img::attr(data-bigurl)").getall(),
        "date": node.css("div.function-handle span.date::text").get(),
        "numeric_overall": node.css("div.single-score div.score span").getall(),
    }


def describe(page: Selector) -> dict:
    """What the selectors of the 2026 markup find on a review list, as kinds (not values)."""
    items = [read_item(node) for node in page.css("div#_j_comment_list div.comments-item")]
    scored = [i for i in items if i["layout"] == LAYOUT_SCORED]
    short = [i for i in items if i["layout"] == LAYOUT_SHORT]
    return {
        "declared_count_tab": bool(
            re.fullmatch(r"产品点评\(\d+\)", page.css('ul._j_filter_tab li[data-level="0"]::text').get() or "")
        ),
        "total_num": bool(page.css("div.total-num")),
        "product": (
            bool(re.search(r"proId: '\d+'", page.get())),
            page.css("h1.product-model__name::text").get("").endswith("点评"),
            bool(page.css("a#_j_breadcrumb::attr(data-manuid)").get()),
            bool(page.css("a#_j_view_more_comments")),
        ),
        "formats": (bool(scored), bool(short)),
        "scored": {
            (
                bool(i["title"]),
                len(i["scores"]),
                i["width"] == round(2 * sum(i["scores"].values())),
                tuple(i["words"]),
                i["article"] is None,
            )
            for i in scored
        },
        "short": {
            (i["title"] is None, i["good_score_children"], i["width"] % 20 == 0, bool(i["article"]), i["words"] == {})
            for i in short
        },
        "no_long_reviews": {i["aid"] for i in items},
        "numeric_overall": {bool(i["numeric_overall"]) for i in items},
        "dates_with_year": {bool(DATE_RE.match(i["date"])) for i in items},
        "crops": {bool(CROP_RE.match(u)) for i in items for u in i["bigurls"]},
    }


def test_generated_2026_page_has_the_real_pages_structure(site26):
    root, manifest = site26
    real = describe(page_of(REAL_2026))
    assert real["formats"] == (True, True) and real["crops"] == {True}  # the reader works on the real page
    assert real["scored"] == {(True, 5, True, ("最满意", "最不满意"), True)}
    for product in manifest["products"]:
        generated = describe(page_of(site_file(root, review_list_url(product["product_id"]))))
        assert generated == real, product["product_id"]


def listed_2026(root: Path, product_id: str) -> tuple[list[dict], list[int]]:
    """The reviews of review.shtml, then of the 2019 AJAX form's pages from 3 until its `div.empty-comment`."""
    items = [read_item(n) for n in page_of(site_file(root, review_list_url(product_id))).css("div.comments-item")]
    page, sizes = 3, []
    while True:
        answer = json.loads(site_file(root, ajax_review_url(product_id, page, "2019")).read_bytes().decode("ascii"))
        fragment = Selector(text=answer["list"])
        nodes = fragment.css("div.comments-item")
        sizes.append(len(nodes))
        if fragment.css("div.empty-comment"):
            assert not nodes and "isEnd" not in answer
            return items, sizes
        items += [read_item(n) for n in nodes]
        page += 1


def test_2026_manifest_agrees_with_the_pages(site26):
    root, manifest = site26
    by_id = {r["review_id"]: r for r in manifest["reviews"]}
    seen = []
    for product in manifest["products"]:
        pid = product["product_id"]
        page = page_of(site_file(root, review_list_url(pid)))
        truths = [r for r in manifest["reviews"] if r["product_id"] == pid]
        assert page.css('ul._j_filter_tab li[data-level="0"]::text').get() == f"产品点评({len(truths)})"
        items, sizes = listed_2026(root, pid)
        assert sizes == [10] * ((len(truths) - 20) // 10) + ([len(truths) % 10] if len(truths) % 10 else []) + [0]
        assert not site_file(root, ajax_review_url(pid, 3)).exists()  # the 2018 form is not served for 2026
        assert sum(r["layout"] == LAYOUT_SCORED for r in truths) == (len(truths) + 1) // 2  # a fixed half is scored
        for item in items:
            truth = by_id[item["review_id"]]
            seen.append(item["review_id"])
            assert item["layout"] == truth["layout"] and item["aid"] == "0" and not truth["long"]
            assert item["scores"] == truth["scores"]
            assert item["width"] / 10 == truth["overall_score"]
            text = truth["text"]
            if truth["layout"] == LAYOUT_SCORED:
                assert (item["title"], item["words"]["最满意"], item["words"]["最不满意"]) == (
                    text["title"],
                    text["pros"],
                    text["cons"],
                )
                assert text["body"] is None and text["summary"] is None
            else:
                assert truth["scores"] == {} and item["width"] in (20, 40, 60, 80, 100)
                assert item["article"] == text["body"] and text["title"] is None and text["pros"] is None
            year, month, day, hour, minute = DATE_RE.match(item["date"]).groups()
            assert truth["published"] == f"{year}-{month}-{day}T{hour}:{minute}:00"
            originals = ["https:" + u.replace("t_s400x300c/", "", 1) for u in item["bigurls"]]
            assert originals == truth["image_urls"] and len(originals) == truth["n_images"] <= 3
            for crop, original in zip(item["bigurls"], originals, strict=False):
                full = Image.open(io.BytesIO(site_file(root, original).read_bytes()))
                cropped = Image.open(io.BytesIO(site_file(root, "https:" + crop).read_bytes()))
                assert cropped.size == (400, 300) and full.size != (400, 300)
    assert sorted(seen) == sorted(by_id)  # every review listed exactly once
    assert manifest["era"] == "2026" and manifest["crawl_date"] == "2026-06-24" and manifest["edge_cases"] == {}
    layouts = {r["layout"] for r in manifest["reviews"]}
    assert layouts == {LAYOUT_SCORED, LAYOUT_SHORT}


def test_redirects_and_faults_of_a_2026_site(site26):
    root, manifest = site26
    ids = [p["product_id"] for p in manifest["products"]]
    moved = {redirecting_review_list_url(pid).split("://")[1]: review_list_url(pid) for pid in ids[::2]}
    assert manifest["redirects"] == moved
    assert json.loads((root / "redirects.json").read_text(encoding="utf-8")) == moved
    ranking = page_of(site_file(root, ranking_url(1)))
    links = ranking.css("ul#J_PicMode a.comment-num::attr(href)").getall()
    assert links == [
        f"/0/{ids[0]}/review.shtml",
        review_list_url(ids[1]).split(".com.cn")[1],
        f"/0/{ids[2]}/review.shtml",
    ]
    assert manifest["faults"] == {
        ajax_review_url(ids[0], 3, "2019").split("://")[1]: [503],
        review_list_url(ids[0]).split("://")[1]: ["blocked"],
        review_list_url(ids[1]).split("://")[1]: ["stub"],
    }
    assert json.loads((root / "faults.json").read_text(encoding="utf-8")) == manifest["faults"]


def test_mixed_site_keeps_the_edge_cases_in_2018_and_shows_both_eras(tmp_path):
    manifest = generate_mirror(tmp_path / "mixed", products=12, reviews_per_product=4, seed=7, era="mixed")
    again = generate_mirror(tmp_path / "again", products=12, reviews_per_product=4, seed=7, era="mixed")
    assert again == manifest
    ids = [p["product_id"] for p in manifest["products"]]
    in_2026 = manifest["products_in_2026"]
    assert not set(ids[:3]) & set(in_2026) and len(in_2026) == 5  # half of the nine after the edge-case products
    for pid in ids:
        page = page_of(site_file(tmp_path / "mixed", review_list_url(pid)))
        assert bool(page.css("div.total-num")) == (pid not in in_2026)
        assert bool(page.css("ul._j_filter_tab")) == (pid in in_2026)
    layouts = {r["review_id"]: r["layout"] for r in manifest["reviews"]}
    assert {layouts[r["review_id"]] for r in manifest["reviews"] if r["product_id"] not in in_2026} == {"2018"}
    assert {layouts[r["review_id"]] for r in manifest["reviews"] if r["product_id"] in in_2026} == {
        LAYOUT_SCORED,
        LAYOUT_SHORT,
    }
    assert len(manifest["edge_cases"]) == 14 and manifest["crawl_date"] == "2018-09-15"
    assert products_in_2026(12, "mixed", 7) == [ids.index(pid) for pid in in_2026]
    assert products_in_2026(12, "mixed", 8) != products_in_2026(12, "mixed", 7)  # drawn from the seed


def test_default_mixed_sample_keeps_most_reviews_scored():
    """make run's sample (12 products x 25, seed 7, mixed): short reviews are cleaned out as no_score; the
    scored ones left must still give the model its pairs."""
    site, unranked = plan_site(12, 25, 7)
    apply_era(site, unranked, 7, "mixed")  # what generate_mirror does before writing (the same reviews)
    reviews = [r for p in site for r in p.reviews]
    layouts = [r.layout for r in reviews]
    assert len(layouts) == 33 + 11 * 25
    assert (layouts.count("2018"), layouts.count(LAYOUT_SCORED), layouts.count(LAYOUT_SHORT)) == (183, 65, 60)
    assert all(r.scores for r in reviews if r.layout != LAYOUT_SHORT)
    assert not any(r.scores for r in reviews if r.layout == LAYOUT_SHORT)


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_era_2018_writes_the_bytes_of_before(tmp_path):
    """The 2018 site is what the generator wrote before eras existed (digest taken from that generator)."""
    generate_mirror(tmp_path / "site", products=3, reviews_per_product=10, seed=11, era="2018")
    assert _digest(tmp_path / "site") == "f41864cd3725791c61562dad08651c9963022fde8e5393676010ffc1630efb50"
    assert not (tmp_path / "site" / "redirects.json").exists()


# ---- the era parameter --------------------------------------------------------------------------------------


def test_cli_era_help_and_bad_value(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "--era {2018,2026,mixed}" in capsys.readouterr().out
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "sitegen.mirror",
            "--out",
            str(tmp_path / "n"),
            "--products",
            "1",
            "--reviews-per-product",
            "2",
            "--seed",
            "5",
            "--era",
            "2019",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr == "error: era must be one of 2018 | 2026 | mixed, got '2019'\n"
    assert "Traceback" not in bad.stderr and not (tmp_path / "n").exists()


@given(era=st.text(max_size=8).filter(lambda text: text not in ERAS))
def test_any_other_era_is_refused_in_one_line_before_writing(tmp_path_factory, era):
    out = tmp_path_factory.mktemp("bad") / "site"
    with pytest.raises(ValueError) as refused:
        generate_mirror(out, products=1, reviews_per_product=1, seed=1, era=era)
    assert str(refused.value).startswith("era must be one of 2018 | 2026 | mixed, got ")
    assert "\n" not in str(refused.value) and not out.exists()


def test_params_and_stage_declare_the_era():
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    assert params["sample"]["era"] == "mixed"
    stage = yaml.safe_load((REPO / "sources/zol/dvc.yaml").read_text(encoding="utf-8"))["stages"]["sample_site"]
    assert "--era ${sample.era}" in stage["cmd"] and "sample" in stage["params"]  # the whole section


# ---- the mirror's scripted answers: blocked, stub, redirect ---------------------------------------------------


def test_folder_mirror_plays_blocked_stub_and_redirect(tmp_path):
    from scrapy.http import Request

    from crawler.mirror import MirrorDownloadHandler, ScriptedFaults, load_redirects

    page = "detail.zol.com.cn/1428/1427365/review.shtml"
    (tmp_path / page).parent.mkdir(parents=True)
    (tmp_path / page).write_bytes("<html><title>点评</title></html>".encode("gbk"))
    (tmp_path / "faults.json").write_text(json.dumps({page: ["blocked", "stub", 503]}), encoding="utf-8")
    (tmp_path / "redirects.json").write_text(
        json.dumps({"detail.zol.com.cn/0/1427365/review.shtml": "https://" + page}), encoding="utf-8"
    )
    # the folder half of the handler, without the network handler it keeps beside (that one needs a reactor)
    handler = MirrorDownloadHandler.__new__(MirrorDownloadHandler)
    handler.base, handler.maxsize = tmp_path, 0
    handler.faults, handler.redirects = (
        ScriptedFaults(tmp_path / "faults.json"),
        load_redirects(tmp_path / "redirects.json"),
    )
    url = "https://" + page
    answers = [handler._from_folder(Request(url), page) for _ in range(4)]
    assert [a.status for a in answers] == [200, 200, 503, 200]
    assert answers[0].css("title::text").get() == "您正在进行防刷验证..." and not answers[0].css("div.comments-item")
    assert 120 <= len(answers[1].body) <= 180 and b"<title>" not in answers[1].body
    assert answers[3].body == (tmp_path / page).read_bytes()
    moved = handler._from_folder(
        Request("https://detail.zol.com.cn/0/1427365/review.shtml"), "detail.zol.com.cn/0/1427365/review.shtml"
    )
    assert moved.status == 301 and moved.headers[b"Location"] == url.encode()


def test_http_mirror_plays_blocked_stub_and_redirect(tmp_path, mirror_server):
    import urllib.error
    import urllib.request

    from crawler.mirror import BLOCKED_PAGE, STUB_PAGE

    page = "detail.zol.com.cn/1428/1427365/review.shtml"
    (tmp_path / page).parent.mkdir(parents=True)
    (tmp_path / page).write_bytes(b"<html>ok</html>")
    (tmp_path / "faults.json").write_text(json.dumps({page: ["stub", "blocked"]}), encoding="utf-8")
    (tmp_path / "redirects.json").write_text(
        json.dumps({"detail.zol.com.cn/0/1427365/review.shtml": "https://" + page}), encoding="utf-8"
    )
    server = mirror_server(tmp_path)
    bodies = [urllib.request.urlopen(f"{server.url}/{page}", timeout=5).read() for _ in range(3)]
    assert bodies == [STUB_PAGE, BLOCKED_PAGE, b"<html>ok</html>"]

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as moved:
        opener.open(f"{server.url}/detail.zol.com.cn/0/1427365/review.shtml", timeout=5)
    assert moved.value.code == 301 and moved.value.headers["Location"] == "https://" + page
