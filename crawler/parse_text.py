"""Small text helpers shared by the page parsers: whitespace, numbers, dates, score labels, image URLs."""

from __future__ import annotations

import re
from datetime import date, datetime

from common.aspects import canonical_aspect, normalise_label
from crawler.urls import resolve

_INT_RE = re.compile(r"\d+")
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
_FULL_DATE_RE = re.compile(
    r"(\d{4})\s*[年\-/.]\s*(\d{1,2})\s*[月\-/.]\s*(\d{1,2})\s*日?[\sT]*(?:(\d{1,2}):(\d{2})(?::(\d{2}))?)?"
)
_YEARLESS_DATE_RE = re.compile(r"(\d{1,2})\s*月\s*(\d{1,2})\s*日(?:\s*(\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_THUMBNAIL_SEGMENT_RE = re.compile(r"/t_s\d+x\d+[a-z0-9]*/")
_STAR_WIDTH_RE = re.compile(r"width\s*:\s*(\d+(?:\.\d+)?)\s*%")


def clean_text(parts: list[str] | str | None) -> str | None:
    """Text nodes -> one string: each line stripped, blank lines dropped, lines joined by newlines; None if empty."""
    if parts is None:
        return None
    text = parts if isinstance(parts, str) else "\n".join(parts)
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    joined = "\n".join(line for line in lines if line)
    return joined or None


def parse_int(text: str | None) -> int | None:
    """First integer in `348赞` / `1条评论`; None when there is none."""
    if not text:
        return None
    match = _INT_RE.search(text.replace(",", ""))
    return int(match.group()) if match else None


def parse_number(text: str | None) -> float | None:
    if not text:
        return None
    match = _NUMBER_RE.search(text)
    return float(match.group()) if match else None


def parse_date(text: str | None, crawl_date: date) -> str | None:
    """`发表于：2017年12月25日 03:35`, `2018-01-09 11:06:57` or yearless `发表于：01月10日 11:21` -> ISO 8601.

    A yearless date takes the crawl's year, or the year before when that would put it after the crawl date.
    """
    if not text:
        return None
    if match := _FULL_DATE_RE.search(text):
        year, month, day = (int(g) for g in match.group(1, 2, 3))
        clock = match.group(4, 5, 6)
    elif match := _YEARLESS_DATE_RE.search(text):
        month, day = int(match.group(1)), int(match.group(2))
        clock = match.group(3, 4, 5)
        year = crawl_date.year
        try:
            if date(year, month, day) > crawl_date:
                year -= 1
        except ValueError:
            return None
    else:
        return None
    try:
        if clock[0] is None:
            return date(year, month, day).isoformat()
        return datetime(year, month, day, int(clock[0]), int(clock[1]), int(clock[2] or 0)).isoformat()
    except ValueError:
        return None


def score_key(label: str) -> tuple[str, bool]:
    """(key, known): the canonical aspect key, or the normalised label itself when it is unknown."""
    key = canonical_aspect(label)
    return (key, True) if key else (normalise_label(label), False)


def star_width(style: str | None) -> float | None:
    """`width:96%` (the star bar's style) -> 96.0; None when there is no width in percent or it is above 100."""
    match = _STAR_WIDTH_RE.search(style or "")
    if not match or float(match.group(1)) > 100:
        return None
    return float(match.group(1))


def original_image_url(base: str, big: str | None, *fallbacks: str | None) -> str | None:
    """The original-size URL: `data-bigurl` (2018: the original; 2026: a crop `/t_s400x300c/g7/…`), else a thumbnail
    URL, with any size segment `/t_s…/` removed; resolved against the page URL `base` (relative and
    protocol-relative URLs are common), absolute https. A URL that cannot be made absolute comes back as it is
    written: the image pipeline counts it as a bad URL instead of losing it quietly."""
    for url in (big, *fallbacks):
        if url and url.strip():
            text = _THUMBNAIL_SEGMENT_RE.sub("/", url.strip(), count=1)
            return resolve(base, text) or text
    return None


def crop_image_url(base: str, big: str | None) -> str | None:
    """The crop `data-bigurl` names when it has a size segment (2026), absolute; None for an original (2018)."""
    if not big or not _THUMBNAIL_SEGMENT_RE.search(big):
        return None
    return resolve(base, big.strip())


def unique(urls: list[str | None]) -> list[str]:
    """Drop empties and repeats, keeping the first occurrence's position."""
    seen: dict[str, None] = {}
    for url in urls:
        if url and url not in seen:
            seen[url] = None
    return list(seen)
