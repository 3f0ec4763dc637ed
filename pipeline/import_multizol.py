"""Import the published Multi-ZOL release as raw records of our contract, so the pipeline can run on it.

    python -m pipeline.import_multizol --release DIR [--out data/raw/multizol] [--format auto|txt|json]
                                       [--keep-duplicate-pairs] [--batch-rows N]
    python -m pipeline.import_multizol [--params params.yaml]     # settings from its `multizol` section (DVC)

Reads `zol_{Train,Dev,Test}_jieba.txt` (4 lines per (review, aspect) pair: segmented text, a Python list of
image names, the Chinese aspect name, the score) or `multi_jsonData/*.json` (one review per file), plus the
images in `img/` when present. Writes `<out>/reviews.jsonl` (one record per review, all its aspect scores,
`source: "multizol"`, `release_split` aspect -> split for the txt format, `segmented: true` for the txt
text) and links the images into `<out>/images/`, replacing `<out>` whole; the counts go to
`reports/import.json` (not a DVC metric: the stage of a source not in use has never run, and a declared metric
missing makes `dvc metrics show` warn). Then set `data.raw: <out>` in params.yaml. Because `<out>` is replaced
whole, an `<out>` holding anything else than those two entries is refused, and so is one that is, holds or lies
inside the release (or holds the working folder). A release file that is not UTF-8 is read as GB18030 (a superset
of GBK), counted.

The txt files hold a review once per scored aspect: lines with identical text and image list are one review,
whose review_id is a hash of both. It streams: the files are read line by line and the pairs grouped into reviews
through sorted runs of `data.batch_rows` pairs on disk (docs/scaling.md), so memory does not grow with the release.
`--format auto` reads the txt files when any exist (they carry the release's split), else the json files. The
original image URLs cannot be recovered from the file names (`:`, `/`, `.` all became `_`), so `image_urls` holds
`img/<name>`, the name in the release.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from common.atomic import atomic_dir, check_output_folder, remove_leftovers, write_json
from common.contract import IMAGES_DIR, RAW_FIELDS, RELEASE_SPLIT_FIELD, REVIEWS_FILE, SEGMENTED_FIELD
from common.errors import UserError
from common.params import load_section
from common.stage import count_argument, run_stage, stage_parser
from pipeline.multizol_release import (
    IMG_DIR,
    JSON_DIR,
    PAIR_SCHEMA,
    TXT_FILES,
    pair_order,
    read_json_release,
    read_txt_release,
)
from pipeline.paths import DataParams
from pipeline.stream import RowSorter

DEFAULT_OUT = "data/raw/multizol"
COUNTS_PATH = "reports/import.json"
OUTPUT_ENTRIES = {REVIEWS_FILE, IMAGES_DIR}
COPY_SUFFIX = re.compile(
    r"-copy\d+$"
)  # review_id of the 2nd, 3rd... copy of a duplicated pair (--keep-duplicate-pairs)


def link_image(src: Path, dest: Path) -> None:
    """Hard link the file `src` names to `dest` (a copy across file systems), replacing an older file. A link in the
    release is followed first: os.link would link the link itself, pointing nowhere from `dest` when relative."""
    src = Path(os.path.realpath(src))
    if dest.is_symlink() or dest.exists():
        if not dest.is_symlink() and os.path.samefile(src, dest):
            return
        dest.unlink()
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def is_file(path: Path) -> bool:
    """Path.is_file, False also for a name the system cannot hold (NUL byte, too long)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def build_record(partial: dict, release: Path, out: Path, stats: Counter) -> dict:
    """A full raw record; images present in the release are linked into `<out>/images/`."""
    images = []
    for name in dict.fromkeys(partial["images"]):
        src = release / IMG_DIR / name
        if not is_file(src):
            stats["images_missing"] += 1
            continue
        link_image(src, out / IMAGES_DIR / name)
        images.append(
            {
                "url": f"{IMG_DIR}/{name}",
                "path": name,
                "checksum": hashlib.md5(src.read_bytes()).hexdigest(),
                "status": "linked",
            }
        )
        stats["images_linked"] += 1
    record = dict.fromkeys(RAW_FIELDS)
    record.update(
        {
            "review_id": partial["review_id"],
            "body": partial["body"],
            "scores": partial["scores"],
            "image_urls": [f"{IMG_DIR}/{name}" for name in partial["images"]],
            "images": images,
            "source": "multizol",
            "crawled_at": datetime.fromtimestamp(int(partial["_mtime"]), UTC).isoformat().replace("+00:00", "Z"),
            RELEASE_SPLIT_FIELD: partial[RELEASE_SPLIT_FIELD],
            SEGMENTED_FIELD: partial[SEGMENTED_FIELD],
        }
    )
    return record


