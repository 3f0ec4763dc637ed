"""Stage clean: raw reviews (JSON Lines + images) -> one row per (review, scored aspect).

    python -m pipeline.clean [--params params.yaml]

Reads `<data.raw>/reviews.jsonl`, writes `data/clean/pairs.parquet` (PAIRS_SCHEMA),
`data/clean/rejected.parquet` (REJECTED_SCHEMA: every dropped record or pair with its reason) and
`metrics/clean.json`.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
from PIL import Image
from tqdm import tqdm

from common.aspects import CANONICAL_ASPECTS, aspect_zh, canonical_aspect
from common.contract import IMAGES_DIR, RELEASE_SPLIT_FIELD, REVIEWS_FILE, SEGMENTED_FIELD
from common.errors import UserError, cli_entry
from common.atomic import write_json
from pipeline.io import write_frame
from common.params import DEFAULT_PARAMS, load_params, require
from pipeline.schema import PAIR_SORT_KEY, PAIRS_SCHEMA, PRESEGMENTED_METADATA_KEY, REJECTED_SCHEMA
from pipeline.textnorm import join_fields, visible_length

PAIRS_PATH = Path("data/clean/pairs.parquet")
REJECTED_PATH = Path("data/clean/rejected.parquet")
METRICS_PATH = Path("metrics/clean.json")


TEXT_FIELDS = ("title", "pros", "cons", "summary", "body")
REASONS = ("malformed_json", "missing_field", "duplicate_id", "no_score", "no_text", "no_image", "duplicate_text",
           "unknown_aspect", "duplicate_aspect", "score_not_numeric", "score_out_of_range")


@dataclass(frozen=True)
class CleanParams:
    require_image: bool
    min_text_chars: int
    dedupe_same_text: bool

    @classmethod
    def from_section(cls, section: dict) -> "CleanParams":
        return cls(require_image=require(section, "require_image", "clean", bool),
                   min_text_chars=require(section, "min_text_chars", "clean", int),
                   dedupe_same_text=require(section, "dedupe_same_text", "clean", bool))


@dataclass
class CleanStats:
    records_in: int = 0
    blank_lines: int = 0
    images_ok: int = 0
    images_missing: int = 0
    images_undecodable: int = 0
    text_only_reviews: int = 0
    rejected_records: Counter = field(default_factory=Counter)
    rejected_pairs: Counter = field(default_factory=Counter)


def round_half_up(value: float) -> int:
    """9.2 -> 9, 8.5 -> 9 (not Python's banker's rounding)."""
    return math.floor(value + 0.5)


def parse_score(value: Any) -> tuple[int | None, str | None]:
    """(score 1..10, None) or (None, rejection reason). Numbers and numeric strings are accepted."""
    if isinstance(value, bool) or value is None:
        return None, "score_not_numeric"
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None, "score_not_numeric"
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None, "score_not_numeric"
    score = round_half_up(value)
    if not 1 <= score <= 10:
        return None, "score_out_of_range"
    return score, None


def canonical_key(label: str) -> str | None:
    """A canonical key as-is, a known site label mapped to its key, anything else None."""
    if label in CANONICAL_ASPECTS:
        return label
    return canonical_aspect(label)


class ImageChecker:
    """Resolves a record's `images` to usable paths; each file is opened and verified once."""

    def __init__(self, raw_dir: Path, stats: CleanStats):
        self.images_dir = Path(raw_dir) / IMAGES_DIR
        self.stats = stats
        self._verdict: dict[str, str] = {}   # path -> "ok" | "missing" | "undecodable"

    def _check(self, path: str) -> str:
        if path not in self._verdict:
            if not Path(path).is_file():
                self._verdict[path] = "missing"
            else:
                try:
                    with Image.open(path) as image:
                        image.verify()
                    self._verdict[path] = "ok"
                except Exception:  # PIL raises many types (UnidentifiedImageError, SyntaxError, DecompressionBomb...)
                    self._verdict[path] = "undecodable"
        return self._verdict[path]

    def usable_paths(self, record: dict) -> list[str]:
        """Paths (relative to the repo root when raw_dir is) of the record's decodable images, page order."""
        images = record.get("images") or []
        urls = record.get("image_urls") or []
        if not isinstance(images, list):
            return []
        page_order = {url: i for i, url in enumerate(urls)} if isinstance(urls, list) else {}
        entries = [e for e in images if isinstance(e, dict) and isinstance(e.get("path"), str) and e["path"]]
        entries = sorted(enumerate(entries), key=lambda ie: (page_order.get(ie[1].get("url"), len(page_order)), ie[0]))
        paths: list[str] = []
        for _, entry in entries:
            path = (self.images_dir / entry["path"]).as_posix()
            if path in paths:
                continue
            verdict = self._check(path)
            if verdict == "ok":
                self.stats.images_ok += 1
                paths.append(path)
            elif verdict == "missing":
                self.stats.images_missing += 1
            else:
                self.stats.images_undecodable += 1
        return paths


