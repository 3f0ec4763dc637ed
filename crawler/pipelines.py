"""Item pipelines: download each review's original images once, then write reviews.jsonl and crawl_stats.json.

Outputs under ZOL_OUT (names from common.contract): `reviews.jsonl` (UTF-8, one line per review_id, sorted by
(product_id, review_id), written to a temp file and renamed at close), `crawl_stats.json`, `images/`.
With JOBDIR every item is also appended to a partial file there, so a crawl killed midway and resumed
writes every review exactly once. A worker of a shared crawl (ZOL_BACKEND=redis) appends every item to
`<out>/journal.jsonl` as it is written instead, and leaves reviews.jsonl and crawl_stats.json to `crawler.merge`.
"""

from __future__ import annotations

import fcntl
import json
import logging
from pathlib import Path
from typing import Any

from itemadapter import ItemAdapter
from scrapy import Request, signals
from scrapy.exceptions import DownloadCancelledError, IgnoreRequest
from scrapy.http.request import NO_CALLBACK
from scrapy.pipelines.files import FilesPipeline, FSFilesStore
from scrapy.pipelines.media import FileException

from common.atomic import write_bytes, write_json
from common.contract import REVIEWS_FILE, STATS_FILE
from crawler.attribution import attributed
from crawler.blocking import layout_failure
from crawler.coverage import coverage_drift, field_coverage
from crawler.output import JOURNAL_FILE, crawl_summary, image_file_name, review_record, write_reviews
from crawler.resume import partial_path, save_arguments
from crawler.urls import resolve

logger = logging.getLogger(__name__)

IMAGE_MAGIC: tuple[tuple[bytes, int], ...] = (  # (signature, offset): JPEG, PNG, GIF, BMP, WebP
    (b"\xff\xd8\xff", 0),
    (b"\x89PNG\r\n\x1a\n", 0),
    (b"GIF87a", 0),
    (b"GIF89a", 0),
    (b"BM", 0),
    (b"WEBP", 8),
)


def is_image(data: bytes) -> bool:
    """The bytes start like an image file (an HTML error page or a JSON answer served for an image does not)."""
    return any(data[offset : offset + len(magic)] == magic for magic, offset in IMAGE_MAGIC)


def download_plan(urls: list[str] | None, cap: int) -> tuple[list[str], list[str], int]:
    """(URLs to download, URLs that cannot be requested, URLs left out by the per-review cap): the first `cap`
    URLs of the review (0 = all), in page order."""
    urls = list(urls or [])
    kept = urls[:cap] if cap else urls
    good = [u for u in kept if isinstance(u, str) and resolve(u, u) == u]
    bad = [u for u in kept if not (isinstance(u, str) and resolve(u, u) == u)]
    return good, bad, len(urls) - len(kept)


