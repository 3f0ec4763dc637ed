"""The reviews `python -m tools.predict` scores: one typed in, the crawler's raw JSON Lines, or a Parquet split.

Raw records go through the clean stage's own record functions (parse_line, check_fields, ImageChecker), so a line
the clean stage would reject becomes a review with an error (the reason) in the output, never a traceback; a
Parquet file whose columns are not those of a split is refused with one line naming the column.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from common.contract import SEGMENTED_FIELD
from common.errors import UserError
from model.checkpoint import first_line
from pipeline.clean import (
    TEXT_FIELDS,
    CleanStats,
    ImageChecker,
    Rejected,
    canonical_key,
    check_fields,
    parse_line,
    parse_score,
)
from pipeline.image_data import Preprocessing
from pipeline.segment import Segmenter
from pipeline.textnorm import join_fields


@dataclass
class Review:
    review_id: str
    tokens: list[str]
    images: list[str]  # image files, as paths to read
    true_scores: dict[str, int] = field(default_factory=dict)
    images_not_read: list[tuple[str, str]] = field(default_factory=list)  # (image, why)
    error: str | None = None  # set: the review cannot be predicted


def review_from_text(text: str, images: list[str], review_id: str, segmenter: Segmenter) -> Review:
    """One review typed at the command line; a missing image file is the user's error."""
    for image in images:
        if not Path(image).is_file():
            raise UserError(f"--image {image}: no such file")
    review = tokenised(Review(review_id, [], list(images)), join_fields([text]), False, segmenter)
    if review.error:
        raise UserError(f"--text: {review.error}")
    return review


def tokenised(review: Review, text: str, presegmented: bool, segmenter: Segmenter) -> Review:
    review.tokens = segmenter.tokens(text, presegmented=presegmented)
    if not review.tokens:
        review.error = "no_text: no words left after normalisation and segmentation"
    return review


def true_scores(scores: object) -> dict[str, int]:
    """A raw record's `scores` -> canonical aspect -> score 1..10 (unknown labels and bad values skipped)."""
    out: dict[str, int] = {}
    for label, value in scores.items() if isinstance(scores, dict) else ():
        key, (score, _) = canonical_key(str(label)), parse_score(value)
        if key is not None and score is not None:
            out.setdefault(key, score)
    return out


# ---- raw JSON Lines -------------------------------------------------------------------------------------------


def checked_record(raw: bytes, images_dir: Path) -> dict | None:
    """The record of one line (None: blank), checked as the clean stage checks it; Rejected otherwise."""
    record, _ = parse_line(raw)
    if record is None:
        return None
    check_fields(record, images_dir)
    return record


def reviews_from_jsonl(path: Path, segmenter: Segmenter, prep: Preprocessing) -> Iterator[Review]:
    """Raw records as the crawler writes them (common/contract.py), texts and images resolved as the clean stage
    does; images are under `<folder of the file>/images/`. A bad line becomes a Review with an error."""
    checker = ImageChecker(path.parent, prep, CleanStats())
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            fallback_id = f"{path.name}:{line_no}"
            try:
                record = checked_record(raw, checker.images_dir)
            except Rejected as exc:
                detail = f"line {line_no}: {exc.detail}" if exc.reason == "malformed_json" else exc.detail
                yield Review(
                    fallback_id if exc.reason == "malformed_json" else _record_id(raw, fallback_id),
                    [],
                    [],
                    error=f"{exc.reason}: {detail}",
                )
                continue
            if record is None:
                continue
            usable = checker.usable_paths(record)
            listed = [(path.parent / "images" / e["path"]).as_posix() for e in record.get("images") or [] if e["path"]]
            review = Review(
                record["review_id"],
                [],
                usable,
                true_scores(record.get("scores")),
                [(p, "missing or undecodable") for p in dict.fromkeys(listed) if p not in usable],
            )
            text = join_fields([record.get(name) for name in TEXT_FIELDS])
            yield tokenised(review, text, record.get(SEGMENTED_FIELD) is True, segmenter)


