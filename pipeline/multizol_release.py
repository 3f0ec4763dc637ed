"""Reading the published Multi-ZOL release: the zol_*_jieba.txt files (4 lines per (review, aspect) pair) or
multi_jsonData/*.json (one review per file) -> partial records by review_id (pipeline/import_multizol.py links their
images and writes them as raw records)."""

from __future__ import annotations

import ast
import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import groupby
from operator import itemgetter
from pathlib import Path, PureWindowsPath

import pyarrow as pa

from common.aspects import canonical_aspect
from common.contract import RELEASE_SPLIT_FIELD, SEGMENTED_FIELD
from common.errors import UserError
from pipeline.stream import RowSorter

TXT_FILES = {"train": "zol_Train_jieba.txt", "dev": "zol_Dev_jieba.txt", "test": "zol_Test_jieba.txt"}
JSON_DIR = "multi_jsonData"
IMG_DIR = "img"
UNDEFINED_IMAGE = "http_undefined"
FALLBACK_ENCODING = "gb18030"  # the release was made on Chinese Windows: GBK, of which GB18030 is a superset


def aspect_key(name: str) -> str:
    """The canonical key of a release aspect name (外观手感 -> appearance); an unknown name stays as-is."""
    return canonical_aspect(name) or name.strip()


def image_name(entry: str) -> str | None:
    """`..\\img\\<file>` or `<file>` -> `<file>`; None for `http_undefined` and empty entries."""
    entry = entry.strip()
    if not entry or entry == UNDEFINED_IMAGE:
        return None
    name = PureWindowsPath(entry.replace("/", "\\")).name
    return None if name in ("", ".", "..") or name == UNDEFINED_IMAGE else name


def review_id_of(text: str, images: list[str]) -> str:
    digest = hashlib.sha1("\n".join([text, *images]).encode("utf-8")).hexdigest()
    return f"mz-{digest[:16]}"


def decode_release_file(path: Path, stats: Counter) -> str:
    """A release file's whole text (a multi_jsonData file): UTF-8, else GB18030 (counted), else a UserError."""
    encoding = release_encoding(path, stats)
    return path.read_bytes().decode("utf-8-sig" if encoding == "utf-8" else encoding)


def first_undecodable_byte(path: Path, encoding: str) -> int | None:
    """The offset of the first byte of `path` that is not `encoding`, None when all is. Read line by line: '\n'
    never occurs inside a UTF-8 or GB18030 character, so each line decodes as it would inside the whole file."""
    offset = 0
    with open(path, "rb") as handle:
        for line in handle:
            try:
                line.decode(encoding)
            except UnicodeDecodeError as exc:
                return offset + exc.start
            offset += len(line)
    return None


def release_encoding(path: Path, stats: Counter) -> str:
    """ "utf-8", else "gb18030" (counted in stats["files_decoded_gb18030"]); a file that is neither is a UserError."""
    if first_undecodable_byte(path, "utf-8") is None:
        return "utf-8"
    bad_byte = first_undecodable_byte(path, FALLBACK_ENCODING)
    if bad_byte is not None:
        raise UserError(
            f"{path} is neither UTF-8 nor {FALLBACK_ENCODING.upper()} (GBK) text (byte {bad_byte}); "
            f"the file is damaged or not a Multi-ZOL release file"
        )
    stats["files_decoded_gb18030"] += 1
    return FALLBACK_ENCODING


