"""The offline-mirror generator: determinism, pages that agree with the manifest, edge cases, learnable content."""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
import sys
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urljoin

import numpy as np
import pytest
import yaml
from parsel import Selector
from PIL import Image

from common.aspects import canonical_aspect
from common.errors import UserError
from common.params import read_section, section_defaults
from crawler.urls import ajax_review_url, long_review_url, ranking_url, review_list_url
from sitegen.mirror import SampleParams, generate_mirror, main
from sitegen.plan import EDGE_CASES, plan_site
from sitegen.text import PHRASES, compose_text

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(products=3, reviews_per_product=10, seed=11)


def site_file(root: Path, url: str) -> Path:
    return root / url.split("://", 1)[1]


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("small") / "site"
    return root, generate_mirror(root, **SMALL)


# ---- a tiny independent parser of the 2018 markup (the spider has its own) ------------------------------------


def parse_items(html: str, base: str = "https://detail.zol.com.cn/") -> list[dict]:
    items = []
    for node in Selector(text=html).css("div.comments-item"):
        scores = {}
        for span in node.css("div.single-score p span"):
            label = span.xpath("./text()").get().strip().rstrip("：")
            scores[canonical_aspect(label) or label] = float(span.css("em::text").get())
        items.append(
            {
                "review_id": node.css("a._j_review_vote::attr(data-rid)").get(),
                "aid": node.css("a._j_review_vote::attr(data-aid)").get(),
                "scores": scores,
                "overall": float(node.css("div.single-score div.score span::text").get()),
                "bigurls": [urljoin(base, u) for u in node.css("img::attr(data-bigurl)").getall()],
                "proid": node.css("a._j_review_vote::attr(data-proid)").get(),
                "date": node.css("span.date::text").get(),
                "long_icon": bool(node.css("div.icon-long")),
                "title_href": node.css("div.title > a::attr(href)").get(),
                "text": " ".join(node.css("div.words p::text").getall()),
                "likes": node.css("a._j_review_vote::text").get(),
            }
        )
    return items


def gbk_page(path: Path) -> str:
    raw = path.read_bytes()
    html = raw.decode("gbk")  # strict: every byte must decode
    assert '<meta charset="GBK"/>' in html
    return html


def listed_reviews(root: Path, product_id: str) -> tuple[list[dict], list[int]]:
    """Every review on review.shtml and the AJAX pages after it, and the isEnd flags of those pages."""
    items = parse_items(gbk_page(site_file(root, review_list_url(product_id))))
    ends, page = [], 3
    while site_file(root, ajax_review_url(product_id, page)).is_file():
        answer = json.loads(site_file(root, ajax_review_url(product_id, page)).read_bytes().decode("ascii"))
        items += parse_items(answer["list"])
        ends.append(answer["isEnd"])
        page += 1
    return items, ends


def resolve(date_text: str, crawl_date: date) -> str:
    if m := re.search(r"(\d{4})年(\d\d)月(\d\d)日 (\d\d):(\d\d)", date_text):
        return datetime(*map(int, m.groups())).isoformat()
    month, day, hour, minute = map(int, re.search(r"(\d\d)月(\d\d)日 (\d\d):(\d\d)", date_text).groups())
    year = crawl_date.year - (date(crawl_date.year, month, day) > crawl_date)
    return datetime(year, month, day, hour, minute).isoformat()


# ---- determinism and atomic rewrite -------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_rewrites_whole(small, tmp_path):
    root, _ = small
    again = tmp_path / "again"
    (again / "stale.txt").parent.mkdir(parents=True)
    (again / "stale.txt").write_text("left over from an older mirror")
    generate_mirror(again, **SMALL)
    first, second = all_files(root), all_files(again)
    assert sorted(first) == sorted(second)  # stale.txt is gone
    assert all(first[name] == second[name] for name in first)
    assert [p.name for p in tmp_path.iterdir()] == ["again"]  # no temp folder left beside it