def _record_id(raw: bytes, fallback: str) -> str:
    """A rejected record's own review_id when it has a usable one, else its file and line."""
    try:
        review_id = json.loads(raw).get("review_id")
    except (ValueError, RecursionError, AttributeError):
        return fallback
    return review_id if isinstance(review_id, str) and review_id else fallback


# ---- Parquet splits ---------------------------------------------------------------------------------------------


def _is_string(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _is_string_list(kind: pa.DataType) -> bool:
    """A list of strings; also list<null>, what pandas writes for a column whose lists are all empty (a split of
    text-only reviews has no image path at all)."""
    is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind)
    return is_list and (_is_string(kind.value_type) or pa.types.is_null(kind.value_type))


COLUMN_TYPES = {  # column -> (type check, what it must be)
    "review_id": (lambda t: _is_string(t) or pa.types.is_integer(t), "a string"),
    "image_paths": (_is_string_list, "a list of strings (image paths)"),
    "tokens": (_is_string_list, "a list of strings (the words)"),
    "text": (_is_string, "a string"),
    "aspect": (_is_string, "a string"),
    "score": (lambda t: pa.types.is_integer(t) or pa.types.is_null(t), "an integer"),
    "presegmented": (lambda t: pa.types.is_boolean(t) or pa.types.is_null(t), "true or false"),
}


def read_parquet_input(path: Path) -> pd.DataFrame:
    """The columns predict reads from a split, after checking their types; a UserError names any problem."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"{path} is not a readable Parquet file ({first_line(exc)})") from None
    names = schema.names
    needed = ["review_id", "image_paths", "tokens" if "tokens" in names else "text"]
    missing = [c for c in needed if c not in names]
    if missing:
        raise UserError(f"{path} lacks columns {missing}: give a split of data/splits or data/segmented")
    columns = needed + [c for c in ("aspect", "score", "presegmented") if c in names]
    for column in columns:
        check, wanted = COLUMN_TYPES[column]
        if not check(schema.field(column).type):
            raise UserError(
                f"{path}: column {column!r} is {schema.field(column).type}, not {wanted} as in a split "
                "of data/splits or data/segmented; it is not read as one"
            )
    try:
        frame = pq.read_table(path, columns=columns).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"{path} is not a readable Parquet file ({first_line(exc)})") from None
    frame["review_id"] = [
        str(r) if r is not None and not pd.isna(r) else f"{path.name}:row {n}" for n, r in enumerate(frame["review_id"])
    ]
    return frame


def reviews_from_parquet(path: Path, segmenter: Segmenter) -> Iterator[Review]:
    """A split (one row per review and aspect): a segmented one's tokens are used as they are, else `text` is
    segmented; image paths are relative to the working directory (the repository root), as the pipeline writes.
    The file is read and checked at once (a UserError before any output), the reviews come one by one."""
    return _reviews_of_frame(read_parquet_input(path), segmenter)


def _reviews_of_frame(frame: pd.DataFrame, segmenter: Segmenter) -> Iterator[Review]:
    for review_id, rows in frame.groupby("review_id", sort=True):
        first = rows.iloc[0]  # the pipeline's splits repeat a review's text and images on each of its rows
        scores = (
            {
                str(a): int(s)
                for a, s in zip(rows["aspect"], rows["score"], strict=False)
                if pd.notna(s) and a is not None
            }
            if {"aspect", "score"} <= set(rows)
            else {}
        )
        review = Review(str(review_id), [], strings(first["image_paths"]), scores)
        if "tokens" in rows:
            review.tokens = strings(first["tokens"])
            if not review.tokens:
                review.error = "no_text: the row has no tokens"
            yield review
        else:
            flag = first["presegmented"] if "presegmented" in rows else None
            presegmented = bool(flag) if flag is not None and not pd.isna(flag) else False
            yield tokenised(review, str(first["text"] or ""), presegmented, segmenter)


def strings(value: object) -> list[str]:
    """A list cell's non-null strings (a null cell: none)."""
    return [] if value is None else [str(v) for v in value if v is not None]
