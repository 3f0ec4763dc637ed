"""The raw review record: the contract between the crawler (or the Multi-ZOL importer) and the data stages.

One JSON object per review, one per line, in `<raw dir>/reviews.jsonl`; downloaded images live under
`<raw dir>/images/` and each entry of `images` gives its `path` relative to that folder.
"""

from __future__ import annotations

RAW_FIELDS: tuple[str, ...] = (
    "review_id",  # str
    "product_id",  # str
    "product_name",  # str
    "brand",  # str
    "url",  # str: the review's own page (short review page or long-review page)
    "author",  # str | None
    "published",  # ISO 8601 date or datetime | None
    "title",  # str | None
    "pros",  # str | None
    "cons",  # str | None
    "summary",  # str | None
    "body",  # str | None: full text of a long review, else None
    "scores",  # dict[str, float]: canonical aspect key (or unknown label as-is) -> score
    "overall_score",  # float | None
    "image_urls",  # list[str]: original-size URLs in page order (absolute, https)
    "images",  # list[{url, path, checksum, status}]: the downloaded ones; path relative to images/
    "likes",  # int | None
    "replies",  # int | None
    "source",  # "zol" | "multizol"
    "crawled_at",  # ISO 8601 datetime (UTC)
)

REVIEWS_FILE = "reviews.jsonl"
IMAGES_DIR = "images"
STATS_FILE = "crawl_stats.json"

# Extra optional field written by the Multi-ZOL importer: the split the release put each aspect in,
# canonical aspect key -> "train" | "dev" | "test".
RELEASE_SPLIT_FIELD = "release_split"

# Extra optional field written by the Multi-ZOL importer: true when the text (`body`) is already
# segmented (space-separated words, as in the release's zol_*_jieba.txt); the segment stage keeps it.
SEGMENTED_FIELD = "segmented"

# ---- optional fields written by the zol crawler (absent in imported Multi-ZOL records) ------------------------
# `product_id` above is the product whose review list the review was read from (the ranked product that
# `product_name`, `brand` and the two fields below describe). ZOL lists the reviews of sibling variants (4 GB /
# 6 GB models) together, so the review itself can be filed under another product id: `review_product_id`.
CRAWL_FIELDS: tuple[str, ...] = (
    "review_product_id",  # str: the product of the review's own page (long-review URL `/57/{proId}/`, else
    #      the review's `data-proid`); equals product_id unless the review is a variant's
    "product_rank",  # int | None: 1-based place of product_id in the hot ranking; None with crawl.products
    "product_listed_score",  # float | None: the score shown on product_id's ranking card
    "layout",  # "2018" | "2026-scored" | "2026-short": the review format it was read from
    #      (docs/zol-site.md); a 2026-short review has text and overall_score, no scores
)