class ImageFailed(FileException):
    """An image that could not be kept, with a short reason (the key it is counted under)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _failure_reason(exception: BaseException) -> str:
    if isinstance(exception, ImageFailed):
        return exception.reason
    cause = exception.__cause__ or exception.__context__ or exception
    if isinstance(cause, ImageFailed):
        return cause.reason
    if isinstance(cause, DownloadCancelledError) or "max size" in str(cause):
        return "too_large"
    if isinstance(cause, IgnoreRequest):
        return "filtered"
    return "download_error"


class AtomicFSFilesStore(FSFilesStore):
    """Files written to a temp name and renamed, so a killed crawl never leaves a torn image that a resumed
    crawl would then take as already downloaded."""

    def persist_file(self, path, buf, info, meta=None, headers=None) -> None:
        target = self._get_filesystem_path(path)
        self._mkdir(target.parent, info)
        write_bytes(buf.getvalue(), target)


class ReviewImagesPipeline(FilesPipeline):
    """Originals stored as served (no re-encoding), one download per URL, at most `max_images_per_review` per
    review; an image that fails (bad URL, HTTP error, too large, not an image) is counted by reason and never
    costs its review."""

    STORE_SCHEMES = {**FilesPipeline.STORE_SCHEMES, "": AtomicFSFilesStore, "file": AtomicFSFilesStore}

    def _cap(self) -> int:
        return getattr(self.crawler.spider, "max_images_per_review", 0) or 0

    def get_media_requests(self, item: Any, info) -> list[Request]:
        adapter = ItemAdapter(item)
        headers = {"Referer": adapter.get("url")} if adapter.get("url") else {}
        urls, _, _ = download_plan(adapter.get(self.files_urls_field), self._cap())
        crops = adapter.get("image_crops") or {}
        return [
            Request(url, callback=NO_CALLBACK, headers=headers, meta={"zol_kind": "image", "zol_crop": crops.get(url)})
            for url in urls
        ]

    def file_path(self, request: Request, response=None, info=None, *, item: Any = None) -> str:
        return image_file_name(request.url)

    def media_failed(self, failure, request: Request, info):
        reason = _failure_reason(failure.value)
        logger.warning("image %s not downloaded (%s): %s", request.url, reason, failure.value)
        raise ImageFailed(reason, str(failure.value))

    @staticmethod
    def _problem(response) -> str | None:
        if response.status != 200:
            return f"http_{response.status}"
        return None if is_image(response.body) else "not_an_image"

    async def media_downloaded(self, response, request: Request, info, *, item: Any = None):
        problem = self._problem(response)
        if problem and request.meta.get("zol_crop"):
            kept = await self._crop_instead(request, problem, info, item)
            if kept is not None:
                return kept
        if problem == "not_an_image":
            logger.warning(
                "%s is not an image (%d bytes starting %r); not saved",
                request.url,
                len(response.body),
                response.body[:16],
            )
        if problem:
            raise ImageFailed(problem)
        return await super().media_downloaded(response, request, info, item=item)

    async def _crop_instead(self, request: Request, problem: str, info, item: Any):
        """The original failed: the crop the page links (2026 `data-bigurl`) is kept instead, counted
        (`zol/images/crop_fallback`); None when the crop fails too."""
        crop = request.replace(url=request.meta["zol_crop"], meta={"zol_kind": "image", "handle_httpstatus_all": True})
        try:
            response = await self.crawler.engine.download_async(crop)
        except Exception as exc:  # the original's failure is the one counted
            logger.warning("crop %s of failed image %s not downloaded either: %s", crop.url, request.url, exc)
            return None
        if self._problem(response):
            return None
        self.crawler.stats.inc_value("zol/images/crop_fallback")
        logger.warning("image %s failed (%s); its crop %s is kept instead", request.url, problem, crop.url)
        return await super().media_downloaded(response, crop, info, item=item)

    def item_completed(self, results, item: Any, info) -> Any:
        with attributed(self.crawler.stats, item):
            return self._count_images(results, item)

    def _count_images(self, results, item: Any) -> Any:
        stats = self.crawler.stats
        adapter = ItemAdapter(item)
        _, bad, capped = download_plan(adapter.get(self.files_urls_field), self._cap())
        ok = [value for success, value in results if success]
        reasons = [_failure_reason(value.value) for success, value in results if not success] + ["bad_url"] * len(bad)
        stats.inc_value("zol/images/ok", len(ok))
        if capped:
            stats.inc_value("zol/images/capped", capped)
        for reason in reasons:
            stats.inc_value("zol/images/failed")
            stats.inc_value(f"zol/images/failed_by_reason/{reason}")
        if reasons:
            logger.warning(
                "%d image(s) of review %s could not be kept (%s); the review is kept",
                len(reasons),
                adapter.get("review_id"),
                ", ".join(sorted(set(reasons))),
            )
        adapter[self.files_result_field] = ok
        return item


class ReviewJsonlPipeline:
    """The reviews, kept once each by review id, written at close with the crawl report (see the module doc)."""

    def __init__(
        self,
        crawler,
        out: Path,
        crawled_at: str,
        shared: bool,
        jobdir: str | None,
        mirror: str,
        min_coverage: float,
        fail_on_drift: bool,
    ) -> None:
        self.crawler = crawler
        self.out, self.crawled_at, self.shared = out, crawled_at, shared
        self.jobdir, self.mirror = jobdir, mirror
        self.partial = out / JOURNAL_FILE if shared else partial_path(jobdir)
        self.records: dict[str, dict[str, Any]] = {}
        self.partial_file = None
        self.min_coverage, self.fail_on_drift = min_coverage, fail_on_drift

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        pipeline = cls(
            crawler,
            out=Path(settings.get("ZOL_OUT")),
            crawled_at=settings.get("ZOL_CRAWLED_AT") or "",
            shared=settings.get("ZOL_BACKEND") == "redis",
            jobdir=settings.get("JOBDIR"),
            mirror=settings.get("ZOL_MIRROR") or "",
            min_coverage=settings.getfloat("ZOL_MIN_FIELD_COVERAGE"),
            fail_on_drift=settings.getbool("ZOL_FAIL_ON_LAYOUT_DRIFT"),
        )
        # outputs are written on spider_closed, the first moment the close reason is known
        crawler.signals.connect(pipeline.spider_closed, signal=signals.spider_closed)
        return pipeline

    def open_spider(self, spider=None) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        spider = spider or self.crawler.spider
        if self.shared:
            self._open_journal()
        elif self.partial is not None:
            # only the records the spider trusts (same arguments, image files whole); the rest are crawled again
            self.records = dict(spider.resume.records)
            self.crawler.stats.set_value("zol/reviews/resumed", len(self.records))
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            if not self.partial.is_file() or not self.partial.stat().st_size:
                save_arguments(self.jobdir, spider.crawl_arguments(self.mirror))
            torn = (
                self.partial.is_file() and self.partial.stat().st_size and not self.partial.read_bytes().endswith(b"\n")
            )
            self.partial_file = self.partial.open("a", encoding="utf-8")
            if torn:  # killed mid-line: start the next record on a line of its own
                self.partial_file.write("\n")
            if self.records:
                logger.info("resuming: %d review(s) already scraped in %s", len(self.records), self.partial)

    def _open_journal(self) -> None:
        """One worker a folder: a second worker on the same folder is refused (its lines would interleave)."""
        self.partial_file = self.partial.open("a", encoding="utf-8")
        try:
            fcntl.flock(self.partial_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.partial_file.close()
            self.partial_file = None
            raise RuntimeError(
                f"{self.partial} is written by another worker: give each worker its own -a out="
            ) from None
        if self.partial.stat().st_size and not self.partial.read_bytes().endswith(b"\n"):
            self.partial_file.write("\n")  # a killed worker's torn last line stays on its own

    def _check_coverage(self, spider, coverage: dict[str, dict[str, float]]) -> None:
        """A field a format always carries on fewer than `min_coverage` of its reviews: counted, ERROR, and (with
        ZOL_FAIL_ON_LAYOUT_DRIFT) the crawl's failure unless it already failed for another cause."""
        problems = coverage_drift(coverage, self.min_coverage)
        for problem in problems:
            self.crawler.stats.inc_value(f"zol/layout/field_coverage/{problem.split()[0]}")
            logger.error(
                "layout drift (field_coverage): %s of the reviews carry %s", problem.split()[1], problem.split()[0]
            )
        if problems and self.fail_on_drift and getattr(spider, "crawl_failure", None) is None:
            spider.crawl_failure = layout_failure(problems)

    def process_item(self, item: Any, spider=None) -> Any:
        record = review_record(item, self.crawled_at)
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
        records = list(self.records.values())
        self._check_coverage(spider, field_coverage(records))  # a shared crawl's worker: on its own reviews
        if self.shared:  # the crawl's output is the merge of every worker's journal (crawler.merge)
            logger.info("worker wrote %d review(s) to %s", len(self.records), self.partial)
            return
        write_reviews(records, self.out / REVIEWS_FILE)
        summary = crawl_summary(self.crawler.stats.get_stats(), len(self.records), reason, records)
        write_json(summary, self.out / STATS_FILE, sort_keys=False)
        spider.reviews_written = len(self.records)
        if not self.records and getattr(spider, "crawl_failure", None) is None:
            logger.error(
                "the crawl yielded no reviews at all: the site layout or the mirror is broken (see %s)",
                self.out / STATS_FILE,
            )
        logger.info(
            "wrote %d review(s) to %s (%d image(s) ok, %d failed)",
            len(self.records),
            self.out / REVIEWS_FILE,
            summary["images"]["ok"],
            summary["images"]["failed"],
        )
        if summary["reviews_lost"]:
            logger.error(
                "%d review(s) listed by the site were lost: %s",
                sum(summary["reviews_lost"].values()),
                ", ".join(f"{reason} {n}" for reason, n in summary["reviews_lost"].items()),
            )
