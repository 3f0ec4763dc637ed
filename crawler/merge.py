"""Merge the folders of a shared crawl's workers (`--backend redis`) into one crawl output.

    python -m crawler.merge WORKER_DIR [WORKER_DIR ...] --out data/raw/zol

Each worker folder (`scrapy crawl zol -a out=WORKER_DIR` with ZOL_BACKEND=redis) holds `journal.jsonl`, `images/`
and, when the worker closed, `worker_stats.json`; a killed worker's folder (no stats, maybe a torn last line) is
merged too. The output is what a single-process crawl of the same site writes: `reviews.jsonl` (one line per
review id, sorted; a review written by two workers, because a dead worker's page was read again, is kept once:
the earliest `crawled_at`, then the smallest record), `images/` (exactly the files the kept reviews list, checked
against their md5) and `crawl_stats.json`, whose `zol` counters are the crawl's as Redis added them once per
finished request (a worker saw the crawl finish and saved them), and whose transport counters (`requests`,
`http_statuses`, `retries`, ...) are the sum over the workers that closed. `images.files.downloaded` counts the
merged files. `<out>` is replaced whole, only when the merge succeeded, under the crawl's lock (crawler.staging).

A journal line that is not a review record (torn, not JSON, no review or product id, an image entry without a plain
file name for `path`) is rejected and counted in crawl_stats.json `journal_rejected` by reason; an image is only
ever read from and written to the `images/` folders by its plain name, and never read through a link. The merge
refuses empty crawl counters while the journals hold reviews (the Redis frontier lost its state mid-crawl), and a
torn or foreign `worker_stats.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from common.atomic import new_staging_dir, replace_dir, write_json
from common.contract import IMAGES_DIR, REVIEWS_FILE, STATS_FILE
from common.errors import UserError, cli_entry
from crawler.frontier import POISON_COUNTER
from crawler.output import JOURNAL_FILE, WORKER_STATS_FILE, crawl_summary, write_reviews
from crawler.staging import CrawlOutput, check_out_folder


def _choose(records: list[dict[str, Any]]) -> dict[str, Any]:
    return min(
        records, key=lambda r: (str(r.get("crawled_at") or ""), json.dumps(r, ensure_ascii=False, sort_keys=True))
    )


def image_problem(image: Any) -> str | None:
    """Why an image entry of a journal record cannot be merged, or None: `path` must be a plain file name."""
    if not isinstance(image, dict):
        return "image_entry_not_an_object"
    name = image.get("path")
    if not isinstance(name, str) or not name:
        return "image_without_path"
    if name in (".", "..") or "/" in name or "\\" in name or "\0" in name or name != name.strip():
        return "image_path_not_a_file_name"
    if image.get("checksum") is not None and not isinstance(image.get("checksum"), str):
        return "image_checksum_not_text"
    return None


def journal_record(line: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the review record a journal line holds, None) or (None, the reason it is rejected)."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None, "not_json"
    if not isinstance(record, dict):
        return None, "not_an_object"
    if not all(isinstance(record.get(key), str) and record[key] for key in ("review_id", "product_id")):
        return None, "no_review_or_product_id"
    images = record.get("images")
    if images is not None and not isinstance(images, list):
        return None, "images_not_a_list"
    problem = next((p for p in map(image_problem, images or []) if p), None)
    return (None, problem) if problem else (record, None)


def read_journal(path: Path) -> tuple[list[dict[str, Any]], Counter]:
    """The records of a worker's journal in order, and the rejected lines counted by reason (blank lines skipped)."""
    records, rejected = [], Counter()
    with path.open(encoding="utf-8", errors="replace", newline="\n") as lines:
        for line in lines:
            if not line.strip():
                continue
            record, reason = journal_record(line)
            if record is None:
                rejected[reason] += 1
            else:
                records.append(record)
    return records, rejected


def merged_records(worker_dirs: list[Path]) -> tuple[dict[str, dict[str, Any]], Counter]:
    """review id -> the record kept (see the module doc), and the journal lines rejected by reason."""
    found: dict[str, list[dict[str, Any]]] = {}
    rejected: Counter = Counter()
    for folder in worker_dirs:
        records, bad = read_journal(folder / JOURNAL_FILE)
        rejected.update(bad)
        latest = {record["review_id"]: record for record in records}  # a record crawled again replaces its first
        for review_id, record in latest.items():
            found.setdefault(review_id, []).append(record)
    return {review_id: _choose(records) for review_id, records in found.items()}, rejected


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def worker_image(folder: Path, name: str) -> Path | None:
    """`<folder>/images/<name>` when it is a plain file there: neither the file nor images/ a link (a worker folder
    comes from another machine; a link would read a file of this one into the crawl's output)."""
    images = folder / IMAGES_DIR
    path = images / name
    if images.is_symlink() or path.is_symlink() or not path.is_file():
        return None
    return path


