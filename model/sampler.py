"""Length-bucketed batches: pairs of similar length share a batch, so little time goes to padding.

Real reviews are long-tailed (median ~50 tokens, a few hundred at the cap): a random batch of 128 nearly
always holds one text at the cap, and every other row is padded to it. Training batches here are drawn as
the paper's random batches would be, but grouped by length: each epoch the pairs are shuffled, cut into
pools of `pool_batches` batches, each pool is sorted by length and cut into batches, and the batches are
shuffled. All randomness comes from one seeded generator, so the same seed gives the same batches in
every run. Evaluation batches are simply the pairs sorted by length (`ordered_batches`), and callers put
the predictions back in the data's order with `restore_order`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


class LengthBucketSampler(Sampler[list[int]]):
    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, pool_batches: int = 50) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = torch.as_tensor(np.asarray(lengths, dtype=np.int64))
        self.batch_size = batch_size
        self.pool = batch_size * max(pool_batches, 1)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size) if len(self.lengths) else 0

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.lengths), generator=self.generator)
        batches: list[list[int]] = []
        for start in range(0, len(order), self.pool):
            pool = order[start : start + self.pool]
            # stable sort: ties keep their shuffled order, so equal lengths still mix
            pool = pool[torch.sort(self.lengths[pool], stable=True).indices]
            batches.extend(pool[i : i + self.batch_size].tolist() for i in range(0, len(pool), self.batch_size))
        for i in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[i]


def ordered_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches of pairs sorted by length (ties by position): deterministic, for evaluation."""
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable").tolist()
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def restore_order(rows: np.ndarray, batches: list[list[int]]) -> np.ndarray:
    """Rows produced batch by batch (in `batches` order) -> rows in the data's own order."""
    positions = np.asarray([i for batch in batches for i in batch], dtype=np.int64)
    out = np.empty_like(rows)
    out[positions] = rows
    return out
