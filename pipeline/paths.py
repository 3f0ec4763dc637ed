"""Where the data stages read and write (the paths dvc.yaml names as their deps and outs), and params.yaml's `data`
section: which raw folder the pipeline starts from, and the batch the data stages stream in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.params import bounded

PAIRS_PATH = Path("data/clean/pairs.parquet")  # clean -> split
REJECTED_PATH = Path("data/clean/rejected.parquet")
SPLITS_DIR = Path("data/splits")  # split -> segment, features
SEGMENTED_DIR = Path("data/segmented")  # segment -> train, evaluate
FEATURES_DIR = Path("data/features")  # features -> train, evaluate


@dataclass(frozen=True)
class DataParams:
    """params.yaml `data`."""

    raw: str = "data/raw/zol"  # data/raw/zol (sample site + crawl) | data/raw/multizol (the release import)
    # rows the import, clean, split and segment hold at a time, and clean, split and segment write per Parquet row
    # group (docs/scaling.md): a file of at most this many rows is one row group, byte for byte a whole-frame write.
    # features, train and evaluate read their Parquet inputs in batches of this many rows (no output changes)
    batch_rows: int = bounded(8192, 1, None)
