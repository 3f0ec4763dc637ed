"""Resuming a killed crawl (JOBDIR): the items already scraped are the state that survives.

Scrapy's own JOBDIR state (`requests.seen`, the disk request queue) is written as requests are scheduled, not
when their items are safe, and is torn by a SIGKILL: a resumed crawl then skips or loses requests whose reviews
were never written. So here the request queue and the fingerprints stay in memory, every item is appended to
`<JOBDIR>/zol_partial_reviews.jsonl` as it is scraped, and a resumed crawl walks the site again, skipping the
reviews (their long pages and images) already in that file; the pipeline merges both at close.
"""
from __future__ import annotations

import json
from pathlib import Path

from scrapy.core.scheduler import Scheduler
from scrapy.dupefilters import RFPDupeFilter

PARTIAL_FILE = "zol_partial_reviews.jsonl"


def partial_path(jobdir: str | None) -> Path | None:
    return Path(jobdir) / PARTIAL_FILE if jobdir else None


def read_partial(path: Path | None) -> dict[str, dict]:
    """review_id -> record, first occurrence wins; a torn last line (the crawl was killed mid-write) is skipped."""
    records: dict[str, dict] = {}
    if path is None or not path.is_file():
        return records
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("review_id"):
                records.setdefault(str(record["review_id"]), record)
    return records


class MemoryDupeFilter(RFPDupeFilter):
    """Request fingerprints kept in memory only, even with JOBDIR."""

    @classmethod
    def from_crawler(cls, crawler):
        return cls(None, crawler.settings.getbool("DUPEFILTER_DEBUG"), fingerprinter=crawler.request_fingerprinter)


class MemoryQueueScheduler(Scheduler):
    """Scrapy's scheduler with its request queue in memory only, even with JOBDIR."""

    def _dqdir(self, jobdir: str | None) -> None:
        return None
