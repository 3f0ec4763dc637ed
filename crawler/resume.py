"""Resuming a killed crawl (JOBDIR): the items already scraped are the state that survives.

Scrapy's own JOBDIR state (`requests.seen`, the disk request queue) is written as requests are scheduled, not
when their items are safe, and is torn by a SIGKILL: a resumed crawl then skips or loses requests whose reviews
were never written. So here the request queue and the fingerprints stay in memory, every item is appended to
`<JOBDIR>/zol_partial_reviews.jsonl` as it is scraped, and a resumed crawl walks the site again, skipping the
reviews (their long pages and images) already in that file; the pipeline merges both at close.

A partial file is trusted only when `<JOBDIR>/zol_partial_arguments.json` shows it was written by a crawl with
the same arguments (another product list or mirror would mix two crawls), and each of its records only when
every image it lists is on disk with its checksum (a record whose files are gone is crawled again).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from scrapy.core.scheduler import Scheduler
from scrapy.dupefilters import RFPDupeFilter

from common.atomic import write_json

PARTIAL_FILE = "zol_partial_reviews.jsonl"
ARGUMENTS_FILE = "zol_partial_arguments.json"


class ResumeMismatch(ValueError):
    """The JOBDIR holds the partial output of a crawl with other arguments."""


def partial_path(jobdir: str | None) -> Path | None:
    return Path(jobdir) / PARTIAL_FILE if jobdir else None


def arguments_path(jobdir: str | None) -> Path | None:
    return Path(jobdir) / ARGUMENTS_FILE if jobdir else None


def read_partial(path: Path | None) -> dict[str, dict]:
    """review_id -> record, the last occurrence wins (a record crawled again because its images were missing is
    appended after the stale one); a torn last line (the crawl was killed mid-write) is skipped."""
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
                records[str(record["review_id"])] = record
    return records


def _file_is_whole(path: Path, checksum: str | None) -> bool:
    if not path.is_file():
        return False
    if not checksum:
        return path.stat().st_size > 0
    return hashlib.md5(path.read_bytes()).hexdigest() == checksum  # FilesPipeline's checksum is an md5


@dataclass
class ResumeState:
    records: dict[str, dict] = field(default_factory=dict)  # trusted: skipped by the spider, merged at close
    untrusted: list[str] = field(default_factory=list)  # review ids whose image files are missing or torn


def check_arguments(jobdir: str | None, arguments: dict) -> None:
    """Raise ResumeMismatch when JOBDIR holds partial reviews of a crawl with other arguments."""
    partial, saved = partial_path(jobdir), arguments_path(jobdir)
    if partial is None or not partial.is_file() or not partial.stat().st_size:
        return
    try:
        before = json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else None
    except ValueError:
        before = None
    if before != arguments:
        differ = sorted(k for k in set(arguments) | set(before or {}) if (before or {}).get(k) != arguments.get(k))
        what = f"other arguments ({', '.join(differ)})" if before is not None else "unknown arguments"
        raise ResumeMismatch(
            f"JOBDIR {jobdir} holds a partial crawl made with {what}; resume it with the same "
            f"arguments, or use another JOBDIR (or delete {partial})"
        )


def load_resume(jobdir: str | None, arguments: dict, images_dir: Path) -> ResumeState:
    """The records of JOBDIR's partial file that can be trusted for a crawl with `arguments` (see module doc)."""
    check_arguments(jobdir, arguments)
    state = ResumeState()
    for review_id, record in read_partial(partial_path(jobdir)).items():
        images = record.get("images") or []
        if all(
            isinstance(i, dict) and i.get("path") and _file_is_whole(images_dir / i["path"], i.get("checksum"))
            for i in images
        ):
            state.records[review_id] = record
        else:
            state.untrusted.append(review_id)
    return state


def save_arguments(jobdir: str | None, arguments: dict) -> None:
    if jobdir:
        write_json(arguments, arguments_path(jobdir))


def forget(jobdir: str | None) -> None:
    """A finished crawl: the next crawl with this JOBDIR starts afresh."""
    for path in (partial_path(jobdir), arguments_path(jobdir)):
        if path is not None:
            path.unlink(missing_ok=True)


class MemoryDupeFilter(RFPDupeFilter):
    """Request fingerprints kept in memory only, even with JOBDIR. The spider's own pages (requests with a
    `zol_kind`) are never filtered: the spider de-duplicates them itself, and a request this filter dropped would
    get neither its callback nor its errback, so its review would vanish. (Unlike `dont_filter`, this keeps the
    offsite filter working for them, redirects included.)"""

    @classmethod
    def from_crawler(cls, crawler):
        return cls(None, crawler.settings.getbool("DUPEFILTER_DEBUG"), fingerprinter=crawler.request_fingerprinter)

    def request_seen(self, request) -> bool:
        if request.meta.get("zol_kind"):
            return False
        return super().request_seen(request)


class MemoryQueueScheduler(Scheduler):
    """Scrapy's scheduler with its request queue in memory only, even with JOBDIR."""

    def _dqdir(self, jobdir: str | None) -> None:
        return None
