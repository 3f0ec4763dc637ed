"""Parse a hot-ranking page: the ranked product cards in rank order, and the link to the next page.

The ranking is the cards of `ul#J_PicMode` (`li[data-follow-id="p{proId}"]`), not every product link of the
page: the same page links unranked phones too (search hot words, the 手机新品 sidebar, 新增点评产品, 大家说, ...).
See docs/zol-site.md. Pure functions: a parsel Selector (and the page URL) in, plain values out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parsel import Selector

from crawler.parse_text import clean_text, parse_int, parse_number
from crawler.urls import PRODUCT_LINK_RE, REVIEW_LIST_LINK_RE, resolve, review_list_url

CARDS = "ul#J_PicMode > li[data-follow-id]"
RANKING_LIST = "ul#J_PicMode"
_FOLLOW_ID_RE = re.compile(r"^p?(\d+)$")


@dataclass(frozen=True)
class RankedProduct:
    product_id: str
    name: str | None
    listed_score: float | None  # the card's score (span.score), None when the card shows none
    listed_reviews: int | None  # "55人点评" on the card
    review_list_url: str  # the card's 人点评 link when it is a review.shtml of this product, else built


def _parse_card_product_id(card: Selector) -> str | None:
    match = _FOLLOW_ID_RE.match((card.attrib.get("data-follow-id") or "").strip())
    if match:
        return match.group(1)
    for href in card.css("a::attr(href)").getall():
        if found := PRODUCT_LINK_RE.search(href):
            return found.group(1)
    return None


def _parse_card_name(card: Selector) -> str | None:
    link = card.css("h3 > a")
    if not link:
        return None
    return clean_text(link[0].css("::text").getall()) or (link[0].attrib.get("title") or "").strip() or None


def _parse_card_score(card: Selector) -> float | None:
    return parse_number(clean_text(card.css("span.score ::text").getall()))


def _parse_card_review_count(card: Selector) -> int | None:
    return parse_int(clean_text(card.css("a.comment-num ::text").getall()))


def _parse_card_review_list(card: Selector, product_id: str, page_url: str) -> str:
    href = resolve(page_url, card.css("a.comment-num::attr(href)").get())
    match = REVIEW_LIST_LINK_RE.search(href or "")
    return href if match and match.group(1) == product_id else review_list_url(product_id)


def ranked_cards(page: Selector) -> list[Selector]:
    return list(page.css(CARDS))


def parse_card(card: Selector, page_url: str) -> RankedProduct | None:
    """One card -> its product; None when the card carries no product id at all."""
    product_id = _parse_card_product_id(card)
    if not product_id:
        return None
    return RankedProduct(
        product_id,
        _parse_card_name(card),
        _parse_card_score(card),
        _parse_card_review_count(card),
        _parse_card_review_list(card, product_id, page_url),
    )


def ranking_list_links(page: Selector, page_url: str) -> list[RankedProduct]:
    """Fallback when the cards lost their markup: product links inside the ranking list only, in page order."""
    seen: dict[str, RankedProduct] = {}
    for href in page.css(f"{RANKING_LIST} a::attr(href)").getall():
        match = PRODUCT_LINK_RE.search(href)
        if match and match.group(1) not in seen:
            seen[match.group(1)] = RankedProduct(match.group(1), None, None, None, review_list_url(match.group(1)))
    return list(seen.values())


def next_ranking_page(page: Selector, page_url: str) -> str | None:
    href = page.css("div.pagebar a.next::attr(href)").get() or page.xpath("//a[contains(., '下一页')]/@href").get()
    return resolve(page_url, href)
