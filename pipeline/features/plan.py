"""The images of the splits: their distinct paths, their contents (sha256, each computed once) and what the backbone
made of the contents the cache lacked."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.imaging import MISSING, UNREADABLE, sha256_file
from pipeline.paths import DataParams
from pipeline.schema import SPLITS
from pipeline.stream import iter_batches


def collect_image_paths(splits_dir: Path, batch_rows: int = DataParams.batch_rows) -> tuple[list[str], int]:
    """Sorted distinct image paths referenced by the splits, and how many entries were null or empty. The splits
    are read `batch_rows` rows at a time, their image paths only: what stays is the set of distinct paths."""
    paths: set[str] = set()
    empty = 0
    for split in SPLITS:
        for batch in iter_batches(splits_dir / f"{split}.parquet", batch_rows, columns=["image_paths"]):
            for entry in batch.column("image_paths").to_pylist():
                if entry is None:
                    continue
                for path in entry:
                    if path:
                        paths.add(path)
                    else:
                        empty += 1
    return sorted(paths), empty


def hash_images(paths: list[str], root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """path -> image_id (sha256) for readable files, path -> error for the others."""
    ids: dict[str, str] = {}
    errors: dict[str, str] = {}
    for path in tqdm(paths, desc="hash images", unit="img", disable=len(paths) < 500, file=sys.stderr):
        try:
            ids[path] = sha256_file(root / path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            errors[path] = f"{MISSING}: no such file"
        except OSError as exc:
            errors[path] = f"{UNREADABLE}: {exc.strerror or exc}"
    return ids, errors


@dataclass
class ImagePlan:
    """The images of the splits: which paths, which contents, which of them still need the backbone."""

    paths: list[str]  # distinct paths, sorted
    ids: dict[str, str]  # path -> content id (sha256), for readable files
    errors: dict[str, str]  # path -> "kind: detail", for the unusable ones
    representative: dict[str, str]  # content id -> its first path in sort order
    empty_entries: int  # null or empty strings among the splits' image paths


def plan_images(splits_dir: Path, root: Path, batch_rows: int = DataParams.batch_rows) -> ImagePlan:
    paths, empty_entries = collect_image_paths(splits_dir, batch_rows)
    ids, errors = hash_images(paths, root)
    representative: dict[str, str] = {}
    for path in paths:
        if path in ids:
            representative.setdefault(ids[path], path)
    return ImagePlan(paths, ids, errors, representative, empty_entries)


@dataclass
class Computed:
    """What the backbone made of the contents not in the cache."""

    features: dict[str, np.ndarray]  # content id -> feature, for the decodable ones
    sizes: dict[str, tuple[int, int]]  # content id -> (width, height), same keys
    errors: dict[str, str]  # content id -> "kind: detail" for the others
    seconds: float
    num_workers: int = 0
