"""Atomic, deterministic writes and friendly reads of the pipeline's files."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from common.errors import UserError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are ordinary readable files
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_table(table: pa.Table, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write a Parquet file atomically; `metadata` is added to the schema's key-value metadata."""
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): v.encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def write_frame(df: pd.DataFrame, path: str | Path, schema: pa.Schema,
                metadata: dict[str, str] | None = None) -> None:
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


def write_json(obj: Any, path: str | Path) -> None:
    """Write JSON atomically (UTF-8, sorted keys, indented) so re-runs write identical bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
