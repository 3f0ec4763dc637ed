"""Stage clean: raw reviews (JSON Lines + images) -> one row per (review, scored aspect).

    python -m pipeline.clean [--params params.yaml]

Reads `<data.raw>/reviews.jsonl`, writes `data/clean/pairs.parquet` (PAIRS_SCHEMA),
`data/clean/rejected.parquet` (REJECTED_SCHEMA: every dropped record or pair with its reason),
`metrics/clean.json` (reviews, pairs and rejected rows kept) and `reports/clean_detail.json` (every count: per
reason, per aspect, per label, images).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

import pandas as pd
from tqdm import tqdm

from common.aspects import CANONICAL_ASPECTS, aspect_zh, canonical_aspect
from common.atomic import remove_leftovers
from common.contract import IMAGES_DIR, RELEASE_SPLIT_FIELD, REVIEWS_FILE, SEGMENTED_FIELD
from common.errors import UserError, cli_entry
from common.metrics import detail_path, write_metrics
from common.params import DEFAULT_PARAMS, IMAGE_SIZE_RANGE, load_params, require, require_int_in
from pipeline.imaging import MISSING, ImageError, Preprocessing, decode_image
from pipeline.io import write_frame
from pipeline.schema import PAIR_SORT_KEY, PAIRS_SCHEMA, REJECTED_SCHEMA
from pipeline.textnorm import join_fields, visible_length

PAIRS_PATH = Path("data/clean/pairs.parquet")
REJECTED_PATH = Path("data/clean/rejected.parquet")
METRICS_PATH = Path("metrics/clean.json")
DETAIL_PATH = detail_path("clean")


TEXT_FIELDS = ("title", "pros", "cons", "summary", "body")
OPTIONAL_STR_FIELDS = ("product_id", "product_name", "brand", *TEXT_FIELDS)
REASONS = (
    "malformed_json",
    "missing_field",
    "invalid_field",
    "duplicate_id",
    "no_score",
    "no_text",
    "no_image",
    "duplicate_text",
    "unknown_aspect",
    "duplicate_aspect",
    "score_not_numeric",
    "score_out_of_range",
)


@dataclass(frozen=True)
class CleanParams:
    require_image: bool
    min_text_chars: int
    dedupe_same_text: bool
    # the features stage's decoding settings: an image is usable here exactly when `features` can decode it
    images: Preprocessing = Preprocessing(image_size=224, max_image_pixels=40_000_000)

    @classmethod
    def from_sections(cls, clean: dict, features: dict) -> CleanParams:
        images = Preprocessing(
            image_size=require_int_in(features, "image_size", "features", *IMAGE_SIZE_RANGE),
            max_image_pixels=require_int_in(features, "max_image_pixels", "features", 1),
        )
        return cls(
            require_image=require(clean, "require_image", "clean", bool),
            min_text_chars=require(clean, "min_text_chars", "clean", int),
            dedupe_same_text=require(clean, "dedupe_same_text", "clean", bool),
            images=images,
        )


@dataclass
class CleanStats:
    records_in: int = 0
    blank_lines: int = 0
    images_ok: int = 0
    images_missing: int = 0
    images_undecodable: int = 0
    rejected_records: Counter = field(default_factory=Counter)
    rejected_pairs: Counter = field(default_factory=Counter)


class Rejected(Exception):
    """A record (aspect None) or one of its pairs is dropped: `reason` is one of REASONS."""

    def __init__(self, reason: str, detail: str, raw: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.raw = reason, detail, raw


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
    if isinstance(value, int):
        if not -100 <= value <= 100:  # a 400-digit integer does not even fit a float
            return None, "score_out_of_range"
        value = float(value)
    if not isinstance(value, float) or not math.isfinite(value):
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


# ---- step 1: one line -> one JSON object -------------------------------------------------------------


def parse_line(raw_line: str | bytes) -> tuple[dict | None, str]:
    """(record, the line as text); record None for a blank line. Raises Rejected(malformed_json)."""
    if isinstance(raw_line, str):  # a lone surrogate in it fails the UTF-8 check below, like a bad byte
        raw_line = raw_line.encode("utf-8", "surrogatepass")
    try:
        line = raw_line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("malformed_json", f"not UTF-8: {exc}", raw_line.decode("utf-8", "replace")) from None
    line = line.lstrip("\ufeff").rstrip("\r\n")
    if not line.strip():
        return None, line
    try:
        record = json.loads(line)
    except RecursionError:
        raise Rejected("malformed_json", "JSON nested too deeply to read", line) from None
    except ValueError as exc:  # JSONDecodeError, and int strings beyond Python's digit limit
        raise Rejected("malformed_json", str(exc), line) from None
    if not isinstance(record, dict):
        raise Rejected("malformed_json", f"a JSON {type(record).__name__}, not an object", line)
    if not encodes_as_utf8(line, record):
        raise Rejected("malformed_json", "a string escape (\\ud800 ...) is a lone surrogate, not a character", line)
    return record, line


def encodes_as_utf8(line: str, record: dict) -> bool:
    """False when a \\uXXXX escape decoded to a lone surrogate: Parquet (UTF-8) could not store the text."""
    if "\\u" not in line:  # the only way to a surrogate in a line that decoded as UTF-8
        return True
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ---- step 2: the raw contract's field types ----------------------------------------------------------


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def inside_folder(relative: str, folder: Path) -> bool:
    """True when `relative` names a file under `folder`: not absolute, no `..`, not leaving it through a link."""
    if not relative or relative.startswith(("/", "\\")) or PureWindowsPath(relative).drive:
        return False
    if ".." in relative.replace("\\", "/").split("/"):
        return False
    root = folder.resolve()
    return (root / relative).resolve().is_relative_to(root)


def check_fields(record: dict, images_dir: Path) -> None:
    """Raise Rejected(missing_field | invalid_field) unless the record follows the raw contract's types."""
    review_id = record.get("review_id")
    if review_id is None or review_id == "":
        raise Rejected("missing_field", "review_id is missing or empty")
    if not isinstance(review_id, str):
        raise Rejected("invalid_field", f"review_id must be a string, got {type(review_id).__name__}")
    if "scores" not in record:
        raise Rejected("missing_field", "scores is missing")
    if not isinstance(record["scores"], (dict, type(None))):
        raise Rejected("invalid_field", f"scores must be an object, got {type(record['scores']).__name__}")
    for name in OPTIONAL_STR_FIELDS:
        if not isinstance(record.get(name), (str, type(None))):
            raise Rejected("invalid_field", f"{name} must be a string or null, got {type(record[name]).__name__}")
    if not isinstance(record.get("image_urls"), (type(None),)) and not _is_str_list(record["image_urls"]):
        raise Rejected("invalid_field", "image_urls must be a list of strings")
    images = record.get("images")
    if images is not None and not isinstance(images, list):
        raise Rejected("invalid_field", f"images must be a list, got {type(images).__name__}")
    for i, entry in enumerate(images or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise Rejected("invalid_field", f"images[{i}] must be an object with a string path")
        if "\x00" in entry["path"]:  # no file name holds one; the OS calls would raise ValueError
            raise Rejected("invalid_field", f"images[{i}].path contains a NUL character")
        if not isinstance(entry.get("url"), (str, type(None))):
            raise Rejected("invalid_field", f"images[{i}].url must be a string or null")
        if not inside_folder(entry["path"], images_dir):
            raise Rejected("invalid_field", f"images[{i}].path {entry['path']!r} is outside {IMAGES_DIR}/")
    release_split = record.get(RELEASE_SPLIT_FIELD)
    if release_split is not None and not (
        isinstance(release_split, dict) and all(isinstance(v, str) for v in release_split.values())
    ):
        raise Rejected("invalid_field", f"{RELEASE_SPLIT_FIELD} must be an object of strings")
    if not isinstance(record.get(SEGMENTED_FIELD), (bool, type(None))):
        raise Rejected("invalid_field", f"{SEGMENTED_FIELD} must be true, false or null")


# ---- step 3: the review's images ----------------------------------------------------------------------


class ImageChecker:
    """Resolves a record's `images` to usable paths; each file is decoded once, by the features stage's check."""

    def __init__(self, raw_dir: Path, prep: Preprocessing, stats: CleanStats):
        self.images_dir = Path(raw_dir) / IMAGES_DIR
        self.prep = prep
        self.stats = stats
        self._verdict: dict[str, str] = {}  # path -> "ok" | MISSING | another image error kind

    def _check(self, path: str) -> str:
        if path not in self._verdict:
            try:
                decode_image(Path(path), self.prep)
                self._verdict[path] = "ok"
            except ImageError as exc:
                self._verdict[path] = exc.kind
        return self._verdict[path]

    def usable_paths(self, record: dict) -> list[str]:
        """Paths (relative to the repo root when raw_dir is) of the record's usable images, in page order.

        Expects a record that passed check_fields."""
        page_order = {url: i for i, url in enumerate(record.get("image_urls") or [])}
        entries = [e for e in record.get("images") or [] if e["path"]]
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
            elif verdict == MISSING:
                self.stats.images_missing += 1
            else:
                self.stats.images_undecodable += 1
        return paths


# ---- step 4: one record -> its pairs ------------------------------------------------------------------


@dataclass
class Review:
    """What a kept record contributes to every one of its pairs."""

    review_id: str
    product_id: str | None
    product_name: str | None
    brand: str | None
    text: str
    image_paths: list[str]
    release_split: dict
    presegmented: bool

    def pair(self, aspect: str, label: str, score: int) -> dict:
        return dict(
            review_id=self.review_id,
            product_id=self.product_id,
            product_name=self.product_name,
            brand=self.brand,
            aspect=aspect,
            aspect_zh=aspect_zh(aspect),
            score=score,
            label=score - 1,
            text=self.text,
            image_paths=list(self.image_paths),
            n_images=len(self.image_paths),
            release_split=self.release_split.get(aspect, self.release_split.get(label)),
            presegmented=self.presegmented,
        )


class Cleaner:
    """Walks the raw lines in order; remembers what was kept so later copies are duplicates."""

    def __init__(self, raw_dir: Path, params: CleanParams):
        self.params = params
        self.stats = CleanStats()
        self.images = ImageChecker(raw_dir, params.images, self.stats)
        self.pairs: list[dict] = []
        self.rejected: list[dict] = []
        self.seen_ids: set[str] = set()
        self.seen_texts: set[tuple[str, str]] = set()

    def reject(self, line_no: int, review_id: str | None, aspect: str | None, why: Rejected, raw: str) -> None:
        self.rejected.append(
            dict(
                line_no=line_no,
                review_id=review_id,
                aspect=aspect,
                reason=why.reason,
                detail=why.detail,
                raw=why.raw if why.raw is not None else raw,
            )
        )
        (self.stats.rejected_pairs if aspect is not None else self.stats.rejected_records)[why.reason] += 1

    def add_line(self, line_no: int, raw_line: str | bytes) -> None:
        try:
            record, line = parse_line(raw_line)
        except Rejected as why:
            self.stats.records_in += 1
            self.reject(line_no, None, None, why, why.raw or "")
            return
        if record is None:
            self.stats.blank_lines += 1
            return
        self.stats.records_in += 1
        review_id = record.get("review_id") if isinstance(record.get("review_id"), str) else None
        try:
            check_fields(record, self.images.images_dir)
            review = self.keep_review(record)
        except Rejected as why:
            self.reject(line_no, review_id if review_id else None, None, why, line)
            return
        self.add_pairs(line_no, review, record["scores"])

    def keep_review(self, record: dict) -> Review:
        """The review a record holds, or Rejected: duplicate id, no score, no text, no image, duplicate text."""
        review_id = record["review_id"]
        if review_id in self.seen_ids:
            raise Rejected("duplicate_id", "an earlier line has this review_id")
        if not record["scores"]:
            raise Rejected("no_score", "scores is empty")
        text = join_fields([record.get(name) for name in TEXT_FIELDS])
        if visible_length(text) < self.params.min_text_chars:
            raise Rejected(
                "no_text",
                f"{visible_length(text)} characters after cleaning < clean.min_text_chars={self.params.min_text_chars}",
            )
        image_paths = self.images.usable_paths(record)
        if not image_paths and self.params.require_image:
            raise Rejected("no_image", "no downloaded, decodable image (clean.require_image)")
        product_id = record.get("product_id")
        if self.params.dedupe_same_text and product_id is not None:
            if (product_id, text) in self.seen_texts:
                raise Rejected("duplicate_text", f"same text as an earlier review of product {product_id}")
            self.seen_texts.add((product_id, text))
        # only a kept record makes later copies duplicates: a copy dropped above (no text, no image) must not
        # cost the review a later, usable copy
        self.seen_ids.add(review_id)
        return Review(
            review_id,
            product_id,
            record.get("product_name"),
            record.get("brand"),
            text,
            image_paths,
            record.get(RELEASE_SPLIT_FIELD) or {},
            record.get(SEGMENTED_FIELD) is True,
        )

    def add_pairs(self, line_no: int, review: Review, scores: dict) -> None:
        """One pair per scored aspect; unknown, repeated or unusable scores are rejected pairs."""
        aspects_done: set[str] = set()
        for label, value in scores.items():
            key = canonical_key(label)
            raw_value = json.dumps(value, ensure_ascii=False)
            if key is None:
                why = Rejected("unknown_aspect", f"'{label}' is none of the paper's six aspects")
            elif key in aspects_done:
                why = Rejected("duplicate_aspect", f"'{label}' scores {key} a second time")
            else:
                score, reason = parse_score(value)
                if reason is None:
                    aspects_done.add(key)
                    self.pairs.append(review.pair(key, label, score))
                    continue
                why = Rejected(reason, f"score of '{label}' must be a number in 1..10")
            self.reject(line_no, review.review_id, key if key is not None else label, why, raw_value)

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(pairs sorted by PAIR_SORT_KEY, rejected sorted by line and aspect)."""
        pairs = pd.DataFrame(self.pairs, columns=PAIRS_SCHEMA.names)
        if len(pairs):
            pairs = pairs.sort_values(PAIR_SORT_KEY, kind="stable").reset_index(drop=True)
        order = sorted(
            range(len(self.rejected)), key=lambda i: (self.rejected[i]["line_no"], self.rejected[i]["aspect"] or "")
        )
        rejected = pd.DataFrame([self.rejected[i] for i in order], columns=REJECTED_SCHEMA.names)
        return pairs, rejected


def records_to_pairs(
    lines: Iterable[str | bytes], raw_dir: str | Path, params: CleanParams, progress: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The pure core of the stage: raw JSON lines -> (pairs, rejected, metrics).

    Image paths are `<raw_dir>/images/<path>`; relative to the working directory when raw_dir is.
    """
    cleaner = Cleaner(Path(raw_dir), params)
    for line_no, raw_line in enumerate(tqdm(lines, desc="clean", unit=" records", disable=not progress), start=1):
        cleaner.add_line(line_no, raw_line)
    pairs, rejected = cleaner.frames()
    return pairs, rejected, _metrics(cleaner.stats, pairs)


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
        "presegmented_reviews_out": int(pairs.loc[pairs["presegmented"].astype(bool), "review_id"].nunique()),
        "images": {"usable": stats.images_ok, "missing": stats.images_missing, "undecodable": stats.images_undecodable},
    }


