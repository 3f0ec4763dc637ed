"""Parquet in bounded memory: frames read in batches, written row group by row group, rows sorted through runs.

A stage holds one batch at a time (params.yaml `data.batch_rows` rows). A file written here has the bytes that
pipeline/io.py's write_frame gives the whole frame as long as it has at most `batch_rows` rows (one row group,
the same schema metadata and compression); a larger file has one row group per `batch_rows` rows.
"""

from __future__ import annotations

import heapq
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from common.atomic import atomic_path
from common.errors import UserError
from pipeline.io import COMPRESSION


def open_parquet(path: str | Path) -> pq.ParquetFile:
    """A Parquet file opened for batch reads, or the one-line error read_frame gives."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run the stage that writes it first (dvc repro)")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path} is not a readable Parquet file ({exc}); delete it and re-run dvc repro") from exc


def iter_batches(path: str | Path, batch_rows: int, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The file's rows as Arrow record batches of at most `batch_rows` rows, in file order (none for an empty
    file); `columns` only, when given (a column the file lacks is a one-line error)."""
    source = open_parquet(path)
    try:
        missing = [c for c in columns or [] if c not in source.schema_arrow.names]
        if missing:
            raise UserError(f"{path} lacks columns {missing}; re-run the stage that writes it (dvc repro)")
        yield from source.iter_batches(batch_size=batch_rows, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path} is not a readable Parquet file ({exc}); delete it and re-run dvc repro") from exc
    finally:
        source.close()


def iter_frames(path: str | Path, batch_rows: int, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """The file's rows as DataFrames of at most `batch_rows` rows, in file order (none for an empty file)."""
    for batch in iter_batches(path, batch_rows, columns):
        yield pa.Table.from_batches([batch]).to_pandas()


def empty_frame(path: str | Path) -> pd.DataFrame:
    """The file's columns with no rows, with the dtypes read_frame gives them."""
    return open_parquet(path).schema_arrow.empty_table().to_pandas()


class FrameWriter:
    """Frames of any size in, row groups of `row_group_rows` rows out (the last one shorter)."""

    def __init__(self, path: Path, schema: pa.Schema, row_group_rows: int):
        self.path, self.schema, self.row_group_rows = path, schema, row_group_rows
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._rows: list[dict] = []
        self.dtypes: dict | None = None  # dtypes of the frames add_row builds (default: as pandas infers them)
        self.row_groups = 0
        self.rows = 0

    def add_row(self, row: dict) -> None:
        """One dict row; every `row_group_rows` of them become a DataFrame as pandas builds it from dicts."""
        self._rows.append(row)
        if len(self._rows) >= self.row_group_rows:
            self._write_rows()

    def _write_rows(self) -> None:
        rows, self._rows = self._rows, []
        frame = pd.DataFrame(rows, columns=self.schema.names)
        self.write(frame if self.dtypes is None else frame.astype(self.dtypes))

    def write(self, frame: pd.DataFrame) -> None:
        if not len(frame):
            return
        self._pending.append(pa.Table.from_pandas(frame[self.schema.names], schema=self.schema, preserve_index=False))
        self._pending_rows += len(frame)
        while self._pending_rows >= self.row_group_rows:
            self._flush(self.row_group_rows)

    def _flush(self, rows: int) -> None:
        table = pa.concat_tables(self._pending)
        head, rest = table.slice(0, rows), table.slice(rows)
        self._write_group(head)
        self._pending = [rest] if len(rest) else []
        self._pending_rows = len(rest)

    def _write_group(self, table: pa.Table) -> None:
        # one contiguous chunk per column: the writer's pages then fall where pq.write_table puts them
        table = table.combine_chunks()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema, compression=COMPRESSION)
        self._writer.write_table(table)
        self.row_groups += 1
        self.rows += len(table)

    def finish(self, empty: pd.DataFrame) -> None:
        """Write what is pending; a file that got no rows is written from `empty` as write_frame writes it."""
        if self._rows:
            self._write_rows()
        if self._pending_rows:
            self._flush(self._pending_rows)
        if self._writer is None:
            self._write_group(pa.Table.from_pandas(empty[self.schema.names], schema=self.schema, preserve_index=False))
            self.row_groups -= 1  # an empty file's row group holds no rows
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


@contextmanager
def frame_writer(
    path: str | Path, schema: pa.Schema, row_group_rows: int, empty: Callable[[], pd.DataFrame]
) -> Iterator[FrameWriter]:
    """A FrameWriter on a temporary sibling of `path`, renamed over it only when the block succeeds."""
    with atomic_path(path) as tmp:
        writer = FrameWriter(tmp, schema, row_group_rows)
        try:
            yield writer
            writer.finish(empty())
        finally:
            writer.close()


class RowSorter:
    """Dict rows sorted by `key` in bounded memory: runs of `run_rows` rows are sorted in memory and spilled to
    Parquet files in a temporary folder beside `near`, then merged. Sorting and merging are both stable, so rows
    with equal keys keep their input order (as pandas' stable sort_values)."""

    def __init__(self, schema: pa.Schema, key: Callable[[dict], tuple], run_rows: int, near: str | Path):
        self.schema, self.key, self.run_rows, self.near = schema, key, run_rows, Path(near)
        # the merge reads each run a row group at a time (a Parquet reader decodes whole row groups): small groups
        # keep all runs' read buffers together near one run's rows until there are more than 64 runs
        self.merge_rows = max(16, run_rows // 64)
        self._run: list[dict] = []
        self._folder: Path | None = None
        self.runs: list[Path] = []

    def add(self, row: dict) -> None:
        self._run.append(row)
        if len(self._run) >= self.run_rows:
            self._spill()

    def _spill(self) -> None:
        if self._folder is None:  # a dot-name ending in .tmp: remove_leftovers(near) deletes it after a kill
            self.near.parent.mkdir(parents=True, exist_ok=True)
            prefix = f".{self.near.name}.runs."
            self._folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=self.near.parent))
        run = self._folder / f"{len(self.runs):06d}.parquet"
        table = pa.Table.from_pylist(sorted(self._run, key=self.key), schema=self.schema)
        pq.write_table(table, run, row_group_size=self.merge_rows)
        self.runs.append(run)
        self._run = []

    def _read_run(self, run: Path, batch_rows: int) -> Iterator[dict]:
        for batch in pq.ParquetFile(run).iter_batches(batch_size=batch_rows):
            yield from batch.to_pylist()

    def sorted_rows(self) -> Iterator[dict]:
        """Every row added, in key order; the spilled runs are deleted when the iteration ends."""
        if not self.runs:
            yield from sorted(self._run, key=self.key)
            return
        if self._run:
            self._spill()
        try:
            yield from heapq.merge(*(self._read_run(run, self.merge_rows) for run in self.runs), key=self.key)
        finally:
            self.close()

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
