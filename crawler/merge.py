"""Merge the folders of a shared crawl's workers (crawl.backend: redis) into one crawl output.

    python -m crawler.merge WORKER_DIR [WORKER_DIR ...] --out data/raw/zol

Each worker folder (`scrapy crawl zol -a out=WORKER_DIR` with ZOL_BACKEND=redis) holds `journal.jsonl`, `images/`
and, when the worker closed, `worker_stats.json`; a killed worker's folder (no stats, maybe a torn last line) is
merged too. The output is what a single-process crawl of the same site writes: `reviews.jsonl` (one line per
review id, sorted; a review written by two workers, because a dead worker's page was read again, is kept once:
the earliest `crawled_at`, then the smallest record), `images/` (exactly the files the kept reviews list, checked
against their md5) and `crawl_stats.json`, whose `zol` counters are the crawl's as Redis added them once per
finished request (a worker saw the crawl finish and saved them), and whose transport counters (`requests`,
`http_statuses`, `retries`, ...) are the sum over the workers that closed. `images.files.downloaded` counts the
merged files. `<out>` is replaced whole, only when the merge succeeded.
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
from crawler.pipelines import JOURNAL_FILE, crawl_summary, write_reviews
from crawler.redis_backend import WORKER_STATS_FILE
from crawler.resume import read_partial


def _choose(records: list[dict[str, Any]]) -> dict[str, Any]:
    return min(records, key=lambda r: (str(r.get("crawled_at") or ""), json.dumps(r, ensure_ascii=False,
                                                                                   sort_keys=True)))


def merged_records(worker_dirs: list[Path]) -> dict[str, dict[str, Any]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for folder in worker_dirs:
        for review_id, record in read_partial(folder / JOURNAL_FILE).items():
            found.setdefault(review_id, []).append(record)
    return {review_id: _choose(records) for review_id, records in found.items()}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


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
            source = next((folder / IMAGES_DIR / name for folder in worker_dirs
                           if (folder / IMAGES_DIR / name).is_file()
                           and (not checksum or _md5(folder / IMAGES_DIR / name) == checksum)), None)
            if source is None:
                raise UserError(f"image {name} of review {review_id} is in no worker folder (or torn in all): "
                                f"merge every worker's folder")
            shutil.copyfile(source, target)
            copied += 1
    return copied


def crawl_counters(worker_dirs: list[Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the crawl's `zol/` counters, the sum of the workers' own counters)."""
    crawl: dict[str, Any] | None = None
    local: Counter = Counter()
    for folder in worker_dirs:
        path = folder / WORKER_STATS_FILE
        if not path.is_file():
            continue  # a killed worker: its finished requests' counters are in Redis, saved by the others
        saved = json.loads(path.read_text(encoding="utf-8"))
        local.update(saved.get("local") or {})
        if saved.get("crawl_finished"):
            if crawl is not None and saved["crawl"] != crawl:
                raise UserError(f"{path} holds other crawl counters than another worker's: the folders are of "
                                f"different crawls")
            crawl = saved["crawl"]
    if crawl is None:
        raise UserError("no worker saw the crawl finish (no worker_stats.json with crawl_finished): let a worker "
                        "run to the end, then merge")
    return crawl, dict(local)


def merge(worker_dirs: list[Path], out: Path) -> dict[str, Any]:
    """Write the merged crawl into `out` (replaced whole); returns its crawl_stats.json."""
    from crawler.crawl import check_out_folder  # the stage's rule for what `out` may hold
    missing = [str(d) for d in worker_dirs if not (d / JOURNAL_FILE).is_file()]
    if missing:
        raise UserError(f"not a worker folder of a shared crawl (no {JOURNAL_FILE}): {', '.join(missing)}")
    check_out_folder(out)
    crawl, local = crawl_counters(worker_dirs)
    records = merged_records(worker_dirs)
    staging = new_staging_dir(out)
    try:
        files = copy_images(records, worker_dirs, staging / IMAGES_DIR)
        stats = {k: v for k, v in local.items() if not k.startswith("file_status_count/")}
        stats.update(crawl)
        if files:
            stats["file_status_count/downloaded"] = files
        write_reviews(list(records.values()), staging / REVIEWS_FILE)
        summary = crawl_summary(stats, len(records), "finished", list(records.values()))
        write_json(summary, staging / STATS_FILE, sort_keys=False)
        replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.merge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workers", nargs="+", type=Path, help="the workers' output folders (-a out=...)")
    parser.add_argument("--out", type=Path, default=Path("data/raw/zol"), help="the crawl output (replaced whole)")
    opts = parser.parse_args(argv)
    summary = merge(opts.workers, opts.out.resolve())
    lost = sum(summary["reviews_lost"].values())
    print(f"merge: {len(opts.workers)} worker folder(s) -> {summary['reviews']} reviews ({lost} lost), "
          f"{summary['images']['ok']} images -> {opts.out}")
    return 0 if summary["reviews"] else 3


if __name__ == "__main__":
    sys.exit(main())