def _as_text(line: str | bytes) -> str:
    if isinstance(line, bytes):
        return line.decode("utf-8")
    return line


def _optional_str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def records_to_pairs(lines: Iterable[str | bytes], raw_dir: str | Path, params: CleanParams,
                     progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The pure core of the stage: raw JSON lines -> (pairs, rejected, metrics).

    Image paths are `<raw_dir>/images/<path>`; relative to the working directory when raw_dir is.
    metrics["_presegmented_ids"] lists the kept reviews whose raw record says `segmented: true`; main() moves it
    from the metrics into the Parquet metadata.
    """
    stats = CleanStats()
    images = ImageChecker(Path(raw_dir), stats)
    pairs: list[dict] = []
    rejected: list[dict] = []
    presegmented: set[str] = set()
    seen_ids: set[str] = set()
    seen_texts: set[tuple[str, str]] = set()

    def reject(line_no: int, review_id: str | None, aspect: str | None, reason: str, detail: str, raw: str) -> None:
        rejected.append(dict(line_no=line_no, review_id=review_id, aspect=aspect, reason=reason, detail=detail, raw=raw))
        (stats.rejected_pairs if aspect is not None else stats.rejected_records)[reason] += 1

    for line_no, raw_line in enumerate(tqdm(lines, desc="clean", unit=" records", disable=not progress), start=1):
        try:
            line = _as_text(raw_line)
        except UnicodeDecodeError as exc:
            stats.records_in += 1
            reject(line_no, None, None, "malformed_json", f"not UTF-8: {exc}", raw_line.decode("utf-8", "replace"))
            continue
        line = line.lstrip("\ufeff").rstrip("\r\n")
        if not line.strip():
            stats.blank_lines += 1
            continue
        stats.records_in += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            reject(line_no, None, None, "malformed_json", str(exc), line)
            continue
        if not isinstance(record, dict):
            reject(line_no, None, None, "malformed_json", f"a JSON {type(record).__name__}, not an object", line)
            continue
        review_id = record.get("review_id")
        if review_id is None or review_id == "" or isinstance(review_id, (dict, list, bool)):
            reject(line_no, None, None, "missing_field", "review_id is missing or empty", line)
            continue
        review_id = str(review_id)
        if "scores" not in record or not isinstance(record["scores"], (dict, type(None))):
            reject(line_no, review_id, None, "missing_field", "scores is missing or not an object", line)
            continue
        if review_id in seen_ids:
            reject(line_no, review_id, None, "duplicate_id", "an earlier line has this review_id", line)
            continue
        scores = record["scores"] or {}
        if not scores:
            reject(line_no, review_id, None, "no_score", "scores is empty", line)
            continue
        text = join_fields([record.get(name) for name in TEXT_FIELDS])
        if visible_length(text) < params.min_text_chars:
            reject(line_no, review_id, None, "no_text",
                   f"{visible_length(text)} characters after cleaning < clean.min_text_chars={params.min_text_chars}", line)
            continue
        image_paths = images.usable_paths(record)
        if not image_paths and params.require_image:
            reject(line_no, review_id, None, "no_image", "no downloaded, decodable image (clean.require_image)", line)
            continue
        product_id = _optional_str(record.get("product_id"))
        if params.dedupe_same_text and product_id is not None:
            if (product_id, text) in seen_texts:
                reject(line_no, review_id, None, "duplicate_text", f"same text as an earlier review of product {product_id}", line)
                continue
            seen_texts.add((product_id, text))
        # only a kept record makes later copies duplicates: a copy dropped above (no text, no image) must not
        # cost the review a later, usable copy
        seen_ids.add(review_id)
        if not image_paths:
            stats.text_only_reviews += 1
        release_split = record.get(RELEASE_SPLIT_FIELD)
        release_split = release_split if isinstance(release_split, dict) else {}
        if record.get(SEGMENTED_FIELD) is True:
            presegmented.add(review_id)
        aspects_done: set[str] = set()
        for label, value in scores.items():
            key = canonical_key(label)
            raw_value = json.dumps(value, ensure_ascii=False)
            if key is None:
                reject(line_no, review_id, label, "unknown_aspect", f"'{label}' is none of the paper's six aspects", raw_value)
                continue
            if key in aspects_done:
                reject(line_no, review_id, key, "duplicate_aspect", f"'{label}' scores {key} a second time", raw_value)
                continue
            score, reason = parse_score(value)
            if reason:
                reject(line_no, review_id, key, reason, f"score of '{label}' must be a number in 1..10", raw_value)
                continue
            aspects_done.add(key)
            pairs.append(dict(
                review_id=review_id, product_id=product_id,
                product_name=_optional_str(record.get("product_name")), brand=_optional_str(record.get("brand")),
                aspect=key, aspect_zh=aspect_zh(key), score=score, label=score - 1, text=text,
                image_paths=list(image_paths), n_images=len(image_paths),
                release_split=_optional_str(release_split.get(key, release_split.get(label))),
            ))

    pairs_df = pd.DataFrame(pairs, columns=PAIRS_SCHEMA.names)
    if len(pairs_df):
        pairs_df = pairs_df.sort_values(PAIR_SORT_KEY, kind="stable").reset_index(drop=True)
    rejected_df = pd.DataFrame(rejected, columns=REJECTED_SCHEMA.names)
    if len(rejected_df):
        order = sorted(range(len(rejected)), key=lambda i: (rejected[i]["line_no"], rejected[i]["aspect"] or ""))
        rejected_df = rejected_df.iloc[order].reset_index(drop=True)
    metrics = _metrics(stats, pairs_df)
    metrics["presegmented_reviews"] = len(presegmented & set(pairs_df["review_id"]))
    metrics["_presegmented_ids"] = sorted(presegmented & set(pairs_df["review_id"]))
    return pairs_df, rejected_df, metrics


def _metrics(stats: CleanStats, pairs: pd.DataFrame) -> dict:
    return {
        "records_in": stats.records_in,
        "blank_lines": stats.blank_lines,
        "pairs_out": int(len(pairs)),
        "reviews_out": int(pairs["review_id"].nunique()),
        "text_only_reviews_out": int(pairs.loc[pairs["n_images"] == 0, "review_id"].nunique()),
        "rejected_records_by_reason": dict(sorted(stats.rejected_records.items())),
        "rejected_pairs_by_reason": dict(sorted(stats.rejected_pairs.items())),
        "pairs_by_aspect": {k: int(v) for k, v in sorted(Counter(pairs["aspect"]).items())},
        "label_histogram": {str(label): int((pairs["label"] == label).sum()) for label in range(10)},
        "images": {"usable": stats.images_ok, "missing": stats.images_missing, "undecodable": stats.images_undecodable},
    }


def read_lines(path: Path) -> list[bytes]:
    """The raw file's lines as bytes (decoded per line, so one bad byte costs one record)."""
    if not path.is_file():
        raise UserError(f"{path} not found: run the crawl (dvc repro crawl) or the Multi-ZOL importer, "
                        f"or point data.raw in params.yaml at a folder holding {REVIEWS_FILE}")
    return path.read_bytes().splitlines()


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.clean", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    raw_dir = Path(require(load_params("data", args.params), "raw", "data", str))
    params = CleanParams.from_section(load_params("clean", args.params))
    lines = read_lines(raw_dir / REVIEWS_FILE)
    pairs, rejected, metrics = records_to_pairs(lines, raw_dir, params, progress=True)
    presegmented = metrics.pop("_presegmented_ids")
    write_frame(pairs, PAIRS_PATH, PAIRS_SCHEMA,
                metadata={PRESEGMENTED_METADATA_KEY: json.dumps(presegmented)} if presegmented else None)
    write_frame(rejected, REJECTED_PATH, REJECTED_SCHEMA)
    write_json(metrics, METRICS_PATH)
    rejected_all = Counter(metrics["rejected_records_by_reason"]) + Counter(metrics["rejected_pairs_by_reason"])
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(rejected_all.items())) or "none"
    print(f"clean: {metrics['records_in']} records in -> {metrics['pairs_out']} pairs of {metrics['reviews_out']} reviews; "
          f"rejected {len(rejected)} ({reasons}); images usable {metrics['images']['usable']}, "
          f"missing {metrics['images']['missing']}, undecodable {metrics['images']['undecodable']}; "
          f"{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