def read_lines(path: Path) -> list[bytes]:
    """The raw file's lines as bytes (decoded per line, so one bad byte costs one record)."""
    if not path.is_file():
        raise UserError(
            f"{path} not found: run the source that writes it (dvc repro sources/zol/dvc.yaml:crawl, or "
            f"dvc repro sources/multizol/dvc.yaml:import), "
            f"or point data.raw in params.yaml at a folder holding {REVIEWS_FILE}"
        )
    return path.read_bytes().splitlines()


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.clean", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    raw_dir = Path(require(load_params("data", args.params), "raw", "data", str))
    params = CleanParams.from_sections(load_params("clean", args.params), load_params("features", args.params))
    lines = read_lines(raw_dir / REVIEWS_FILE)
    pairs, rejected, metrics = records_to_pairs(lines, raw_dir, params, progress=True)
    for path in (PAIRS_PATH, REJECTED_PATH):
        remove_leftovers(path)
    write_frame(pairs, PAIRS_PATH, PAIRS_SCHEMA)
    write_frame(rejected, REJECTED_PATH, REJECTED_SCHEMA)
    headline = {"reviews": metrics["reviews_out"], "pairs": metrics["pairs_out"], "rejected": len(rejected)}
    write_metrics(headline, metrics, METRICS_PATH, DETAIL_PATH)
    rejected_all = Counter(metrics["rejected_records_by_reason"]) + Counter(metrics["rejected_pairs_by_reason"])
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(rejected_all.items())) or "none"
    print(
        f"clean: {metrics['records_in']} records in -> {metrics['pairs_out']} pairs "
        f"of {metrics['reviews_out']} reviews; "
        f"rejected {len(rejected)} ({reasons}); images usable {metrics['images']['usable']}, "
        f"missing {metrics['images']['missing']}, undecodable {metrics['images']['undecodable']}; "
        f"{time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
