"""The raw review record: the contract between the crawler (or the Multi-ZOL importer) and the data stages.

One JSON object per review, one per line, in `<raw dir>/reviews.jsonl`; downloaded images live under
`<raw dir>/images/` and each entry of `images` gives its `path` relative to that folder.
"""
from __future__ import annotations

RAW_FIELDS: tuple[str, ...] = (
    "review_id",       # str
    "product_id",      # str
    "product_name",    # str
    "brand",           # str
    "url",             # str: the review's own page (short review page or long-review page)
    "author",          # str | None
    "published",       # ISO 8601 date or datetime | None
    "title",           # str | None
    "pros",            # str | None
    "cons",            # str | None
    "summary",         # str | None
    "body",            # str | None: full text of a long review, else None
    "scores",          # dict[str, float]: canonical aspect key (or unknown label as-is) -> score
    "overall_score",   # float | None
    "image_urls",      # list[str]: original-size URLs in page order (absolute, https)
    "images",          # list[{url, path, checksum, status}]: the downloaded ones; path relative to images/
    "likes",           # int | None
    "replies",         # int | None
    "source",          # "zol" | "multizol"
    "crawled_at",      # ISO 8601 datetime (UTC)
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
