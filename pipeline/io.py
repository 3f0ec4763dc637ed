"""Parquet files of the pipeline: atomic, deterministic writes (common.atomic) and friendly reads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from common.atomic import atomic_path
from common.errors import UserError

COMPRESSION = "zstd"


def write_table(table: pa.Table, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write a Parquet file atomically; `metadata` is added to the schema's key-value metadata."""
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): v.encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=COMPRESSION)


def write_frame(df: pd.DataFrame, path: str | Path, schema: pa.Schema, metadata: dict[str, str] | None = None) -> None:
    """Write a DataFrame with an explicit schema (column order and types), atomically."""
    table = pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
    write_table(table, path, metadata)


def read_frame(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file, or fail with a message naming the file and what to run."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run the stage that writes it first (dvc repro)")
    try:
        return pq.read_table(path, columns=columns).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path} is not a readable Parquet file ({exc}); delete it and re-run dvc repro") from exc
