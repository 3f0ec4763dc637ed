"""data/features/cache.parquet: features by (file content, configuration), kept across runs (DVC persist: true) so
that a re-run computes only new contents; a row that is not valid is dropped on reading (its image is computed
again)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.errors import UserError
from pipeline.backbone import BACKBONE
from pipeline.features.plan import Computed, ImagePlan
from pipeline.imaging import TOO_LARGE, Preprocessing
from pipeline.io import write_table
from pipeline.schema import FEATURE_DIM

# one row per (configuration, content)
CACHE_SCHEMA = pa.schema(
    [
        ("fingerprint", pa.string()),  # config_fingerprint(): backbone, weights, preprocessing, precision
        ("image_id", pa.string()),
        ("width", pa.int32()),  # from the header, so a lowered max_image_pixels still refuses it
        ("height", pa.int32()),
        ("feature", pa.list_(pa.float32(), FEATURE_DIM)),
    ]
)


def config_fingerprint(weights: str, prep: Preprocessing, precision: str) -> str:
    """Cache key part: everything that changes the feature values of a given file content."""
    spec = {"backbone": BACKBONE, "weights": weights, "preprocessing": prep.describe(), "precision": precision}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def features_array(matrix: np.ndarray) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, FEATURE_DIM)


def feature_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed_size_list<float32>[2048] column -> float32 array [rows, 2048], one row per entry of `column`."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    values = column.flatten()  # skips null entries: the rows after one would belong to other images
    if column.null_count or len(values) != len(column) * FEATURE_DIM:
        raise UserError(
            f"a feature column holds {column.null_count} null entries among {len(column)} rows: the file "
            f"is damaged; delete it and re-run dvc repro features"
        )
    return values.to_numpy(zero_copy_only=False).reshape(-1, FEATURE_DIM).astype(np.float32, copy=False)


def read_cache_table(path: Path) -> tuple[pa.Table, int]:
    """(a cache or shard file's valid rows as CACHE_SCHEMA, how many invalid rows were dropped, with a warning).

    Empty when absent, with a warning when unreadable; the images of dropped rows are computed again."""
    if not path.is_file():
        return CACHE_SCHEMA.empty_table(), 0
    try:
        table = pq.read_table(path).select(CACHE_SCHEMA.names)
        valid = table.filter(valid_cache_rows(table)).cast(CACHE_SCHEMA)
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        print(f"warning: {path} is unreadable ({exc}); ignoring it, its images are computed again", file=sys.stderr)
        return CACHE_SCHEMA.empty_table(), 0
    dropped = table.num_rows - valid.num_rows
    if dropped:
        print(
            f"warning: {path}: dropped {dropped} of {table.num_rows} rows with a null, a non-finite value, a "
            f"size <= 0 or a feature not {FEATURE_DIM} wide; their images are computed again",
            file=sys.stderr,
        )
    return valid, dropped


def valid_cache_rows(table: pa.Table) -> pa.BooleanArray:
    """Per row: every field set, width and height > 0, a feature of FEATURE_DIM finite numbers.

    A null feature must not reach feature_matrix (flatten() skips it and every later row would shift)."""
    ok = np.ones(table.num_rows, dtype=bool)
    for name in ("fingerprint", "image_id", "width", "height", "feature"):
        ok &= table[name].is_valid().to_numpy(zero_copy_only=False)
    for name in ("width", "height"):
        ok &= pc.fill_null(pc.greater(table[name], 0), False).to_numpy(zero_copy_only=False)
    feature = table["feature"].combine_chunks()
    ok &= pc.fill_null(pc.list_value_length(feature), -1).to_numpy(zero_copy_only=False) == FEATURE_DIM
    values = pc.cast(pc.list_flatten(feature), pa.float64())
    bad_value = pc.invert(pc.fill_null(pc.is_finite(values), False)).to_numpy(zero_copy_only=False)
    ok[pc.list_parent_indices(feature).to_numpy(zero_copy_only=False)[bad_value]] = False
    return pa.array(ok)


def cache_index(table: pa.Table, fingerprint: str) -> dict[str, tuple[int, int, int]]:
    """image_id -> (row, width, height) of the rows computed with this configuration."""
    return {
        image_id: (row, w, h)
        for row, (fp, image_id, w, h) in enumerate(
            zip(
                table["fingerprint"].to_pylist(),
                table["image_id"].to_pylist(),
                table["width"].to_pylist(),
                table["height"].to_pylist(),
                strict=False,
            )
        )
        if fp == fingerprint
    }


def reuse_cached(
    plan: ImagePlan, cache_table: pa.Table, cached: dict[str, tuple[int, int, int]], prep: Preprocessing
) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """(features, errors by content id, reused content ids) of the contents already in the cache.

    A cached image above today's max_image_pixels is refused as the decoder would refuse it."""
    reused = [i for i in plan.representative if i in cached]
    matrix = feature_matrix(cache_table["feature"].take(pa.array([cached[i][0] for i in reused], pa.int64())))
    features: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    for image_id, vector in zip(reused, matrix, strict=False):
        width, height = cached[image_id][1:]
        if width * height > prep.max_image_pixels:
            errors[image_id] = f"{TOO_LARGE}: {width}x{height} pixels > max_image_pixels {prep.max_image_pixels}"
        else:
            features[image_id] = vector
    return features, errors, reused


def new_cache_rows(fingerprint: str, computed: Computed) -> pa.Table:
    """The computed features as cache rows, sorted by image_id."""
    image_ids = sorted(computed.features)
    sizes = [computed.sizes[i] for i in image_ids]
    matrix = (
        np.stack([computed.features[i] for i in image_ids]) if image_ids else np.zeros((0, FEATURE_DIM), np.float32)
    )
    return pa.Table.from_arrays(
        [
            pa.array([fingerprint] * len(image_ids), pa.string()),
            pa.array(image_ids, pa.string()),
            pa.array([w for w, _ in sizes], pa.int32()),
            pa.array([h for _, h in sizes], pa.int32()),
            features_array(matrix),
        ],
        schema=CACHE_SCHEMA,
    )


def write_cache(path: Path, old: pa.Table, fingerprint: str, computed: Computed) -> None:
    """Old entries plus the new ones, sorted by (fingerprint, image_id) so the bytes are reproducible.

    Always written, even with nothing new: DVC expects every declared output to exist."""
    merged = pa.concat_tables([old, new_cache_rows(fingerprint, computed)]).combine_chunks()
    merged = merged.sort_by([("fingerprint", "ascending"), ("image_id", "ascending")])
    write_table(merged, path)
