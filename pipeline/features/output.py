"""data/features/images.parquet: one row per distinct image path of the splits, with the metadata and the counts of
the run; and reading it back (helpers for users and tests; model/data.py has the model's own loader)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torchvision

from common.errors import UserError
from pipeline.backbone import BACKBONE
from pipeline.features.cache import feature_matrix, features_array
from pipeline.features.plan import Computed, ImagePlan
from pipeline.imaging import Preprocessing, error_kind
from pipeline.schema import FEATURE_DIM, FEATURES_SCHEMA


def build_features_table(
    paths: list[str], ids: dict[str, str], errors: dict[str, str], features: dict[str, np.ndarray]
) -> pa.Table:
    """Rows in `paths` order (sorted); ok exactly when a feature is known and no error was recorded."""
    matrix = np.zeros((len(paths), FEATURE_DIM), dtype=np.float32)
    ok = []
    for row, path in enumerate(paths):
        image_id = ids.get(path)
        good = path not in errors and image_id in features
        if good:
            matrix[row] = features[image_id]
        ok.append(good)
    return pa.Table.from_arrays(
        [
            pa.array([ids.get(p) for p in paths], pa.string()),
            pa.array(paths, pa.string()),
            pa.array(ok, pa.bool_()),
            pa.array([errors.get(p) for p in paths], pa.string()),
            features_array(matrix),
        ],
        schema=FEATURES_SCHEMA,
    )


def output_metadata(weights: str, prep: Preprocessing, precision: str, fingerprint: str) -> dict[str, str]:
    return {
        "backbone": BACKBONE,
        "weights": weights,
        "preprocessing": json.dumps(prep.describe(), sort_keys=True),
        "precision": precision,
        "fingerprint": fingerprint,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }


def features_metrics(
    plan: ImagePlan,
    table: pa.Table,
    errors: dict[str, str],
    reused: list[str],
    computed: Computed,
    device: torch.device,
    precision: str,
    weights: str,
    fingerprint: str,
) -> dict:
    ok = sum(table["ok"].to_pylist())
    n_computed = len(computed.features)
    return {
        "images_total": len(plan.paths),
        "images_ok": ok,
        "images_failed": len(plan.paths) - ok,
        "failed_by_error": dict(sorted(Counter(error_kind(errors[p]) for p in plan.paths if p in errors).items())),
        "empty_path_entries": plan.empty_entries,
        "unique_contents": len(plan.representative),
        "reused_from_cache": len(reused),
        "computed": n_computed,
        "decode_failed": len(computed.errors),
        "device": str(device),
        "precision": precision,
        "weights": weights,
        "fingerprint": fingerprint,
    }


def read_features(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(paths, features float32 [n, 2048], ok bool [n]) of data/features/images.parquet, in file order."""
    frame_path = Path(path)
    if not frame_path.is_file():
        raise UserError(f"{frame_path} not found: run the features stage first (dvc repro features)")
    try:
        table = pq.read_table(frame_path, columns=["path", "ok", "feature"])
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{frame_path} is not a readable features file ({exc}); re-run dvc repro features") from exc
    return (
        table["path"].to_pylist(),
        feature_matrix(table["feature"]),
        np.asarray(table["ok"].to_pylist(), dtype=bool),
    )


def load_features(path: str | Path) -> dict[str, np.ndarray]:
    """path -> 2048-d float32 feature, for the usable images only (a path absent here must be masked)."""
    paths, matrix, ok = read_features(path)
    return {p: matrix[i] for i, p in enumerate(paths) if ok[i]}


def features_metadata(path: str | Path) -> dict[str, str]:
    """The key-value metadata of a features file: backbone, weights, preprocessing, precision, versions."""
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if not k.startswith(b"ARROW:")}
