"""Parse the review list page (`review.shtml`) and the AJAX fragments: the product and each `div.comments-item`.

Both eras of the site (docs/zol-site.md): the 2018 markup, the 2026 one (a scored format and a short format without
aspect scores), and the 2016-17 layout ("Older layout") as fallback. Every function is
pure: a parsel Selector (and the page URL, against which every link and image URL is resolved) in, plain values
out; the spider counts what is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from parsel import Selector

from crawler.items import ReviewItem
from crawler.parse_text import (
    clean_text,
    crop_image_url,
    original_image_url,
    parse_date,
    parse_int,
    parse_number,
    score_key,
    star_width,
    unique,
)
from crawler.urls import LONG_REVIEW_RE, long_review_product_id, long_review_url, resolve, short_review_url

REVIEW_NODES = ("div#_j_comment_list div.comments-item", "div.comments-item", "li.comment-item")
_PRO_FIELD_RE = r"{field}\s*:\s*['\"]([^'\"]*)['\"]"
_SHORT_REVIEW_ID_RE = re.compile(r"review_0_0_(\d+)_")
_SCORE_TEXT_RE = re.compile(r"^\s*([^\d：:]+?)\s*[：:]?\s*(\d+(?:\.\d+)?)\s*$")
LAYOUTS = ("2018", "2026-scored", "2026-short")  # the review formats a written review names (its `layout`)


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str | None
    brand: str | None
    rank: int | None = None  # 1-based place in the hot ranking; None when not crawled from it
    listed_score: float | None = None  # the score the ranking card shows


@dataclass(frozen=True)
class ListedReview:
    """One review as the list shows it; `long_url` is set for a long review (长篇) whose full page holds the rest."""

    item: ReviewItem
    long_url: str | None
    unknown_labels: tuple[str, ...]


def _first(sel: Selector, *queries: str) -> str | None:
    """First non-blank result among CSS queries tried in order (the 2018 one first, then fallbacks)."""
    for query in queries:
        for value in sel.css(query).getall():
            if value and value.strip():
                return value.strip()
    return None


def _class_xpath(name: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


# ---- product ---------------------------------------------------------------------------------------------


def _pro_var(page: Selector, field: str) -> str | None:
    script = page.xpath("//script[contains(., '_PRO_')]/text()").get() or ""
    match = re.search(_PRO_FIELD_RE.format(field=field), script)
    return match.group(1).strip() or None if match else None


def _parse_product_name(page: Selector) -> str | None:
    name = _first(page, "h1.product-model__name::text", "div.product-model h1::text", "h1::text")
    return re.sub(r"点评$", "", name).strip() or None if name else None


def _parse_brand(page: Selector) -> str | None:
    brand = _pro_var(page, "manuName")
    if brand:
        return brand
    crumb = clean_text(page.css("a#_j_breadcrumb::text").getall())
    return re.sub(r"手机$", "", crumb).strip() or None if crumb else None


def parse_product(
    page: Selector, product_id: str, rank: int | None = None, listed_score: float | None = None
) -> Product:
    """The product of a review list page; `product_id` (from the URL) is the fallback for `_PRO_.proId`."""
    return Product(
        _pro_var(page, "proId") or product_id, _parse_product_name(page), _parse_brand(page), rank, listed_score
    )


def declared_rating_count(page: Selector) -> int | None:
    """How many reviews the product claims to have: `89人评分` under its total score (2018), else the first filter
    tab `产品点评(9885)` (2026)."""
    return parse_int(_first(page, "div.total-num span::text", 'ul._j_filter_tab li[data-level="0"]::text'))


def has_more_reviews(page: Selector) -> bool:
    """The list page offers more reviews (查看更多 / 下一页) than it embeds."""
    return bool(
        page.css("a#_j_view_more_comments") or page.xpath("//div[contains(@class,'page')]//a[contains(., '下一页')]")
    )


def review_nodes(page: Selector) -> list[Selector]:
    for query in REVIEW_NODES:
        nodes = page.css(query)
        if nodes:
            return list(nodes)
    return []


# ---- one review --------------------------------------------------------------------------------------------


def _parse_review_id(node: Selector) -> str | None:
    rid = _first(
        node, "a._j_review_vote::attr(data-rid)", "[data-rid]::attr(data-rid)", "[data-review-id]::attr(data-review-id)"
    )
    if rid:
        return rid
    match = _SHORT_REVIEW_ID_RE.search(" ".join(node.css("a::attr(href)").getall()))
    return match.group(1) if match else None


def _parse_data_proid(node: Selector, product: Product) -> str:
    """The product the review's own links name (`data-proid`): a variant of the listed product, or the product."""
    return _first(node, "a._j_review_vote::attr(data-proid)", "[data-proid]::attr(data-proid)") or product.product_id