def import_release(
    release: str | Path,
    out: str | Path,
    fmt: str = "auto",
    keep_duplicates: bool = False,
    batch_rows: int = DataParams.batch_rows,
) -> dict:
    """Write `<out>/reviews.jsonl` (sorted by review_id) and `<out>/images/`, the folder replaced whole; return the
    counts (metrics). It streams: the release is read a line (json: a file) at a time, and the txt format's pairs
    are grouped into reviews through sorted runs of `batch_rows` pairs on disk."""
    release, out = Path(release), Path(out)
    if not release.is_dir():
        raise UserError(
            f"{release} is not a folder: pass --release (or multizol.release in params.yaml) the "
            f"unpacked Multi-ZOL release"
        )
    has_txt = any((release / f).is_file() for f in TXT_FILES.values())
    has_json = (release / JSON_DIR).is_dir()
    if fmt == "auto":
        fmt = "txt" if has_txt else "json" if has_json else ""
    if fmt == "txt" and not has_txt or fmt == "json" and not has_json or not fmt:
        raise UserError(
            f"{release} holds no Multi-ZOL files ({', '.join(TXT_FILES.values())} or {JSON_DIR}/*.json); "
            f"pass --release the folder that holds them"
        )
    check_out_folder(release, out)
    stats: Counter = Counter()
    with atomic_dir(out) as staging:
        (staging / IMAGES_DIR).mkdir()
        sorter = RowSorter(PAIR_SCHEMA, pair_order, batch_rows, staging / REVIEWS_FILE)
        try:
            partials = (
                read_txt_release(release, stats, keep_duplicates, sorter)
                if fmt == "txt"
                else read_json_release(release, stats)
            )
            with open(staging / REVIEWS_FILE, "w", encoding="utf-8", newline="\n") as handle:
                for partial in partials:
                    record = build_record(partial, release, staging, stats)
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                    count_record(record, stats)
        finally:
            sorter.close()
    return import_metrics(fmt, stats, keep_duplicates)


def count_record(record: dict, stats: Counter) -> None:
    """What the metrics say of the records written, counted as they go (none is kept)."""
    stats["records"] += 1
    stats["records_pairs"] += len(record["scores"])
    stats["records_with_image"] += bool(record["images"])
    stats["records_extra_copies"] += bool(COPY_SUFFIX.search(record["review_id"]))


def check_out_folder(release: Path, out: Path) -> None:
    """`out` is replaced whole: refuse one that is, holds or lies inside the release, or holds other files."""
    release_real, out_real = release.resolve(), out.resolve()
    if release_real.is_relative_to(out_real) or out_real.is_relative_to(release_real):
        where = (
            "is" if out_real == release_real else "holds" if release_real.is_relative_to(out_real) else "lies inside"
        )
        raise UserError(
            f"--out {out} {where} the release {release}; it would be replaced whole: choose a folder "
            f"outside the release (default: {DEFAULT_OUT})"
        )
    check_output_folder(out, OUTPUT_ENTRIES, "--out")


