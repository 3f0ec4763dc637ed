"""Item pipelines: download each review's original images once, then write reviews.jsonl and crawl_stats.json.

Outputs under ZOL_OUT (names from common.contract): `reviews.jsonl` (UTF-8, one line per review_id, sorted by
(product_id, review_id), written to a temp file and renamed at close), `crawl_stats.json`, `images/`.
With JOBDIR every item is also appended to a partial file there, so a crawl killed midway and resumed
writes every review exactly once.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from itemadapter import ItemAdapter
from scrapy import Request, signals
from scrapy.pipelines.files import FilesPipeline, FSFilesStore
from scrapy.http.request import NO_CALLBACK

from common.atomic import write_bytes, write_json, write_text
from common.contract import RAW_FIELDS, REVIEWS_FILE, STATS_FILE
from crawler.resume import partial_path, read_partial

logger = logging.getLogger(__name__)

_SAFE_STEM_RE = re.compile(r"^[A-Za-z0-9_\-.]+$")
_SAFE_EXT_RE = re.compile(r"^\.[A-Za-z0-9]{1,5}$")
MAX_FILE_NAME = 180


def image_file_name(url: str) -> str:
    """Multi-ZOL's convention: the URL with `:` and `/` made `_`, real extension kept
    (`https___pro-fd.zol-img.com.cn_g5_M00_01_04_ChMk...526.jpg`); a sha1 name when too long or odd."""
    path_part = url.split("?", 1)[0].split("#", 1)[0]
    ext = os.path.splitext(path_part.rsplit("/", 1)[-1])[1]
    ext = ext.lower() if _SAFE_EXT_RE.match(ext) else ""
    name = url.replace(":", "_").replace("/", "_")
    if len(name) <= MAX_FILE_NAME and _SAFE_STEM_RE.match(name) and ext and name.lower().endswith(ext) \
            and ".." not in name:
        return name
    return hashlib.sha1(url.encode("utf-8")).hexdigest() + ext


class AtomicFSFilesStore(FSFilesStore):
    """Files written to a temp name and renamed, so a killed crawl never leaves a torn image that a resumed
    crawl would then take as already downloaded."""

    def persist_file(self, path, buf, info, meta=None, headers=None) -> None:
        target = self._get_filesystem_path(path)
        self._mkdir(target.parent, info)
        write_bytes(buf.getvalue(), target)


class ReviewImagesPipeline(FilesPipeline):
    """Originals stored as served (no re-encoding), one download per URL; failures counted, never fatal."""

    STORE_SCHEMES = {**FilesPipeline.STORE_SCHEMES, "": AtomicFSFilesStore, "file": AtomicFSFilesStore}

    def get_media_requests(self, item: Any, info) -> list[Request]:
        adapter = ItemAdapter(item)
        headers = {"Referer": adapter.get("url")} if adapter.get("url") else {}
        return [Request(url, callback=NO_CALLBACK, headers=headers, meta={"zol_kind": "image"})
                for url in adapter.get(self.files_urls_field) or []]

    def file_path(self, request: Request, response=None, info=None, *, item: Any = None) -> str:
        return image_file_name(request.url)

    def item_completed(self, results, item: Any, info) -> Any:
        stats = self.crawler.stats
        ok = [value for success, value in results if success]
        failed = len(results) - len(ok)
        stats.inc_value("zol/images/ok", len(ok))
        if failed:
            stats.inc_value("zol/images/failed", failed)
            logger.warning("%d of %d image(s) of review %s could not be downloaded",
                           failed, len(results), ItemAdapter(item).get("review_id"))
        ItemAdapter(item)[self.files_result_field] = ok
        return item


def _record(item: Any, crawled_at: str) -> dict[str, Any]:
    data = asdict(item) if is_dataclass(item) else dict(ItemAdapter(item))
    data["crawled_at"] = crawled_at or datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return {field: data.get(field) for field in RAW_FIELDS}


def _sort_key(record: dict[str, Any]) -> tuple:
    def natural(value: Any) -> tuple[int, str]:
        text = str(value)
        return (0, text.zfill(24)) if text.isdigit() else (1, text)
    return natural(record["product_id"]), natural(record["review_id"])


def write_reviews(records: list[dict[str, Any]], path: Path) -> None:
    """One JSON object per line, sorted, UTF-8; temp file + rename so a reader never sees half a file."""
    write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in sorted(records, key=_sort_key)),
               path)


def crawl_summary(stats: dict[str, Any], reviews: int, finish_reason: str) -> dict[str, Any]:
    """crawl_stats.json: the crawler's counters grouped by what they count."""

    def group(prefix: str) -> dict[str, Any]:
        return {key[len(prefix):]: value for key, value in sorted(stats.items()) if key.startswith(prefix)}

    return {
        "finish_reason": finish_reason,
        "reviews": reviews,
        "reviews_scraped_this_run": stats.get("zol/reviews/scraped", 0),
        "duplicates_skipped": stats.get("zol/reviews/duplicates_skipped", 0) + stats.get("zol/reviews/duplicate_items", 0),
        "resumed_from_jobdir": stats.get("zol/reviews/resumed", 0),
        "pages": group("zol/pages/"),
        "page_failures": group("zol/page_failures/"),
        "parse_failures": group("zol/parse_failures/"),
        "layout_errors": group("zol/layout/"),
        "long_fallback_to_list": stats.get("zol/long/fallback_to_list", 0),
        "decode_errors": group("zol/decode_errors/"),
        "aspects": group("zol/aspects/"),
        "unknown_labels": group("zol/unknown_labels/"),
        "images": {"urls": stats.get("zol/image_urls", 0), "ok": stats.get("zol/images/ok", 0),
                   "failed": stats.get("zol/images/failed", 0), "files": group("file_status_count/")},
        "retries": {"count": stats.get("retry/count", 0), "max_reached": stats.get("retry/max_reached", 0),
                    "reasons": group("retry/reason_count/")},
        "http_statuses": group("downloader/response_status_count/"),
        "exceptions": group("downloader/exception_type_count/"),
        "requests": stats.get("downloader/request_count", 0),
        "robots_forbidden": stats.get("robotstxt/forbidden", 0),
    }