def _parse_author(node: Selector) -> str | None:
    return _first(
        node, "div.comments-user a.name::text", "div.comments-user-name span::text", "div.comments-user-name a::text"
    )


def _parse_published(node: Selector, crawl_date: date) -> str | None:
    return parse_date(
        _first(node, "div.function-handle span.date::text", "div.single-score span.date::text", "span.date::text"),
        crawl_date,
    )


def _title_link(node: Selector) -> Selector | None:
    for query in ("div.comment-list-content div.title > a", "div.title > a", "div.comments-content h3 a"):
        links = node.css(query)
        if links:
            return links[0]
    return None


def _parse_title(node: Selector) -> str | None:
    link = _title_link(node)
    return clean_text(link.css("::text").getall()) if link is not None else None


def _parse_long_url(node: Selector, product_id: str, base: str) -> str | None:
    """The long-review page: the title or 查看全文 link to an evaluation page (resolved against the page), else built
    from a non-zero `data-aid`."""
    for href in node.css("div.title a::attr(href), div.view-more a::attr(href), h3 a::attr(href)").getall():
        if LONG_REVIEW_RE.search(href):
            return resolve(base, href) or long_review_url(product_id, LONG_REVIEW_RE.search(href).group(1))
    aid = _first(node, "a._j_review_vote::attr(data-aid)", "[data-aid]::attr(data-aid)")
    if (aid and aid != "0") or node.css("div.icon-long"):
        return long_review_url(product_id, aid) if aid and aid != "0" else None
    return None


def _words(node: Selector, kind: str) -> str | None:
    """Text after `strong.good|bad|summary` (优点/缺点/总结): the next `p` (2018: `div.words`;
    2016: `div.comments-words`)."""
    texts = node.xpath(f".//strong[{_class_xpath(kind)}]/following-sibling::p[1]//text()").getall()
    return clean_text(texts)


def _parse_pros(node: Selector) -> str | None:
    return _words(node, "good")


def _parse_cons(node: Selector) -> str | None:
    return _words(node, "bad")


def _parse_summary(node: Selector) -> str | None:
    return _words(node, "summary")


def _parse_body(node: Selector) -> str | None:
    """`div.words-article p`: a 2026 short review's whole text; in 2018 a long review's excerpt on the list (its
    body when the long page cannot be had)."""
    return clean_text(node.css("div.words-article p ::text").getall())


def _parse_layout(node: Selector, scores: dict[str, float], long_url: str | None) -> str:
    """Which format the review is in: 2026 reviews have `p.good-score` (empty on short ones); a short review's
    text sits in `div.words-article` without a long page to be the excerpt of."""
    if node.css("p.good-score"):
        return "2026-scored" if scores else "2026-short"
    if node.css("div.words-article") and not scores and not long_url:
        return "2026-short"
    return "2018"


def _parse_scores(node: Selector) -> tuple[dict[str, float], tuple[str, ...]]:
    """Aspect scores (`续航：<em>10</em>`) by canonical key; unknown labels kept under their own label."""
    scores: dict[str, float] = {}
    unknown: list[str] = []
    cells = node.css("div.single-score p span") or node.css("ul.score-item li")
    for cell in cells:
        value = parse_number(cell.css("em::text").get())
        label = "".join(cell.xpath("./text()").getall()).strip()
        if value is None or not label:
            match = _SCORE_TEXT_RE.match(" ".join(t.strip() for t in cell.css("::text").getall()))
            if not match:
                continue
            label, value = match.group(1), float(match.group(2))
        key, known = score_key(label)
        if not key:
            continue
        scores[key] = value
        if not known:
            unknown.append(key)
    return scores, tuple(unknown)


