"""Several processes or machines: the images still to compute cut into shards (batch k to shard k mod n), each
shard's rows in a file of its own, merged into the cache by the next run without --shard."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from common.errors import UserError
from pipeline.features.cache import read_cache_table
from pipeline.image_data import fixed_batches


def shard_path(shard_dir: Path, shard: tuple[int, int]) -> Path:
    return shard_dir / f"shard-{shard[0]:04d}-of-{shard[1]:04d}.parquet"


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    index, _, total = text.partition("/")
    try:
        shard = int(index), int(total)
    except ValueError:
        shard = (-1, 0)
    if not 0 <= shard[0] < shard[1]:
        raise UserError(f"--shard must be i/n with 0 <= i < n (e.g. 0/2), got {text!r}")
    return shard


def merge_shards(cache: pa.Table, shard_dir: Path) -> tuple[pa.Table, int, list[Path]]:
    """The cache plus the rows of every shard file under shard_dir that it lacks; (table, rows added, files)."""
    files = sorted(shard_dir.glob("shard-*-of-*.parquet")) if shard_dir.is_dir() else []
    if not files:
        return cache, 0, []
    combined = pa.concat_tables([cache, *(read_cache_table(f)[0] for f in files)])
    seen: set[tuple[str, str]] = set()
    keep = []
    for row, key in enumerate(zip(combined["fingerprint"].to_pylist(), combined["image_id"].to_pylist(), strict=False)):
        if key not in seen:  # first occurrence: the cache's own row wins over a shard's
            seen.add(key)
            keep.append(row)
    return combined.take(pa.array(keep, pa.int64())), len(keep) - cache.num_rows, files


def shard_batches(count: int, batch_size: int, shard: tuple[int, int] | None) -> list[list[int]]:
    """The batches of the `count` contents to compute that belong to `shard` (i, n): batch k goes to shard
    k mod n. Whole batches, cut as the unsharded run cuts them, so each feature comes out of the same batch
    (the same bits) in a sharded and in a single-process run."""
    batches = fixed_batches(count, batch_size)
    if shard is None:
        return batches
    index, total = shard
    return batches[index::total]