class ReviewJsonlPipeline:
    def __init__(self, crawler) -> None:
        self.crawler = crawler
        self.out = Path(crawler.settings.get("ZOL_OUT") or "data/raw/zol")
        self.crawled_at = crawler.settings.get("ZOL_CRAWLED_AT") or ""
        self.partial = partial_path(crawler.settings.get("JOBDIR"))
        self.records: dict[str, dict[str, Any]] = {}
        self.partial_file = None

    @classmethod
    def from_crawler(cls, crawler):
        pipeline = cls(crawler)
        # outputs are written on spider_closed, the first moment the close reason is known
        crawler.signals.connect(pipeline.spider_closed, signal=signals.spider_closed)
        return pipeline

    def open_spider(self, spider=None) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        if self.partial is not None:
            self.records = read_partial(self.partial)
            self.crawler.stats.set_value("zol/reviews/resumed", len(self.records))
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            torn = self.partial.is_file() and self.partial.stat().st_size and not self.partial.read_bytes().endswith(b"\n")
            self.partial_file = self.partial.open("a", encoding="utf-8")
            if torn:  # killed mid-line: start the next record on a line of its own
                self.partial_file.write("\n")
            if self.records:
                logger.info("resuming: %d review(s) already scraped in %s", len(self.records), self.partial)

    def process_item(self, item: Any, spider=None) -> Any:
        record = _record(item, self.crawled_at)
        review_id = str(record["review_id"])
        if review_id in self.records:
            self.crawler.stats.inc_value("zol/reviews/duplicate_items")
            return item
        self.records[review_id] = record
        if self.partial_file is not None:
            self.partial_file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.partial_file.flush()
        return item

    def close_spider(self, spider=None) -> None:
        if self.partial_file is not None:
            self.partial_file.close()
            self.partial_file = None

    def spider_closed(self, spider, reason: str) -> None:
        write_reviews(list(self.records.values()), self.out / REVIEWS_FILE)
        summary = crawl_summary(self.crawler.stats.get_stats(), len(self.records), reason)
        write_json(summary, self.out / STATS_FILE, sort_keys=False)
        spider.reviews_written = len(self.records)
        if not self.records:
            logger.error("the crawl yielded no reviews at all: the site layout or the mirror is broken "
                         "(see %s)", self.out / STATS_FILE)
        logger.info("wrote %d review(s) to %s (%d image(s) ok, %d failed)", len(self.records),
                    self.out / REVIEWS_FILE, summary["images"]["ok"], summary["images"]["failed"])