def _parse_overall_score(node: Selector) -> float | None:
    """The number beside the star bar (2018), else the star bar's width / 10 (2026 shows only the bar): both on the
    site's 10-point scale (a width of 92 % stands beside 9.2 on every 2018 review)."""
    number = parse_number(
        _first(
            node,
            "div.single-score div.score > span::text",
            "div.single-score span.score::text",
            "div.single-score em.score::text",
        )
    )
    if number is not None:
        return number
    width = star_width(_first(node, "div.single-score div.star em::attr(style)"))
    return round(width / 10, 2) if width is not None else None


def _review_images(node: Selector) -> list[Selector]:
    return (
        node.css("ul.media-group-haoshuo li img")
        or node.css("div.media-group ul li img")
        or node.xpath(".//img[@data-bigurl]")
    )


def _image_url(img: Selector, base: str) -> str | None:
    return original_image_url(
        base, img.attrib.get("data-bigurl"), img.attrib.get("data-middleurl"), img.attrib.get("src")
    )


def _parse_image_urls(node: Selector, base: str) -> list[str]:
    return unique([_image_url(img, base) for img in _review_images(node)])


def _parse_image_crops(node: Selector, base: str) -> dict[str, str]:
    """Original URL -> the crop the page links (2026 `data-bigurl`), the fallback when the original fails."""
    crops = {}
    for img in _review_images(node):
        original, crop = _image_url(img, base), crop_image_url(base, img.attrib.get("data-bigurl"))
        if original and crop and crop != original:
            crops.setdefault(original, crop)
    return crops


def _counter(node: Selector, query: str) -> int | None:
    """`348赞` -> 348; a bare `评论` / `赞` (the site drops the number at zero) -> 0; no link at all -> None."""
    links = node.css(query)
    if not links:
        return None
    value = parse_int(clean_text(links[0].css("::text").getall()))
    return 0 if value is None else value


def _parse_likes(node: Selector) -> int | None:
    return _counter(node, "a._j_review_vote")


def _parse_replies(node: Selector) -> int | None:
    return _counter(node, "a._j_review_reply")


def parse_review(node: Selector, product: Product, crawl_date: date, base: str) -> ListedReview | None:
    """One `div.comments-item` of the page at URL `base` -> the review as listed; None when it has no review id
    (nothing to key it by). `product_id` is the listed (ranked) product; `review_product_id` the product the
    review itself is filed under (its long page's URL, else `data-proid`), which can be a sibling variant."""
    review_id = _parse_review_id(node)
    if not review_id:
        return None
    own_product = _parse_data_proid(node, product)
    long_url = _parse_long_url(node, own_product, base)
    scores, unknown = _parse_scores(node)
    layout = _parse_layout(node, scores, long_url)
    item = ReviewItem(
        review_id=review_id,
        product_id=product.product_id,
        product_name=product.name,
        brand=product.brand,
        url=long_url or short_review_url(own_product, review_id),
        author=_parse_author(node),
        published=_parse_published(node, crawl_date),
        title=_parse_title(node),
        pros=_parse_pros(node),
        cons=_parse_cons(node),
        summary=_parse_summary(node),
        body=_parse_body(node),
        scores=scores,
        overall_score=_parse_overall_score(node),
        image_urls=_parse_image_urls(node, base),
        likes=_parse_likes(node),
        replies=_parse_replies(node),
        review_product_id=(long_review_product_id(long_url) if long_url else None) or own_product,
        product_rank=product.rank,
        product_listed_score=product.listed_score,
        layout=layout,
        image_crops=_parse_image_crops(node, base),
    )
    return ListedReview(item, long_url, unknown)