def import_metrics(fmt: str, stats: Counter, keep_duplicates: bool) -> dict:
    def take(prefix: str) -> dict[str, int]:
        return {k[len(prefix) :]: v for k, v in sorted(stats.items()) if k.startswith(prefix)}

    duplicates = {
        "kept_as_in_release": keep_duplicates,
        "dropped": 0,
        "dropped_same_score": 0,
        "dropped_other_score": 0,
        **take("duplicate_pairs_"),
    }
    if keep_duplicates:
        duplicates["extra_copies_kept"] = stats["records_extra_copies"]
    return {
        "format": fmt,
        "reviews": stats["records"],
        "pairs": stats["records_pairs"],
        "pairs_by_split": take("pairs_"),
        "reviews_with_image": stats["records_with_image"],
        "images": {kind: stats[f"images_{kind}"] for kind in ("linked", "missing", "undefined")},
        "json_files_unreadable": stats["json_files_unreadable"],
        "json_files_rejected": stats["json_files_rejected"],
        "files_decoded_gb18030": stats["files_decoded_gb18030"],
        "duplicate_pairs": duplicates,
    }


@dataclass(frozen=True)
class MultizolParams:
    """params.yaml `multizol` (checked without looking for the release: that is the import's first step, and only
    a run on this source needs it)."""

    release: str = "data/multizol-release"  # the unpacked release: zol_*_jieba.txt and/or multi_jsonData/, img/
    format: Literal["auto", "txt", "json"] = "auto"  # auto: the txt files when present, else multi_jsonData/
    keep_duplicate_pairs: bool = False  # true: every copy of a pair the release holds twice


def settings(args: argparse.Namespace) -> tuple[str, str, str, bool]:
    """(release, out, format, keep_duplicate_pairs): from the command line, or params.yaml's `multizol` section."""
    if args.release:
        return args.release, args.out or DEFAULT_OUT, args.format or "auto", args.keep_duplicate_pairs
    params = load_section(MultizolParams, "multizol", args.params)
    return params.release, DEFAULT_OUT, params.format, params.keep_duplicate_pairs


# argparse type of --batch-rows
batch_size = count_argument("a whole number >= 1", minimum=1)


def batch_rows(args: argparse.Namespace) -> int:
    """--batch-rows, else data.batch_rows of the params file (when there is one: --release needs none)."""
    if args.batch_rows is not None:
        return args.batch_rows
    if args.release and not Path(args.params).is_file():
        return DataParams.batch_rows
    return load_section(DataParams, "data", args.params).batch_rows


def parser() -> argparse.ArgumentParser:
    stage = stage_parser("python -m pipeline.import_multizol", __doc__)
    stage.add_argument(
        "--release",
        help="folder of the unpacked Multi-ZOL release (default: multizol.release of "
        "the params file, with every other setting from there too)",
    )
    stage.add_argument("--out", help=f"raw folder to write (default: {DEFAULT_OUT})")
    stage.add_argument(
        "--format",
        choices=("auto", "txt", "json"),
        help="which files to read (auto, the default: the txt files when present, else the json files)",
    )
    stage.add_argument(
        "--keep-duplicate-pairs",
        action="store_true",
        help="keep every copy of a (review, aspect) pair the release holds twice (default: the first)",
    )
    stage.add_argument(
        "--batch-rows",
        type=batch_size,
        help="pairs held in memory at a time while grouping them into reviews (default: data.batch_rows of the "
        "params file)",
    )
    stage.add_argument("--counts", default=COUNTS_PATH, help="counts JSON (default: %(default)s)")
    return stage


def run(args: argparse.Namespace) -> str:
    """The import as `python -m pipeline.import_multizol` runs it; its summary line."""
    release, out, fmt, keep_duplicates = settings(args)
    counts = import_release(release, out, fmt, keep_duplicates, batch_rows(args))
    remove_leftovers(args.counts)
    write_json(counts, args.counts)
    dropped = counts["duplicate_pairs"]["dropped"]
    return (
        f"import_multizol ({counts['format']}): {counts['reviews']} reviews, {counts['pairs']} pairs "
        f"({', '.join(f'{k} {v}' for k, v in counts['pairs_by_split'].items()) or 'no release split'}) -> "
        f"{Path(out) / REVIEWS_FILE}; {counts['reviews_with_image']} reviews with images; duplicate pairs "
        f"{'kept' if keep_duplicates else f'dropped: {dropped}'}; counts in {args.counts}"
    )


def main(argv: list[str] | None = None) -> int:
    return run_stage(parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
