"""Batches of decoded review images for the backbone (DataLoader workers run pipeline.imaging.decode_image);
a bad file becomes an error in the batch, not a crash."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.imaging import ImageError, Preprocessing, decode_image


@dataclass
class DecodedBatch:
    indices: list[int]  # positions in the dataset's file list, in order
    pixels: torch.Tensor  # [n_ok, 3, S, S] for the decodable ones (empty when none)
    ok_indices: list[int]  # the indices whose image is in `pixels`, same order
    errors: dict[int, str]  # index -> "kind: detail" for the others
    sizes: dict[int, tuple[int, int]]  # index -> (width, height) for the decodable ones


class ImageFileDataset(Dataset):
    """Files to featurise, decoded in DataLoader workers; item i is (i, tensor or None, error or None, size)."""

    def __init__(self, files: list[Path], prep: Preprocessing):
        self.files = list(files)
        self.prep = prep

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        try:
            array, size = decode_image(self.files[index], self.prep)
        except ImageError as exc:
            return index, None, str(exc), None
        return index, torch.from_numpy(array), None, size


def collate_decoded(items: list) -> DecodedBatch:
    ok = [(i, t, s) for i, t, _, s in items if t is not None]
    pixels = torch.stack([t for _, t, _ in ok]) if ok else torch.empty(0)
    return DecodedBatch(
        indices=[i for i, *_ in items],
        pixels=pixels,
        ok_indices=[i for i, _, _ in ok],
        errors={i: e for i, t, e, _ in items if t is None},
        sizes={i: s for i, _, s in ok},
    )


def fixed_batches(count: int, batch_size: int) -> list[list[int]]:
    """Indices 0..count-1 in order, cut into batches of `batch_size` (the last one may be shorter)."""
    return [list(range(start, min(start + batch_size, count))) for start in range(0, count, batch_size)]


def make_loader(
    files: list[Path], prep: Preprocessing, batches: list[list[int]], num_workers: int, pin_memory: bool = False
) -> DataLoader:
    """The given batches of `files`, in order, decoded by `num_workers` processes (0 = in this process).

    The batches are explicit so that a shard of the work forms exactly the batches the whole run forms:
    a batch's composition can change the last bits of its features (pipeline/features.py, sharding)."""
    return DataLoader(
        ImageFileDataset(files, prep),
        batch_sampler=batches,
        num_workers=num_workers,
        collate_fn=collate_decoded,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if num_workers > 0 else None,
    )
