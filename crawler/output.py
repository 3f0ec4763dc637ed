"""What a crawl writes, in one place: the names of its files, `reviews.jsonl` (one record a line, sorted), the
crawl report `crawl_stats.json` and its one summary line, and the file name of each downloaded image.

The single-process crawl (crawler.pipelines), a shared crawl's merge (crawler.merge) and the DVC stage
(crawler.crawl) all write and read through these, so their outputs are the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from itemadapter import ItemAdapter

from common.atomic import write_text
from common.contract import CRAWL_FIELDS, RAW_FIELDS
from crawler.coverage import field_coverage, reviews_by_layout

JOURNAL_FILE = "journal.jsonl"  # a shared crawl's worker: every review it wrote, one a line (crawler.merge)
WORKER_STATS_FILE = "worker_stats.json"  # a shared crawl's worker: its counters at close (crawler.redis_backend)

_SAFE_STEM_RE = re.compile(r"^[A-Za-z0-9_\-.]+$")
_SAFE_EXT_RE = re.compile(r"^\.[A-Za-z0-9]{1,5}$")
MAX_FILE_NAME = 180
URL_HASH_CHARS = 16


def image_file_name(url: str) -> str:
    """A file name no other URL can get: Multi-ZOL's readable form of the URL (`:` and `/` made `_`, as in
    `https___pro-fd.zol-img.com.cn_g5_M00_01_04_ChMk...526.jpg`) followed by 16 hex digits of the URL's sha1 and
    the URL's extension. The readable part alone is ambiguous (`x_y/1.jpg`, `x/y_1.jpg` and `x/y/1.jpg` all give
    `x_y_1.jpg`); the hash is not. Odd or very long URLs keep only the hash."""
    path_part = url.split("?", 1)[0].split("#", 1)[0]
    ext = os.path.splitext(path_part.rsplit("/", 1)[-1])[1]
    ext = ext.lower() if _SAFE_EXT_RE.match(ext) else ""
    digest = hashlib.sha1(url.encode("utf-8")).hexdigest()
    readable = url.replace(":", "_").replace("/", "_")
    if ext and readable.lower().endswith(ext):
        readable = readable[: -len(ext)]
    name = f"{readable}.{digest[:URL_HASH_CHARS]}{ext}"
    if len(name) <= MAX_FILE_NAME and _SAFE_STEM_RE.match(readable) and ".." not in readable:
        return name
    return digest + ext


def review_record(item: Any, crawled_at: str) -> dict[str, Any]:
    data = asdict(item) if is_dataclass(item) else dict(ItemAdapter(item))
    data["crawled_at"] = crawled_at or datetime.now(UTC).replace(microsecond=0).isoformat()
    return {field: data.get(field) for field in (*RAW_FIELDS, *CRAWL_FIELDS)}


def _sort_key(record: dict[str, Any]) -> tuple:
    def natural(value: Any) -> tuple[int, str]:
        text = str(value)
        return (0, text.zfill(24)) if text.isdigit() else (1, text)

    return natural(record["product_id"]), natural(record["review_id"])


def write_reviews(records: list[dict[str, Any]], path: Path) -> None:
    """One JSON object per line, sorted, UTF-8; temp file + rename so a reader never sees half a file."""
    write_text(
        "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in sorted(records, key=_sort_key)), path
    )


def crawl_summary(
    stats: dict[str, Any], reviews: int, finish_reason: str, records: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """crawl_stats.json: the crawler's counters grouped by what they count (docs/crawling.md explains each); with the
    written `records`, the reviews per format and each format's field coverage."""

    def group(prefix: str) -> dict[str, Any]:
        return {key[len(prefix) :]: value for key, value in sorted(stats.items()) if key.startswith(prefix)}

    lost = group("zol/lost/")
    return {
        "finish_reason": finish_reason,
        "reviews": reviews,
        "reviews_lost": lost,
        "reviews_accounted": reviews + sum(lost.values()),
        "reviews_scraped_this_run": stats.get("zol/reviews/scraped", 0),
        "reviews_by_layout": reviews_by_layout(records or []),
        "reviews_without_scores": stats.get("zol/reviews/without_scores", 0),
        "field_coverage": field_coverage(records or []),
        "duplicates_skipped": stats.get("zol/reviews/duplicates_skipped", 0)
        + stats.get("zol/reviews/duplicate_items", 0),
        "resumed_from_jobdir": stats.get("zol/reviews/resumed", 0),
        "resume_untrusted_records": stats.get("zol/resume/untrusted_records", 0),
        "pages": group("zol/pages/"),
        "page_failures": group("zol/page_failures/"),
        "requests_dropped": group("zol/requests_dropped/"),
        "parse_failures": group("zol/parse_failures/"),
        "layout_errors": group("zol/layout/"),
        "blocked": group("zol/blocked/"),
        "network_failures": group("zol/network/"),
        "ajax": group("zol/ajax/"),
        "long_fallback_to_list": stats.get("zol/long/fallback_to_list", 0),
        "long_offsite": stats.get("zol/long/offsite", 0),
        "long_shared_url": stats.get("zol/long/shared_url", 0),
        "decode_errors": group("zol/decode_errors/"),
        "aspects": group("zol/aspects/"),
        "unknown_labels": group("zol/unknown_labels/"),
        "images": {
            "urls": stats.get("zol/image_urls", 0),
            "capped": stats.get("zol/images/capped", 0),
            "ok": stats.get("zol/images/ok", 0),
            "failed": stats.get("zol/images/failed", 0),
            "crop_fallback": stats.get("zol/images/crop_fallback", 0),
            "failed_by_reason": group("zol/images/failed_by_reason/"),
            "files": group("file_status_count/"),
        },
        "retries": {
            "count": stats.get("retry/count", 0),
            "max_reached": stats.get("retry/max_reached", 0),
            "reasons": group("retry/reason_count/"),
        },
        "http_statuses": group("downloader/response_status_count/"),
        "exceptions": group("downloader/exception_type_count/"),
        "requests": stats.get("downloader/request_count", 0),
        "robots_forbidden": stats.get("robotstxt/forbidden", 0),
    }


def summary_line(stats: dict[str, Any]) -> str:
    """The stage's one line about a finished crawl, from its crawl_stats.json."""
    pages = sum(stats.get("pages", {}).values())
    failures = sum(stats.get("page_failures", {}).values()) + sum(stats.get("parse_failures", {}).values())
    layout = sum(stats.get("layout_errors", {}).values())
    lost = sum(stats.get("reviews_lost", {}).values())
    images = stats.get("images", {})
    line = (
        f"crawl: {pages} pages -> {stats.get('reviews', 0)} reviews ({lost} lost), images {images.get('ok', 0)} ok / "
        f"{images.get('failed', 0)} failed, {failures} page/parse failures, {layout} layout errors, "
        f"{stats.get('retries', {}).get('count', 0)} retries"
    )
    poison = sum(stats.get("frontier_poison", {}).values())
    if poison:  # set aside unread: were any this crawl's own requests, the reviews behind them are missing
        line += f"; {poison} Redis queue member(s) set aside as poison, unread (crawl_stats.json frontier_poison)"
    return line
