"""Reading the published Multi-ZOL release: the zol_*_jieba.txt files (4 lines per (review, aspect) pair) or
multi_jsonData/*.json (one review per file) -> partial records by review_id (pipeline/import_multizol.py links their
images and writes them as raw records)."""

from __future__ import annotations

import ast
import hashlib
import json
import math
from collections import Counter
from pathlib import Path, PureWindowsPath

from common.aspects import canonical_aspect
from common.contract import RELEASE_SPLIT_FIELD, SEGMENTED_FIELD
from common.errors import UserError

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
    """A release file's text: UTF-8, else GB18030 (counted in stats["files_decoded_gb18030"]); else a UserError."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode(FALLBACK_ENCODING)
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path} is neither UTF-8 nor {FALLBACK_ENCODING.upper()} (GBK) text (byte {exc.start}); "
            f"the file is damaged or not a Multi-ZOL release file"
        ) from None
    stats["files_decoded_gb18030"] += 1
    return text


def read_txt_file(path: Path, stats: Counter) -> list[tuple[str, str, str, str]]:
    """The (text, image list, aspect name, score) samples of one zol_*_jieba.txt file.

    Lines end at '\n' only: str.splitlines() would also cut a review at U+2028, U+0085 or a form feed."""
    lines = [line.removesuffix("\r") for line in decode_release_file(path, stats).split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) % 4:
        raise UserError(
            f"{path}: {len(lines)} lines is not a multiple of 4 (text, images, aspect, score per "
            f"sample); the file is truncated or not a Multi-ZOL release file"
        )
    return [tuple(s.strip() for s in lines[start : start + 4]) for start in range(0, len(lines), 4)]  # type: ignore[misc]


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


def read_txt_release(release: Path, stats: Counter, keep_duplicates: bool = False) -> dict[str, dict]:
    """review_id -> partial record from the zol_*_jieba.txt files present (one record per text + images).

    The release holds some (review, aspect) pairs twice. By default the first copy is kept (the files are read
    train, dev, test, so a copy in train wins over one in test) and each dropped copy is counted in
    stats["duplicates"]; with keep_duplicates every copy becomes a pair of its own, in a record
    `<review_id>-copy<n>` for the n-th copy, exactly as the release has them.
    """
    reviews: dict[str, dict] = {}
    for split, filename in TXT_FILES.items():
        path = release / filename
        if not path.is_file():
            continue
        mtime = path.stat().st_mtime
        for index, (text, images_line, aspect_name, score_line) in enumerate(read_txt_file(path, stats)):
            names = parse_image_list(images_line, f"{path}:{4 * index + 2}", stats)
            score = parse_score_line(score_line)
            key = aspect_key(aspect_name)
            base_id = review_id_of(text, names)
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
                    "body": text,
                    "images": names,
                    "scores": {},
                    RELEASE_SPLIT_FIELD: {},
                    SEGMENTED_FIELD: True,
                    "_mtime": mtime,
                },
            )
            record["scores"][key] = score
            record[RELEASE_SPLIT_FIELD][key] = split
            stats[f"pairs_{split}"] += 1
    return reviews


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


def read_json_release(release: Path, stats: Counter) -> dict[str, dict]:
    """review_id -> partial record from multi_jsonData/*.json (review_id = mz-<file stem>)."""
    reviews: dict[str, dict] = {}
    for path in sorted((release / JSON_DIR).glob("*.json")):
        data = read_json_file(path, stats)
        if data is None:
            continue
        entries = data["img_path"]
        names = [n for n in (image_name(e) for e in entries) if n]
        stats["images_undefined"] += len(entries) - len(names)
        scores = data.get("items_score")
        scores = {aspect_key(str(k)): v for k, v in scores.items()} if isinstance(scores, dict) else {}
        review_id = f"mz-{path.stem}"
        reviews[review_id] = {
            "review_id": review_id,
            "body": data.get("review_data"),
            "images": names,
            "scores": scores,
            RELEASE_SPLIT_FIELD: None,
            SEGMENTED_FIELD: False,
            "_mtime": path.stat().st_mtime,
        }
    return reviews