def copy_images(records: dict[str, dict[str, Any]], worker_dirs: list[Path], images_out: Path) -> int:
    """Copy every image the records list from a worker folder holding it whole; returns how many files."""
    images_out.mkdir(parents=True, exist_ok=True)
    copied = 0
    for review_id in sorted(records):
        for image in records[review_id].get("images") or []:
            name, checksum = image.get("path"), image.get("checksum")
            target = images_out / name
            if target.exists():
                continue
            candidates = (worker_image(folder, name) for folder in worker_dirs)
            source = next(
                (path for path in candidates if path is not None and (not checksum or _md5(path) == checksum)), None
            )
            if source is None:
                raise UserError(
                    f"image {name} of review {review_id} is in no worker folder (or torn in all): "
                    f"merge every worker's folder"
                )
            shutil.copyfile(source, target)
            copied += 1
    return copied


def _worker_stats(path: Path) -> dict[str, Any] | None:
    """A worker's saved stats; None for a killed worker (no file); UserError for a torn or foreign one."""
    if not path.is_file():
        return None  # a killed worker: its finished requests' counters are in Redis, saved by the others
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise UserError(
            f"{path} is torn or not JSON ({exc}); delete it to merge that folder as a killed worker's"
        ) from None
    if not (
        isinstance(saved, dict)
        and isinstance(saved.get("crawl", {}), dict)
        and isinstance(saved.get("local") or {}, dict)
        and all(_is_number(v) for part in ("crawl", "local") for v in (saved.get(part) or {}).values())
    ):
        raise UserError(f"{path} is not a worker's stats (crawl and local must be objects of numbers)")
    return saved


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def crawl_counters(worker_dirs: list[Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the crawl's `zol/` counters, the sum of the workers' own counters)."""
    crawl: dict[str, Any] | None = None
    local: Counter = Counter()
    for folder in worker_dirs:
        path = folder / WORKER_STATS_FILE
        saved = _worker_stats(path)
        if saved is None:
            continue
        local.update(saved.get("local") or {})
        if saved.get("crawl_finished"):
            if crawl is not None and saved["crawl"] != crawl:
                raise UserError(
                    f"{path} holds other crawl counters than another worker's: the folders are of different crawls"
                )
            crawl = saved["crawl"]
    if crawl is None:
        raise UserError(
            "no worker saw the crawl finish (no worker_stats.json with crawl_finished): let a worker "
            "run to the end, then merge"
        )
    return crawl, dict(local)


def merge(worker_dirs: list[Path], out: Path) -> dict[str, Any]:
    """Write the merged crawl into `out` (replaced whole); returns its crawl_stats.json."""
    missing = [str(d) for d in worker_dirs if not (d / JOURNAL_FILE).is_file()]
    if missing:
        raise UserError(f"not a worker folder of a shared crawl (no {JOURNAL_FILE}): {', '.join(missing)}")
    check_out_folder(out)
    crawl, local = crawl_counters(worker_dirs)
    records, rejected = merged_records(worker_dirs)
    if records and not any(key.startswith("zol/") for key in crawl):
        raise UserError(
            f"the crawl's counters are empty while the journals hold {len(records)} review(s): the Redis "
            f"frontier lost its state mid-crawl (restarted or flushed?); crawl again"
        )
    staging = new_staging_dir(out)
    try:
        files = copy_images(records, worker_dirs, staging / IMAGES_DIR)
        stats = {k: v for k, v in local.items() if not k.startswith("file_status_count/")}
        stats.update(crawl)
        if files:
            stats["file_status_count/downloaded"] = files
        write_reviews(list(records.values()), staging / REVIEWS_FILE)
        summary = crawl_summary(stats, len(records), "finished", list(records.values()))
        summary["journal_rejected"] = dict(sorted(rejected.items()))
        summary["frontier_poison"] = {
            k[len(POISON_COUNTER) :]: v for k, v in sorted(crawl.items()) if k.startswith(POISON_COUNTER)
        }
        write_json(summary, staging / STATS_FILE, sort_keys=False)
        replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.merge", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("workers", nargs="+", type=Path, help="the workers' output folders (-a out=...)")
    parser.add_argument("--out", type=Path, default=Path("data/raw/zol"), help="the crawl output (replaced whole)")
    opts = parser.parse_args(argv)
    with CrawlOutput(opts.out.resolve()):  # the crawl's lock: no other crawl or merge writes --out meanwhile
        summary = merge(opts.workers, opts.out.resolve())
    lost = sum(summary["reviews_lost"].values())
    print(
        f"merge: {len(opts.workers)} worker folder(s) -> {summary['reviews']} reviews ({lost} lost), "
        f"{summary['images']['ok']} images -> {opts.out}"
    )
    return 0 if summary["reviews"] else 3


if __name__ == "__main__":
    sys.exit(main())
