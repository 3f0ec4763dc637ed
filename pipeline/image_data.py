"""Batches of decoded review images for the backbone; a bad file becomes an error in the batch, not a crash.

Images are decoded (pipeline.imaging.decode_pixels) to uint8 HWC pixels, stacked into a uint8 NHWC batch and
normalised in one pass, as a float NCHW tensor with channels-last strides (what oneDNN's convolutions read), by
`model_input`. Two ways to decode: threads of this process, a few batches ahead of the backbone (PIL releases
the GIL while it decodes and resizes, the backbone while it computes, so the two overlap: the CPU default), or
DataLoader worker processes (a GPU box, where the cores are otherwise idle).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.imaging import IMAGENET_MEAN, IMAGENET_STD, ImageError, Preprocessing, decode_pixels

# batches decoded ahead of the one the backbone computes: enough to keep the decode threads busy during a
# forward pass, few enough that memory stays a few batches of uint8 pixels
LOOKAHEAD_BATCHES = 2


@dataclass
class DecodedBatch:
    indices: list[int]  # positions in the file list, in order
    pixels: torch.Tensor  # uint8 [n_ok, S, S, 3] for the decodable ones (empty when none)
    ok_indices: list[int]  # the indices whose image is in `pixels`, same order
    errors: dict[int, str]  # index -> "kind: detail" for the others
    sizes: dict[int, tuple[int, int]]  # index -> (width, height) for the decodable ones


def decode_item(index: int, path: Path, prep: Preprocessing) -> tuple:
    """(index, uint8 HWC tensor or None, error or None, (width, height) or None)."""
    try:
        pixels, size = decode_pixels(path, prep)
    except ImageError as exc:
        return index, None, str(exc), None
    return index, torch.from_numpy(pixels), None, size


class ImageFileDataset(Dataset):
    """Files to featurise, decoded in DataLoader workers; item i is decode_item(i, ...)."""

    def __init__(self, files: list[Path], prep: Preprocessing):
        self.files = list(files)
        self.prep = prep

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        return decode_item(index, self.files[index], self.prep)


def collate_decoded(items: list) -> DecodedBatch:
    ok = [(i, t, s) for i, t, _, s in items if t is not None]
    pixels = torch.stack([t for _, t, _ in ok]) if ok else torch.empty(0, dtype=torch.uint8)
    return DecodedBatch(
        indices=[i for i, *_ in items],
        pixels=pixels,
        ok_indices=[i for i, _, _ in ok],
        errors={i: e for i, t, e, _ in items if t is None},
        sizes={i: s for i, _, s in ok},
    )


def model_input(pixels: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 NHWC pixels -> float32 NCHW on `device`, scaled and ImageNet-normalised, channels-last strides.

    The permute is a view (NHWC memory is NCHW channels-last), the uint8 copy is what crosses to a GPU (a
    quarter of float32), and the normalisation (x - 255 mean) / (255 std) is one pass in place."""
    image = pixels.to(device, non_blocking=True).permute(0, 3, 1, 2).to(torch.float32)
    mean = torch.tensor(IMAGENET_MEAN, device=device).mul_(255.0).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).mul_(255.0).view(1, 3, 1, 1)
    return image.sub_(mean).div_(std)


def fixed_batches(count: int, batch_size: int) -> list[list[int]]:
    """Indices 0..count-1 in order, cut into batches of `batch_size` (the last one may be shorter)."""
    return [list(range(start, min(start + batch_size, count))) for start in range(0, count, batch_size)]


def threaded_batches(
    files: list[Path], prep: Preprocessing, batches: Iterable[list[int]], threads: int
) -> Iterator[DecodedBatch]:
    """The given batches of `files`, in order, decoded by `threads` threads of this process while the caller
    works on the batch before (LOOKAHEAD_BATCHES ahead)."""
    pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="decode")
    pending: deque[list[Future]] = deque()
    remaining = iter(batches)

    def submit_next() -> None:
        batch = next(remaining, None)
        if batch is not None:
            pending.append([pool.submit(decode_item, index, files[index], prep) for index in batch])

    try:
        for _ in range(LOOKAHEAD_BATCHES):
            submit_next()
        while pending:
            futures = pending.popleft()
            submit_next()
            yield collate_decoded([future.result() for future in futures])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def make_loader(
    files: list[Path],
    prep: Preprocessing,
    batches: list[list[int]],
    num_workers: int,
    pin_memory: bool = False,
    decode_threads: int = 1,
) -> Iterable[DecodedBatch]:
    """The given batches of `files`, in order: decoded by `num_workers` processes, or with 0 by `decode_threads`
    threads of this process.

    The batches are explicit so that a shard of the work forms exactly the batches the whole run forms:
    a batch's composition can change the last bits of its features (pipeline/features/shards.py)."""
    if num_workers == 0:
        return threaded_batches(files, prep, batches, decode_threads)
    return DataLoader(
        ImageFileDataset(files, prep),
        batch_sampler=batches,
        num_workers=num_workers,
        collate_fn=collate_decoded,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4,
    )