def test_different_seed_gives_a_different_site(small, tmp_path):
    root, manifest = small
    other = generate_mirror(tmp_path / "other", **{**SMALL, "seed": 12})
    assert [p["product_id"] for p in other["products"]] != [p["product_id"] for p in manifest["products"]]
    assert all_files(root)["manifest.json"] != all_files(tmp_path / "other")["manifest.json"]


# ---- manifest <-> pages -------------------------------------------------------------------------------------


def test_manifest_schema(small):
    _, manifest = small
    assert set(manifest) == {"seed", "crawl_date", "products", "reviews", "edge_cases", "unranked_products", "faults"}
    assert [p["rank"] for p in manifest["products"]] == [1, 2, 3]
    assert all(p["rank"] is None for p in manifest["unranked_products"]) and len(manifest["unranked_products"]) == 4
    assert manifest["faults"] == {ajax_review_url(manifest["products"][0]["product_id"], 3).split("://")[1]: [503]}
    assert json.loads((small[0] / "faults.json").read_text(encoding="utf-8")) == manifest["faults"]
    assert manifest["seed"] == 11 and manifest["crawl_date"] == "2018-09-15"
    assert [
        len([r for r in manifest["reviews"] if r["product_id"] == p["product_id"]]) for p in manifest["products"]
    ] == [33, 10, 10]
    review = manifest["reviews"][0]
    assert set(review) == {
        "review_id",
        "product_id",
        "review_product_id",
        "long",
        "aid",
        "scores",
        "overall_score",
        "n_images",
        "image_urls",
        "published",
    }
    ids = [r["review_id"] for r in manifest["reviews"]]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"1[5-6]\d{5}", i) for i in ids)
    aids = [r["aid"] for r in manifest["reviews"] if r["long"]]
    assert len(set(aids)) == len(aids) and all(r["aid"] is None for r in manifest["reviews"] if not r["long"])
    on_disk = json.loads((small[0] / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == manifest


def test_pages_agree_with_manifest(small):
    root, manifest = small
    crawl_date = date.fromisoformat(manifest["crawl_date"])
    by_id = {r["review_id"]: r for r in manifest["reviews"]}
    seen = []
    for product in manifest["products"]:
        pid = product["product_id"]
        page = Selector(text=gbk_page(site_file(root, review_list_url(pid))))
        assert page.css("h1.product-model__name::text").get() == product["name"] + "点评"
        assert f"proId: '{pid}'" in page.get() and f"manuName: '{product['brand']}'" in page.get()
        assert page.css("a#_j_breadcrumb::attr(data-manuid)").get()
        assert page.css("a#_j_view_more_comments::text").get() == "查看更多"
        assert len(page.css("div#_j_comment_list div.comments-item")) == min(
            20, len([r for r in manifest["reviews"] if r["product_id"] == pid])
        )
        items, ends = listed_reviews(root, pid)
        assert ends == ([0] * (len(ends) - 1) + [1] if ends else [])
        for item in items:
            truth = by_id[item["review_id"]]
            seen.append(item["review_id"])
            assert item["scores"] == truth["scores"]
            assert item["overall"] == truth["overall_score"]
            assert resolve(item["date"], crawl_date) == truth["published"]
            assert re.fullmatch(r"\d+赞", item["likes"])
            bigurls = item["bigurls"]
            own = truth["review_product_id"]
            assert item["proid"] == own
            if truth["long"]:
                assert item["aid"] == truth["aid"]
                long_url = long_review_url(own, truth["aid"])
                assert urljoin(review_list_url(pid), item["title_href"]).replace("http:", "https:") == long_url
                long_page = Selector(text=gbk_page(site_file(root, long_url)))
                figures = [
                    urljoin(long_url, u) for u in long_page.css("div.article-box div.figure img::attr(src)").getall()
                ]
                # the crawl's order: the long page's figures, then the list's pictures that are not among them
                assert figures + [u for u in bigurls if u not in figures] == truth["image_urls"]
                assert set(bigurls[-3:]) <= set(figures)
                assert float(long_page.css("div.total-score strong::text").get()) == truth["overall_score"]
                assert len(long_page.css("ul.score-list li span.score-num")) == len(truth["scores"])
            else:
                assert item["aid"] == "0" and bigurls == truth["image_urls"]
            assert len(set(truth["image_urls"])) == truth["n_images"]
            for url in truth["image_urls"]:
                assert site_file(root, url).is_file()
    assert sorted(seen) == sorted(by_id)  # every review is listed exactly once


def test_ranking_pages_link_every_product_and_chain_with_next(tmp_path):
    manifest = generate_mirror(tmp_path / "site", products=23, reviews_per_product=1, seed=3)
    linked, page, nexts = [], 1, []
    while site_file(tmp_path / "site", ranking_url(page)).is_file():
        sel = Selector(text=gbk_page(site_file(tmp_path / "site", ranking_url(page))))
        cards = sel.css("ul#J_PicMode > li[data-follow-id]")
        linked += re.findall(r"/cell_phone/index(\d+)\.shtml", " ".join(cards.css("h3 a::attr(href)").getall()))
        every_link = set(re.findall(r"/cell_phone/index(\d+)\.shtml", " ".join(sel.css("a::attr(href)").getall())))
        # as on the real page, unranked phones are linked too (hot words, sidebars), outside the cards
        assert {p["product_id"] for p in manifest["unranked_products"]} <= every_link
        nexts.append(sel.css("div.pagebar a.next::attr(href)").get())
        page += 1
    assert linked == [p["product_id"] for p in manifest["products"]]
    assert nexts == [
        "/cell_phone_index/subcate57_0_list_1_0_1_2_0_2.html",
        "/cell_phone_index/subcate57_0_list_1_0_1_2_0_3.html",
        None,
    ]
    assert sel.css("div.pagebar a.next::text").get() is None
    for product in manifest["products"]:
        product_page = gbk_page(
            site_file(tmp_path / "site", f"https://detail.zol.com.cn/cell_phone/index{product['product_id']}.shtml")
        )
        assert review_list_url(product["product_id"]).split(".com.cn")[1] in product_page


# ---- edge cases ---------------------------------------------------------------------------------------------


def test_every_edge_case_is_present(small):
    root, manifest = small
    cases = manifest["edge_cases"]
    assert set(cases) == set(EDGE_CASES)
    by_id = {r["review_id"]: r for r in manifest["reviews"]}
    ordered = [[r for r in manifest["reviews"] if r["product_id"] == p["product_id"]] for p in manifest["products"]]
    for name, (p_index, r_index) in EDGE_CASES.items():
        assert ordered[p_index][r_index]["review_id"] == cases[name]
    p0 = manifest["products"][0]["product_id"]
    items = {i["review_id"]: i for p in manifest["products"] for i in listed_reviews(root, p["product_id"])[0]}

    many = by_id[cases["long_many_images"]]
    assert many["long"] and many["n_images"] == 12 and len(items[many["review_id"]]["bigurls"]) == 3
    assert items[many["review_id"]]["date"] == "发表于：01月10日 11:21" and many["published"] == "2018-01-10T11:21:00"
    assert items[cases["long_dated"]]["date"] == "发表于：2017年12月25日 03:35"
    assert any(s != int(s) for s in by_id[cases["editor_decimal"]]["scores"].values())
    assert any(s != int(s) for s in by_id[cases["ajax_editor_decimal"]]["scores"].values())
    assert set(by_id[cases["six_aspects"]]["scores"]) == {
        "battery",
        "camera",
        "performance",
        "appearance",
        "price_performance",
        "screen",
    }
    assert "信号" in by_id[cases["unknown_aspect"]]["scores"]
    assert re.search(r"<span>信号：<em>\d+</em></span>", gbk_page(site_file(root, review_list_url(p0))))
    assert by_id[cases["no_images"]]["n_images"] == 0 and items[cases["no_images"]]["bigurls"] == []
    previous = items[cases["yearless_previous_year"]]
    assert "年" not in previous["date"] and by_id[cases["yearless_previous_year"]]["published"].startswith("2017-11-20")
    no_icon = items[cases["long_without_icon"]]
    assert (
        not no_icon["long_icon"]
        and "/evaluation_" in no_icon["title_href"]
        and by_id[cases["long_without_icon"]]["long"]
    )
    page3 = json.loads(site_file(root, ajax_review_url(p0, 3)).read_text(encoding="ascii"))
    assert (
        cases["ajax_long"] in {i["review_id"] for i in parse_items(page3["list"])} and by_id[cases["ajax_long"]]["long"]
    )
    assert page3["isEnd"] == 0
    assert json.loads(site_file(root, ajax_review_url(p0, 4)).read_text(encoding="ascii"))["isEnd"] == 1
    assert not site_file(root, ajax_review_url(p0, 5)).exists()
    assert not (root / "detail.zol.com.cn" / "robots.txt").exists()

    cover = by_id[cases["long_cover"]]
    assert len(items[cover["review_id"]]["bigurls"]) == 1 + min(3, cover["n_images"] - 1)
    assert items[cover["review_id"]]["bigurls"][0] == cover["image_urls"][-1]  # the cover: on the list only
    relative = cover_page = gbk_page(site_file(root, review_list_url(manifest["products"][1]["product_id"])))
    assert re.search(r'data-bigurl="/g5/M00/', relative) and 'href="//t.zol.com.cn/57/' in cover_page
    assert all(u.startswith("https://detail.zol.com.cn/g5/") for u in by_id[cases["relative_images"]]["image_urls"])
    sibling = by_id[cases["sibling_variant"]]
    assert sibling["review_product_id"] != sibling["product_id"]
    assert sibling["review_product_id"] not in {p["product_id"] for p in manifest["products"]}
    long_page = gbk_page(site_file(root, long_review_url(sibling["review_product_id"], sibling["aid"])))
    assert '<div class="article-header"><h4>' in long_page and '<div class="article-content">' in long_page


def test_ajax_json_is_escaped_as_zol_serves_it(small):
    root, manifest = small
    raw = site_file(root, ajax_review_url(manifest["products"][0]["product_id"], 3)).read_bytes()
    assert raw.isascii() and b"<\\/div>" in raw and b"\\u4f18\\u70b9" in raw  # 优点
    assert re.search(rb"[^\\]/", raw) is None  # every slash escaped


# ---- content that a model can learn -------------------------------------------------------------------------


def test_default_sample_size(tmp_path):
    """The default sample's size and score mix (its generation speed is bench/bench_mirror.py's)."""
    manifest = generate_mirror(tmp_path / "sample", products=12, reviews_per_product=25, seed=7)
    reviews = manifest["reviews"]
    images = sum(r["n_images"] for r in reviews)
    with_images = sum(r["n_images"] > 0 for r in reviews) / len(reviews)
    assert len(reviews) == 11 * 25 + 33
    assert 250 <= images <= 350 and 0.65 <= with_images <= 0.75
    scores = Counter(s for r in reviews for s in r["scores"].values() if s == int(s))
    assert set(scores) == {2, 4, 6, 8, 10}
    assert scores.most_common(2)[0][0] in (8, 10) and scores.most_common(2)[1][0] in (8, 10)
    jpegs = list((tmp_path / "sample").rglob("*.jpg"))  # most on pro-fd, a few at relative URLs of the pages' hosts
    assert len(jpegs) == images
    assert max(p.stat().st_size for p in jpegs) < 40_000


def _camera_photos(root: Path, manifest: dict) -> dict[str, list[np.ndarray]]:
    photos: dict[str, list[np.ndarray]] = {"low": [], "high": []}
    for review in manifest["reviews"]:
        camera = review["scores"]["camera"]
        band = "low" if camera <= 4 else "high" if camera >= 8 else None
        for url in review["image_urls"]:
            image = Image.open(io.BytesIO(site_file(root, url).read_bytes()))
            image.load()
            assert image.format == "JPEG" and 160 <= image.width <= 320 and 120 <= image.height <= 240
            if band:
                photos[band].append(np.asarray(image.convert("RGB"), dtype=np.float64))
    return photos


def test_images_decode_and_carry_the_camera_score(small):
    root, manifest = small
    photos = _camera_photos(root, manifest)
    assert len(photos["low"]) >= 5 and len(photos["high"]) >= 20
    brightness = {band: np.mean([p.mean() for p in ps]) for band, ps in photos.items()}
    assert brightness["high"] - brightness["low"] > 40
    cast = {band: np.mean([p[..., 2].mean() - p[..., 1].mean() for p in ps]) for band, ps in photos.items()}
    assert cast["low"] - cast["high"] > 20  # purple: more blue than green
    noise = {band: np.mean([np.abs(np.diff(p, axis=1)).mean() for p in ps]) for band, ps in photos.items()}
    assert noise["low"] > noise["high"]


def test_low_battery_score_is_worded_negatively():
    low = set(PHRASES["battery"][2] + PHRASES["battery"][4])
    high = set(PHRASES["battery"][8] + PHRASES["battery"][10])
    for seed in range(30):
        rng = random.Random(seed)
        text = compose_text(
            rng,
            {"battery": 2.0, "camera": 8.0, "performance": 10.0, "appearance": 8.0, "price_performance": 6.0},
            mention_camera=False,
            unscored_mentions={},
            long=False,
        )
        words = text.cons + text.pros
        assert any(phrase in words for phrase in low) and not any(phrase in words for phrase in high)
        assert text.cons[0] in low  # the lowest aspect leads the cons
        assert not any(p in words for b in PHRASES["camera"].values() for p in b)


def test_camera_is_described_for_about_half_of_the_reviews():
    camera_words = {p for band in PHRASES["camera"].values() for p in band}
    reviews = [r for p in plan_site(12, 25, 7)[0] for r in p.reviews]
    described = sum(any(p in camera_words for p in r.text.pros + r.text.cons) for r in reviews)
    assert 0.35 <= described / len(reviews) <= 0.65
    # other aspects are always described, with the score's band or a neighbour
    for review in reviews:
        words = review.text.pros + review.text.cons
        assert any(p in words for band in PHRASES["battery"].values() for p in band)


# ---- CLI ----------------------------------------------------------------------------------------------------


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--reviews-per-product" in capsys.readouterr().out


def test_cli_writes_a_mirror_and_rejects_bad_arguments(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sitegen.mirror",
            "--out",
            str(tmp_path / "m"),
            "--products",
            "1",
            "--reviews-per-product",
            "2",
            "--seed",
            "5",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(
        r"mirror: 1 products, 33 reviews \(\d+ long, \d+ with images\), \d+ images -> "
        rf"{re.escape(str(tmp_path / 'm'))} "
        r"\(era mixed: 33 2018\); \d+\.\d s\n",
        done.stdout,
    ), done.stdout
    assert (tmp_path / "m" / "manifest.json").is_file()
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "sitegen.mirror",
            "--out",
            str(tmp_path / "n"),
            "--products",
            "0",
            "--reviews-per-product",
            "2",
            "--seed",
            "5",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--products: must be >= 1" in bad.stderr
    assert not (tmp_path / "n").exists()


# ---- params.yaml's sample section ------------------------------------------------------------------------------


def test_sample_params_defaults_are_params_yaml():
    shipped = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["sample"]
    assert section_defaults(SampleParams) == shipped
    assert read_section(SampleParams, shipped, "sample") == SampleParams()


def test_sample_params_read_an_unquoted_year_as_its_era():
    assert read_section(SampleParams, {"era": 2018}, "sample").era == "2018"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"era": "1999"}, "params.yaml: 'sample.era' must be one of 2018 | 2026 | mixed, got '1999'"),
        ({"products": 0}, "params.yaml: 'sample.products' must be >= 1, got 0"),
        ({"reviews_per_product": "many"}, "params.yaml: 'sample.reviews_per_product' must be a whole number"),
        ({"seed": 1.5}, "params.yaml: 'sample.seed' must be a whole number, got 1.5"),
        ({"pages": 3}, "params.yaml: unknown key(s) sample.pages; valid keys: era, out, products, reviews_per_product"),
    ],
)
def test_sample_params_refuse_a_bad_value_in_one_line_naming_it(values, message):
    with pytest.raises(UserError) as refused:
        read_section(SampleParams, values, "sample")
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
