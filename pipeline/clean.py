"""Stage clean: raw reviews (JSON Lines + images) -> one row per (review, scored aspect).

    python -m pipeline.clean [--params params.yaml]

Reads `<data.raw>/reviews.jsonl`, writes `data/clean/pairs.parquet` (PAIRS_SCHEMA),
`data/clean/rejected.parquet` (REJECTED_SCHEMA: every dropped record or pair with its reason),
`metrics/clean.json` (reviews, pairs and rejected rows kept) and `reports/clean_detail.json` (every count: per
reason, per aspect, per label, images). Each line goes through pipeline/records.py's checks; an image is usable
when the features stage could decode it (pipeline/imaging.py, with `features.image_size` and
`features.max_image_pixels`).

It streams (docs/scaling.md): the lines are read one at a time, rejected rows written as they come, pairs sorted
through runs of `data.batch_rows` rows (pipeline/stream.py); what it keeps of the whole input is the review ids
kept, a hash of each kept (product, text) and each image path's verdict.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from common.aspects import aspect_zh
from common.atomic import remove_leftovers
from common.contract import IMAGES_DIR, RELEASE_SPLIT_FIELD, REVIEWS_FILE, SEGMENTED_FIELD
from common.errors import UserError
from common.metrics import detail_path, write_metrics
from common.params import load_params, read_section, section_of
from common.stage import run_stage, stage_parser
from pipeline.clean_metrics import CleanStats, PairTally, clean_metrics
from pipeline.imaging import MISSING, ImageError, Preprocessing, decode_pixels, read_preprocessing
from pipeline.paths import PAIRS_PATH, REJECTED_PATH, DataParams
from pipeline.records import (
    TEXT_FIELDS,
    Rejected,
    canonical_key,
    check_fields,
    parse_line,
    parse_score,
)
from pipeline.schema import PAIR_SORT_KEY, PAIRS_SCHEMA, REJECTED_SCHEMA
from pipeline.stream import RowSorter, frame_writer
from pipeline.textnorm import join_fields, visible_length

METRICS_PATH = Path("metrics/clean.json")
DETAIL_PATH = detail_path("clean")
DEFAULT_IMAGES = Preprocessing()  # params.yaml's features.image_size and features.max_image_pixels


@dataclass(frozen=True)
class CleanParams:
    """params.yaml `clean`."""

    require_image: bool = True  # only multimodal reviews (>= 1 downloaded, decodable image), as the paper
    min_text_chars: int = 5
    dedupe_same_text: bool = True  # same product and same text -> kept once


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
                decode_pixels(Path(path), self.prep)
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


def text_digest(product_id: str, text: str) -> bytes:
    """What duplicate detection keeps of a (product, text): 16 bytes, not the text."""
    return hashlib.blake2b(f"{product_id}\x00{text}".encode("utf-8", "surrogatepass"), digest_size=16).digest()


class Cleaner:
    """Walks the raw lines in order; remembers what was kept so later copies are duplicates.

    `pairs` and `rejected` collect one line's rows; `take` hands them over and empties them."""

    def __init__(self, raw_dir: Path, params: CleanParams, images: Preprocessing):
        self.params = params
        self.stats = CleanStats()
        self.images = ImageChecker(raw_dir, images, self.stats)
        self.pairs: list[dict] = []
        self.rejected: list[dict] = []
        self.seen_ids: set[str] = set()
        self.seen_texts: set[bytes] = set()  # text_digest of each kept (product, text)

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
            digest = text_digest(product_id, text)
            if digest in self.seen_texts:
                raise Rejected("duplicate_text", f"same text as an earlier review of product {product_id}")
            self.seen_texts.add(digest)
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

    def take(self) -> tuple[list[dict], list[dict]]:
        """(the pairs, the rejected rows sorted by aspect) of the lines added since the last call."""
        pairs, rejected = self.pairs, sorted(self.rejected, key=lambda row: row["aspect"] or "")
        self.pairs, self.rejected = [], []
        return pairs, rejected


def clean_lines(
    lines: Iterable[str | bytes],
    raw_dir: str | Path,
    params: CleanParams,
    images: Preprocessing,
    on_pair: Callable[[dict], None],
    on_rejected: Callable[[dict], None],
    progress: bool = False,
) -> dict:
    """The streaming core: each line's pairs go to `on_pair` (in line order, unsorted), its rejected rows to
    `on_rejected` (sorted by line and aspect); returns the metrics."""
    cleaner = Cleaner(Path(raw_dir), params, images)
    tally = PairTally()
    for line_no, raw_line in enumerate(tqdm(lines, desc="clean", unit=" records", disable=not progress), start=1):
        cleaner.add_line(line_no, raw_line)
        pairs, rejected = cleaner.take()
        tally.add_review(pairs)
        for row in pairs:
            on_pair(row)
        for row in rejected:
            on_rejected(row)
    return clean_metrics(cleaner.stats, tally)


