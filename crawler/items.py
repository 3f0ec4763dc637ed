"""The item the `zol` spider yields: the fields of the raw contract (common.contract RAW_FIELDS, then CRAWL_FIELDS),
and `image_crops`, which only the image pipeline reads and which is not written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ReviewItem:
    review_id: str
    product_id: str
    product_name: str | None = None
    brand: str | None = None
    url: str | None = None
    author: str | None = None
    published: str | None = None
    title: str | None = None
    pros: str | None = None
    cons: str | None = None
    summary: str | None = None
    body: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    overall_score: float | None = None
    image_urls: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    likes: int | None = None
    replies: int | None = None
    source: str = "zol"
    crawled_at: str | None = None
    # common.contract.CRAWL_FIELDS
    review_product_id: str | None = None
    product_rank: int | None = None
    product_listed_score: float | None = None
    layout: str | None = None
    # not written: original image URL -> the crop the page links, downloaded when the original fails
    image_crops: dict[str, str] = field(default_factory=dict)
