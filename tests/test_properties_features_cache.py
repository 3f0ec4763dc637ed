"""Property: any features cache table is read as its valid rows, the rest counted; a kept row is never paired
with another row's feature, and never a traceback (Hypothesis, the project's deterministic profile)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st

from pipeline.features.cache import cache_index, feature_matrix, read_cache_table
from pipeline.schema import FEATURE_DIM

BAD_VALUES = [float("nan"), float("inf"), float("-inf"), None]
# a row: (fingerprint, width, height, feature kind, position and value of an odd entry)
row = st.tuples(
    st.sampled_from(["fp", None]),
    st.sampled_from([10, 0, -3, None]),
    st.sampled_from([7, None]),
    st.sampled_from(["ok", "ok", "null", "odd_value", "short", "long", "empty"]),
    st.integers(0, FEATURE_DIM - 1),
    st.sampled_from(BAD_VALUES),
)


def _feature(index: int, kind: str, position: int, value: float | None) -> list | None:
    base = [float(index)] * FEATURE_DIM  # row i's feature is all i: a shifted row would show it
    if kind == "null":
        return None
    if kind == "odd_value":
        base[position] = value
    return {"short": base[:3], "long": base + [1.0], "empty": []}.get(kind, base)


def _is_valid(fingerprint, width, height, feature) -> bool:
    return (
        fingerprint is not None
        and width is not None
        and height is not None
        and width > 0
        and height > 0
        and feature is not None
        and len(feature) == FEATURE_DIM
        and all(v is not None and math.isfinite(v) for v in feature)
    )


@given(st.lists(row, max_size=8), st.booleans())
def test_any_cache_table_keeps_exactly_its_valid_rows(rows, fixed_width):
    features = [_feature(i, kind, position, value) for i, (_, _, _, kind, position, value) in enumerate(rows)]
    fixed_width = fixed_width and all(f is None or len(f) == FEATURE_DIM for f in features)
    feature_type = pa.list_(pa.float32(), FEATURE_DIM) if fixed_width else pa.list_(pa.float32())
    table = pa.table(
        {
            "fingerprint": pa.array([r[0] for r in rows], pa.string()),
            "image_id": pa.array([f"id{i}" for i in range(len(rows))], pa.string()),
            "width": pa.array([r[1] for r in rows], pa.int32()),
            "height": pa.array([r[2] for r in rows], pa.int32()),
            "feature": pa.array(features, feature_type),
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cache.parquet"
        pq.write_table(table, path)
        kept, dropped = read_cache_table(path)
        assert [p.name for p in Path(folder).iterdir()] == ["cache.parquet"]
    valid = [i for i, (r, f) in enumerate(zip(rows, features, strict=False)) if _is_valid(r[0], r[1], r[2], f)]
    assert kept["image_id"].to_pylist() == [f"id{i}" for i in valid] and dropped == len(rows) - len(valid)
    matrix = feature_matrix(kept["feature"])
    assert matrix.shape == (len(valid), FEATURE_DIM)
    for position, index in enumerate(valid):  # each kept id still carries its own feature
        assert np.all(matrix[position] == float(index))
    assert set(cache_index(kept, "fp")) == {f"id{i}" for i in valid}
