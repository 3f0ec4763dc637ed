"""Parse a long review page (长篇, `t.zol.com.cn/57/{proId}/evaluation_{aid}.html`); markup in docs/zol-site.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from parsel import Selector

from crawler.parse_text import clean_text, original_image_url, parse_date, parse_int, parse_number, score_key, unique


@dataclass(frozen=True)
class LongReview:
    """What the long page says; None / empty where the page does not say it (the list's value is kept then)."""

    title: str | None
    author: str | None
    published: str | None
    likes: int | None
    replies: int | None
    overall_score: float | None
    scores: dict[str, float]
    unknown_labels: tuple[str, ...]
    pros: str | None
    cons: str | None
    body: str | None
    image_urls: list[str]


def _parse_title(page: Selector) -> str | None:
    return clean_text(page.css("h1.title ::text").getall())


def _parse_author(page: Selector) -> str | None:
    return clean_text(page.css("div.user-info span.name ::text").getall())


def _parse_published(page: Selector, crawl_date: date) -> str | None:
    return parse_date(clean_text(page.css("span.time ::text").getall()), crawl_date)


def _parse_likes(page: Selector) -> int | None:
    return parse_int(clean_text(page.css("span._j_vote_num ::text").getall()))


def _parse_replies(page: Selector) -> int | None:
    return parse_int(clean_text(page.css("div.discuss-btn ::text").getall()))


def _parse_overall_score(page: Selector) -> float | None:
    return parse_number(page.css("div.total-score strong::text").get())


def _parse_scores(page: Selector) -> tuple[dict[str, float], tuple[str, ...]]:
    scores: dict[str, float] = {}
    unknown: list[str] = []
    for row in page.css("ul.score-list li"):
        label = clean_text(row.css("span.label ::text").getall())
        value = parse_number(clean_text(row.css("span.score-num ::text").getall()))
        if not label or value is None:
            continue
        key, known = score_key(label)
        scores[key] = value
        if not known:
            unknown.append(key)
    return scores, tuple(unknown)


def _list_items(page: Selector, box: str) -> str | None:
    return clean_text([clean_text(li.css("::text").getall()) or "" for li in page.css(f"{box} ol li")])


def _parse_pros(page: Selector) -> str | None:
    return _list_items(page, "div.merits")


def _parse_cons(page: Selector) -> str | None:
    return _list_items(page, "div.faults")


# headings and paragraphs at any depth inside a section, in page order (2018: `div.article-header > h4` and
# `div.article-content > p`; older pages put them directly in the section); a block inside another is not repeated
_BLOCKS = (
    ".//*[self::h2 or self::h3 or self::h4 or self::h5 or self::p][not(ancestor::p or ancestor::h2 "
    "or ancestor::h3 or ancestor::h4 or ancestor::h5)]"
)


def _parse_body(page: Selector) -> str | None:
    """Every `div.article-item`: its headings (they carry sentiment too: "音质没有Mate9好") and paragraphs, in page
    order, one per line; without sections, the paragraphs of `div.article-box`."""
    sections = page.css("div.article-box div.article-item") or page.css("div.article-box")
    lines: list[str] = []
    for section in sections:
        for block in section.xpath(_BLOCKS):
            text = clean_text(block.css("::text").getall())
            if text:
                lines.append(text)
    return "\n".join(lines) or None


def _parse_image_urls(page: Selector, base: str) -> list[str]:
    imgs = page.css("div.article-box div.figure img") or page.css("div.figure img")
    return unique([original_image_url(base, img.attrib.get("data-bigurl"), img.attrib.get("src")) for img in imgs])


def parse_long_review(page: Selector, crawl_date: date, base: str) -> LongReview:
    """The long page at URL `base` (image URLs are resolved against it)."""
    scores, unknown = _parse_scores(page)
    return LongReview(
        title=_parse_title(page),
        author=_parse_author(page),
        published=_parse_published(page, crawl_date),
        likes=_parse_likes(page),
        replies=_parse_replies(page),
        overall_score=_parse_overall_score(page),
        scores=scores,
        unknown_labels=unknown,
        pros=_parse_pros(page),
        cons=_parse_cons(page),
        body=_parse_body(page),
        image_urls=_parse_image_urls(page, base),
    )


def looks_like_long_review(review: LongReview) -> bool:
    """The page carried the article (its reason to be fetched); otherwise it is truncated or its layout changed,
    and the list's data stays."""
    return bool(review.body)
