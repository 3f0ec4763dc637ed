"""The raw contract's records, one line at a time: a JSON object, its field types, its scores (the checks the
clean stage applies to every line of reviews.jsonl, and model.predict to the reviews it is given)."""

from __future__ import annotations

import json
import math
from pathlib import Path, PureWindowsPath
from typing import Any

from common.aspects import CANONICAL_ASPECTS, canonical_aspect
from common.contract import IMAGES_DIR, RELEASE_SPLIT_FIELD, SEGMENTED_FIELD

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