def release_lines(path: Path, encoding: str) -> Iterator[str]:
    """The file's lines, one at a time, without their ending. Lines end at '\n' only: str.splitlines() would also
    cut a review at U+2028, U+0085 or a form feed."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle):
            text = raw.decode("utf-8-sig" if encoding == "utf-8" and number == 0 else encoding)
            yield text.removesuffix("\n").removesuffix("\r")


def read_txt_file(path: Path, stats: Counter) -> Iterator[tuple[str, str, str, str]]:
    """The (text, image list, aspect name, score) samples of one zol_*_jieba.txt file, one at a time, each field
    stripped; blank lines at the end of the file are ignored, any other count of lines not a multiple of 4 is a
    UserError (raised when the end is reached)."""
    sample: list[str] = []
    lines = blank_run = 0
    for line in release_lines(path, release_encoding(path, stats)):
        if not line.strip():  # held back: blank lines count only when a line with text follows them
            blank_run += 1
            continue
        for field in [""] * blank_run + [line.strip()]:
            sample.append(field)
            if len(sample) == 4:
                yield tuple(sample)  # type: ignore[misc]
                sample = []
        lines += blank_run + 1
        blank_run = 0
    if sample:
        raise UserError(
            f"{path}: {lines} lines is not a multiple of 4 (text, images, aspect, score per "
            f"sample); the file is truncated or not a Multi-ZOL release file"
        )


def parse_image_list(images_line: str, where: str, stats: Counter) -> list[str]:
    try:
        images = ast.literal_eval(images_line) if images_line else []
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # TypeError: {[]: 1}
        raise UserError(
            f"{where}: the image list {images_line[:60]!r} is not a Python list; "
            f"the file is not a Multi-ZOL release file"
        ) from None
    if not isinstance(images, (list, tuple)):
        images = [images]
    names = [image_name(str(i)) for i in images]
    stats["images_undefined"] += sum(1 for n in names if n is None)
    return [n for n in names if n]


PAIR_SCHEMA = pa.schema(
    [
        ("review_id", pa.string()),  # of the text and images (review_id_of): the pairs of one review share it
        ("order", pa.int64()),  # the pair's place in the release (train, dev, test file, line): first copy wins
        ("split", pa.string()),
        ("aspect", pa.string()),
        ("score", pa.float64()),  # the score line as a number, null when it is none
        ("score_text", pa.string()),  # the score line when it is no number (clean quarantines it)
        ("body", pa.string()),
        ("images", pa.list_(pa.string())),
        ("mtime", pa.float64()),
    ]
)


def read_txt_pairs(release: Path, stats: Counter) -> Iterator[dict]:
    """The (review, aspect) pairs of the zol_*_jieba.txt files present, one PAIR_SCHEMA row at a time, in release
    order (train, dev, test)."""
    order = 0
    for split, filename in TXT_FILES.items():
        path = release / filename
        if not path.is_file():
            continue
        mtime = path.stat().st_mtime
        for index, (text, images_line, aspect_name, score_line) in enumerate(read_txt_file(path, stats)):
            names = parse_image_list(images_line, f"{path}:{4 * index + 2}", stats)
            score = parse_score_line(score_line)
            number = isinstance(score, float)
            yield {
                "review_id": review_id_of(text, names),
                "order": order,
                "split": split,
                "aspect": aspect_key(aspect_name),
                "score": score if number else None,
                "score_text": None if number else score,
                "body": text,
                "images": names,
                "mtime": mtime,
            }
            order += 1


def reviews_of_pairs(pairs: Iterable[dict], stats: Counter, keep_duplicates: bool = False) -> list[dict]:
    """The partial records (sorted by review_id) of the pairs of one review, given in release order.

    The release holds some (review, aspect) pairs twice. By default the first copy is kept (the files are read
    train, dev, test, so a copy in train wins over one in test) and each dropped copy is counted in
    stats["duplicate_pairs_*"]; with keep_duplicates every copy becomes a pair of its own, in a record
    `<review_id>-copy<n>` for the n-th copy, exactly as the release has them.
    """
    reviews: dict[str, dict] = {}
    for pair in pairs:
        base_id, key, split = pair["review_id"], pair["aspect"], pair["split"]
        score = pair["score"] if pair["score_text"] is None else pair["score_text"]
        review_id, copy = base_id, 1
        while key in reviews.get(review_id, {}).get("scores", {}):
            first = reviews[base_id]
            if not keep_duplicates:
                count_duplicate(stats, first[RELEASE_SPLIT_FIELD][key], split, first["scores"][key] == score)
                review_id = None
                break
            copy += 1
            review_id = f"{base_id}-copy{copy}"
        if review_id is None:
            continue
        record = reviews.setdefault(
            review_id,
            {
                "review_id": review_id,
                "body": pair["body"],
                "images": pair["images"],
                "scores": {},
                RELEASE_SPLIT_FIELD: {},
                SEGMENTED_FIELD: True,
                "_mtime": pair["mtime"],
            },
        )
        record["scores"][key] = score
        record[RELEASE_SPLIT_FIELD][key] = split
        stats[f"pairs_{split}"] += 1
    return [reviews[review_id] for review_id in sorted(reviews)]


def read_txt_release(release: Path, stats: Counter, keep_duplicates: bool, sorter: RowSorter) -> Iterator[dict]:
    """The partial records of the txt files, one review at a time, sorted by review_id (a review's copies
    `-copy<n>` after it). The release holds a review once per scored aspect, its pairs possibly in several files:
    the pairs go through `sorter` (a disk merge of sorted runs, keyed by review_id and release order) and come
    back grouped, so only one run and one review are in memory."""
    for row in read_txt_pairs(release, stats):
        sorter.add(row)
    for _, pairs in groupby(sorter.sorted_rows(), key=itemgetter("review_id")):
        yield from reviews_of_pairs(pairs, stats, keep_duplicates)


def pair_order(row: dict) -> tuple[str, int]:
    return row["review_id"], row["order"]


def parse_score_line(score_line: str) -> float | str:
    """The score as a number; anything else (also nan, inf) stays text, for clean to quarantine (score_not_numeric)."""
    try:
        score = float(score_line)
    except ValueError:
        return score_line
    return score if math.isfinite(score) else score_line


def count_duplicate(stats: Counter, kept_split: str, dropped_split: str, same_score: bool) -> None:
    stats["duplicate_pairs_dropped"] += 1
    stats["duplicate_pairs_dropped_same_score" if same_score else "duplicate_pairs_dropped_other_score"] += 1
    stats[f"duplicate_pairs_kept_in_{kept_split}_dropped_from_{dropped_split}"] += 1


def read_json_file(path: Path, stats: Counter) -> dict | None:
    """One multi_jsonData file as a JSON object; None (warned, counted) when unreadable or of the wrong shape."""
    try:
        data = json.loads(decode_release_file(path, stats))
    except (UserError, ValueError, RecursionError):  # ValueError: JSONDecodeError, a 5000-digit integer
        stats["json_files_unreadable"] += 1
        print(f"warning: {path} is not readable JSON; skipped")
        return None
    if not isinstance(data, dict):
        stats["json_files_unreadable"] += 1
        print(f"warning: {path} holds no JSON object; skipped")
        return None
    entries = data.get("img_path") or []
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        stats["json_files_rejected"] += 1
        print(
            f"warning: {path}: img_path must be a string or a list of strings, got "
            f"{type(data.get('img_path')).__name__}; skipped"
        )
        return None
    data["img_path"] = entries
    return data


def read_json_release(release: Path, stats: Counter) -> Iterator[dict]:
    """The partial records of multi_jsonData/*.json, one file at a time, sorted by review_id (mz-<file stem>)."""
    for path in sorted((release / JSON_DIR).glob("*.json"), key=lambda p: p.stem):
        data = read_json_file(path, stats)
        if data is None:
            continue
        entries = data["img_path"]
        names = [n for n in (image_name(e) for e in entries) if n]
        stats["images_undefined"] += len(entries) - len(names)
        scores = data.get("items_score")
        scores = {aspect_key(str(k)): v for k, v in scores.items()} if isinstance(scores, dict) else {}
        review_id = f"mz-{path.stem}"
        yield {
            "review_id": review_id,
            "body": data.get("review_data"),
            "images": names,
            "scores": scores,
            RELEASE_SPLIT_FIELD: None,
            SEGMENTED_FIELD: False,
            "_mtime": path.stat().st_mtime,
        }
