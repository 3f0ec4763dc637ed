"""Import the published Multi-ZOL release as raw records of our contract, so the pipeline can run on it.

    python -m pipeline.import_multizol --release DIR [--out data/raw/multizol] [--format auto|txt|json]
                                       [--keep-duplicate-pairs]
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
whose review_id is a hash of both. `--format auto` reads the txt files when any exist (they carry the release's
split), else the json files. The original image URLs cannot be recovered from the file names (`:`, `/`, `.`
all became `_`), so `image_urls` holds `img/<name>`, the name in the release.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import os
import re
import shutil
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path, PureWindowsPath

from common.aspects import canonical_aspect
from common.atomic import atomic_dir, check_output_folder, remove_leftovers, write_json
from common.contract import IMAGES_DIR, RAW_FIELDS, RELEASE_SPLIT_FIELD, REVIEWS_FILE, SEGMENTED_FIELD
from common.errors import UserError, cli_entry
from common.params import DEFAULT_PARAMS, load_params, require

TXT_FILES = {"train": "zol_Train_jieba.txt", "dev": "zol_Dev_jieba.txt", "test": "zol_Test_jieba.txt"}
JSON_DIR = "multi_jsonData"
IMG_DIR = "img"
UNDEFINED_IMAGE = "http_undefined"
DEFAULT_OUT = "data/raw/multizol"
COUNTS_PATH = "reports/import.json"
OUTPUT_ENTRIES = {REVIEWS_FILE, IMAGES_DIR}
FALLBACK_ENCODING = "gb18030"  # the release was made on Chinese Windows: GBK, of which GB18030 is a superset
COPY_SUFFIX = re.compile(
    r"-copy\d+$"
)  # review_id of the 2nd, 3rd... copy of a duplicated pair (--keep-duplicate-pairs)


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


def import_release(release: str | Path, out: str | Path, fmt: str = "auto", keep_duplicates: bool = False) -> dict:
    """Write `<out>/reviews.jsonl` (sorted by review_id) and `<out>/images/`, the folder replaced whole; return the
    counts (metrics)."""
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
    partials = read_txt_release(release, stats, keep_duplicates) if fmt == "txt" else read_json_release(release, stats)
    with atomic_dir(out) as staging:
        (staging / IMAGES_DIR).mkdir()
        records = [build_record(partials[rid], release, staging, stats) for rid in sorted(partials)]
        with open(staging / REVIEWS_FILE, "w", encoding="utf-8", newline="\n") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return import_metrics(fmt, records, stats, keep_duplicates)


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


def import_metrics(fmt: str, records: list[dict], stats: Counter, keep_duplicates: bool) -> dict:
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
        duplicates["extra_copies_kept"] = sum(1 for r in records if COPY_SUFFIX.search(r["review_id"]))
    return {
        "format": fmt,
        "reviews": len(records),
        "pairs": sum(len(r["scores"]) for r in records),
        "pairs_by_split": take("pairs_"),
        "reviews_with_image": sum(1 for r in records if r["images"]),
        "images": {kind: stats[f"images_{kind}"] for kind in ("linked", "missing", "undefined")},
        "json_files_unreadable": stats["json_files_unreadable"],
        "json_files_rejected": stats["json_files_rejected"],
        "files_decoded_gb18030": stats["files_decoded_gb18030"],
        "duplicate_pairs": duplicates,
    }


def settings(args: argparse.Namespace) -> tuple[str, str, str, bool]:
    """(release, out, format, keep_duplicate_pairs): from the command line, or params.yaml's `multizol` section."""
    if args.release:
        return args.release, args.out or DEFAULT_OUT, args.format or "auto", args.keep_duplicate_pairs
    release, fmt, keep_duplicates = section_settings(load_params("multizol", args.params))
    return release, DEFAULT_OUT, fmt, keep_duplicates


def section_settings(section: dict) -> tuple[str, str, bool]:
    """(release, format, keep_duplicate_pairs) of params.yaml's `multizol` section, checked (not whether the release
    is there: that is the import's first step, and only a run on this source needs it)."""
    fmt = require(section, "format", "multizol", str)
    if fmt not in ("auto", "txt", "json"):
        raise UserError(f"params.yaml: 'multizol.format' must be auto, txt or json, got {fmt!r}")
    return (
        require(section, "release", "multizol", str),
        fmt,
        require(section, "keep_duplicate_pairs", "multizol", bool),
    )


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.import_multizol",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--release",
        help="folder of the unpacked Multi-ZOL release (default: multizol.release of "
        "the params file, with every other setting from there too)",
    )
    parser.add_argument("--out", help=f"raw folder to write (default: {DEFAULT_OUT})")
    parser.add_argument(
        "--format",
        choices=("auto", "txt", "json"),
        help="which files to read (auto, the default: the txt files when present, else the json files)",
    )
    parser.add_argument(
        "--keep-duplicate-pairs",
        action="store_true",
        help="keep every copy of a (review, aspect) pair the release holds twice (default: the first)",
    )
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="params file (default: params.yaml)")
    parser.add_argument("--counts", default=COUNTS_PATH, help="counts JSON (default: %(default)s)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    release, out, fmt, keep_duplicates = settings(args)
    counts = import_release(release, out, fmt, keep_duplicates)
    remove_leftovers(args.counts)
    write_json(counts, args.counts)
    dropped = counts["duplicate_pairs"]["dropped"]
    print(
        f"import_multizol ({counts['format']}): {counts['reviews']} reviews, {counts['pairs']} pairs "
        f"({', '.join(f'{k} {v}' for k, v in counts['pairs_by_split'].items()) or 'no release split'}) -> "
        f"{Path(out) / REVIEWS_FILE}; {counts['reviews_with_image']} reviews with images; duplicate pairs "
        f"{'kept' if keep_duplicates else f'dropped: {dropped}'}; counts in {args.counts}; "
        f"{time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