def records_to_pairs(
    lines: Iterable[str | bytes],
    raw_dir: str | Path,
    params: CleanParams,
    images: Preprocessing = DEFAULT_IMAGES,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The stage in memory: raw JSON lines -> (pairs sorted by PAIR_SORT_KEY, rejected sorted by line and aspect,
    metrics).

    Image paths are `<raw_dir>/images/<path>`, decoded with `images` (the features stage's settings); relative to
    the working directory when raw_dir is.
    """
    pairs_rows: list[dict] = []
    rejected_rows: list[dict] = []
    metrics = clean_lines(lines, raw_dir, params, images, pairs_rows.append, rejected_rows.append, progress)
    pairs = pd.DataFrame(pairs_rows, columns=PAIRS_SCHEMA.names)
    if len(pairs):
        pairs = pairs.sort_values(PAIR_SORT_KEY, kind="stable").reset_index(drop=True)
    return pairs, pd.DataFrame(rejected_rows, columns=REJECTED_SCHEMA.names), metrics


def pair_key(pair: dict) -> tuple[str, str]:
    return tuple(pair[column] for column in PAIR_SORT_KEY)


def write_outputs(lines: Iterable[bytes], raw_dir: Path, params: CleanParams, images: Preprocessing, batch_rows: int):
    """Stream the lines into PAIRS_PATH and REJECTED_PATH (each replaced atomically, pairs first); the metrics."""
    for path in (PAIRS_PATH, REJECTED_PATH):
        remove_leftovers(path)
    sorter = RowSorter(PAIRS_SCHEMA, pair_key, batch_rows, PAIRS_PATH)
    try:
        with frame_writer(REJECTED_PATH, REJECTED_SCHEMA, batch_rows, _empty(REJECTED_SCHEMA)) as rejected:
            metrics = clean_lines(lines, raw_dir, params, images, sorter.add, rejected.add_row, progress=True)
            with frame_writer(PAIRS_PATH, PAIRS_SCHEMA, batch_rows, _empty(PAIRS_SCHEMA)) as pairs:
                for row in sorter.sorted_rows():
                    pairs.add_row(row)
    finally:
        sorter.close()
    return metrics


def _empty(schema) -> Callable[[], pd.DataFrame]:
    return lambda: pd.DataFrame([], columns=schema.names)


def read_lines(path: Path) -> list[bytes]:
    """The raw file's lines as bytes (decoded per line, so one bad byte costs one record)."""
    return list(iter_lines(path))


def iter_lines(path: Path) -> Iterator[bytes]:
    """The raw file's lines as bytes, one at a time, split as bytes.splitlines splits the whole file (a missing
    file fails at once, before anything is written)."""
    if not path.is_file():
        raise UserError(
            f"{path} not found: run the source that writes it (dvc repro sources/zol/dvc.yaml:crawl, or "
            f"dvc repro sources/multizol/dvc.yaml:import), "
            f"or point data.raw in params.yaml at a folder holding {REVIEWS_FILE}"
        )
    return _lines_of(path)


def _lines_of(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        for chunk in handle:  # ends at each \n; splitlines also ends a line at a lone \r
            yield from chunk.splitlines()


def run(args: argparse.Namespace) -> str:
    """The stage as `python -m pipeline.clean` runs it; its summary line."""
    params_file = load_params(None, args.params)
    data = read_section(DataParams, section_of(params_file, "data", args.params), "data", args.params)
    params = read_section(CleanParams, section_of(params_file, "clean", args.params), "clean", args.params)
    images = read_preprocessing(section_of(params_file, "features", args.params), args.params)
    raw_dir = Path(data.raw)
    lines = iter_lines(raw_dir / REVIEWS_FILE)
    metrics = write_outputs(lines, raw_dir, params, images, data.batch_rows)
    rejected = sum(metrics["rejected_records_by_reason"].values()) + sum(metrics["rejected_pairs_by_reason"].values())
    headline = {"reviews": metrics["reviews_out"], "pairs": metrics["pairs_out"], "rejected": rejected}
    write_metrics(headline, metrics, METRICS_PATH, DETAIL_PATH)
    rejected_all = Counter(metrics["rejected_records_by_reason"]) + Counter(metrics["rejected_pairs_by_reason"])
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(rejected_all.items())) or "none"
    return (
        f"clean: {metrics['records_in']} records in -> {metrics['pairs_out']} pairs "
        f"of {metrics['reviews_out']} reviews; "
        f"rejected {rejected} ({reasons}); images usable {metrics['images']['usable']}, "
        f"missing {metrics['images']['missing']}, undecodable {metrics['images']['undecodable']}"
    )


def main(argv: list[str] | None = None) -> int:
    return run_stage(stage_parser("python -m pipeline.clean", __doc__), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
