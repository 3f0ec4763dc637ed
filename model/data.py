"""Segmented splits + image features -> padded tensor batches for MIMN.

The image features file is read in batches, the rows of the images the stage's splits reference only; a dataset
holds the pairs' ids (model/pairs.py) and the standardised features of the images they read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset

from common.errors import UserError
from model.labels import LabelMap
from model.pairs import EncodedPairs
from model.sampler import LengthBucketSampler, ordered_batches
from model.vocab import PAD_ID
from pipeline.paths import DataParams
from pipeline.schema import FEATURE_DIM, FEATURES_SCHEMA
from pipeline.stream import iter_batches, open_parquet

SEGMENTED_DIR = Path("data/segmented")  # the segment stage's splits: train, dev, test .parquet
FEATURES_PATH = Path("data/features/images.parquet")  # the features stage's image features
FEATURE_COLUMNS = ["path", "ok", "feature"]
NORM_ROWS = 1024  # feature rows the standardisation statistics take at a time


@dataclass
class ImageFeatures:
    """Usable (ok) image features by path; the rows of `matrix` are the images of `index`."""

    index: dict[str, int]
    matrix: np.ndarray  # (n_ok, 2048) float32
    unusable: frozenset[str]  # paths the features stage could not read
    unread: frozenset[str] = frozenset()  # usable paths asked for whose features were not kept (not `keep`)

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def without_features(self, dim: int) -> ImageFeatures:
        """The same paths with no feature rows (text-only data: every visual memory is masked)."""
        return dataclasses.replace(self, matrix=np.zeros((0, dim), np.float32))


def read_features(
    path: str | Path,
    batch_rows: int = DataParams.batch_rows,
    wanted: set[str] | None = None,
    keep: set[str] | None = None,
) -> ImageFeatures:
    """The features file read `batch_rows` rows at a time: every row, or only those of the `wanted` paths; the
    features of the usable ones among `keep` (default: all of them) in `matrix`, in file order. Two passes: the
    paths first, then the features straight into a matrix of the rows kept (no copy of the whole)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run the features stage first (dvc repro features)")
    missing = [c for c in FEATURE_COLUMNS if c not in open_parquet(path).schema_arrow.names]
    if missing:
        raise UserError(f"{path} lacks columns {missing} (expected {FEATURES_SCHEMA.names}); re-run dvc repro features")
    keep = wanted if keep is None else keep
    index: dict[str, int] = {}
    kept: list[int] = []  # file rows of the index's paths
    unusable, unread = set(), set()
    start = 0
    for batch in iter_batches(path, batch_rows, ["path", "ok"]):
        images, usable = batch.column("path").to_pylist(), batch.column("ok").to_pylist()
        for row, (image, ok) in enumerate(zip(images, usable, strict=True), start=start):
            if wanted is not None and image not in wanted:
                continue
            if not ok:
                unusable.add(image)
            elif keep is None or image in keep:
                index[image] = len(index)
                kept.append(row)
            else:
                unread.add(image)
        start += batch.num_rows
    matrix = feature_rows(path, batch_rows, np.asarray(kept, dtype=np.int64))
    return ImageFeatures(index, matrix, frozenset(unusable), frozenset(unread))


def feature_rows(path: Path, batch_rows: int, rows: np.ndarray) -> np.ndarray:
    """float32 [len(rows), width]: the features of these file rows (ascending), batch by batch."""
    matrix, start, filled = None, 0, 0
    for batch in iter_batches(path, batch_rows, ["feature"]):
        column = batch.column("feature")
        if not batch.num_rows:
            continue
        if column.null_count:
            raise UserError(f"{path} has a null feature; the file is damaged: delete it and re-run dvc repro features")
        values = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
        width = len(values) // batch.num_rows
        if matrix is None:
            matrix = np.empty((len(rows), width), np.float32)
        low, high = np.searchsorted(rows, [start, start + batch.num_rows])
        np.take(
            values.reshape(batch.num_rows, width),
            rows[low:high] - start,
            axis=0,
            out=matrix[filled : filled + high - low],
        )
        filled += high - low
        start += batch.num_rows
    return matrix if matrix is not None else np.zeros((0, FEATURE_DIM), np.float32)


def check_feature_coverage(referenced: set[str], features: ImageFeatures, split_path: str | Path) -> None:
    """Every referenced image must have a row in the features file (ok or not): else the features are stale."""
    absent = sorted(referenced - features.index.keys() - features.unusable - features.unread)
    if absent:
        raise UserError(
            f"data/features/images.parquet has no row for {len(absent)} image(s) of {split_path} "
            f"(first: {absent[0]}); re-run dvc repro features"
        )


def feature_norm(referenced: set[str], features: ImageFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean/std of the usable images the training split references (std 1 where constant)."""
    rows = np.asarray(sorted({features.index[p] for p in referenced if p in features.index}), dtype=np.int64)
    if not len(rows):
        return np.zeros(features.dim, np.float32), np.ones(features.dim, np.float32)
    mean = column_sum(features.matrix, rows) / len(rows)
    std = np.sqrt(column_sum(features.matrix, rows, centre=mean) / len(rows))[0]
    std[std < 1e-6] = 1.0
    return mean[0].astype(np.float32), std.astype(np.float32)


def column_sum(matrix: np.ndarray, rows: np.ndarray, centre: np.ndarray | None = None) -> np.ndarray:
    """(1, width) float64: the sum of matrix[rows] (minus `centre`, squared, when given), NORM_ROWS rows at a time.
    NumPy sums a whole float64 copy over axis 0 row after row; prepending the running sum to each block keeps that
    order, so mean and std are those of the whole copy, bit for bit, without the copy."""
    total = None
    for start in range(0, len(rows), NORM_ROWS):
        block = matrix[rows[start : start + NORM_ROWS]].astype(np.float64)
        if centre is not None:
            block -= centre
            block *= block
        total = np.add.reduce(block if total is None else np.concatenate([total, block]), axis=0, keepdims=True)
    return total


def standardised(features: ImageFeatures, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """(matrix - mean) / std as float32, the datasets' image table (the matrix is standardised in place)."""
    matrix = features.matrix
    np.subtract(matrix, mean, out=matrix)
    np.divide(matrix, std, out=matrix)
    return torch.from_numpy(matrix).float()


class PairDataset(Dataset):
    """One (review, aspect) pair per item: token ids, aspect ids, image rows (page order, ok only), class."""

    def __init__(self, pairs: EncodedPairs, labels: LabelMap, images: torch.Tensor) -> None:
        self.keys = pairs.keys
        self.text, self.aspect, self.image_rows = pairs.text, pairs.aspect, pairs.image_rows
        self.images = images  # standardised features; image_rows index its rows
        self.targets = torch.from_numpy(labels.scores_to_classes(pairs.keys.scores))
        self.wide_logits: torch.Tensor | None = None  # (N, classes): passed to the model as wide_logits when set

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> int:
        return i

    def collate(self, indices: list[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(model inputs padded to this batch's longest item, targets)."""
        inputs = batch_inputs(
            [self.text[i] for i in indices],
            [self.aspect[i] for i in indices],
            [self.images[self.image_rows[i]] for i in indices],
            self.images.shape[1],
        )
        if self.wide_logits is not None:
            inputs["wide_logits"] = self.wide_logits[indices]
        return inputs, self.targets[indices]


def pad(sequences: list[torch.Tensor], min_len: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    width = max(int(lengths.max()) if len(lengths) else 0, min_len)
    out = torch.full((len(sequences), width, *sequences[0].shape[1:]), PAD_ID, dtype=sequences[0].dtype)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = seq
    return out, lengths


def batch_inputs(
    text: list[torch.Tensor], aspect: list[torch.Tensor], images: list[torch.Tensor], image_dim: int
) -> dict[str, torch.Tensor]:
    text_ids, text_lengths = pad(text)
    aspect_ids, aspect_lengths = pad(aspect)
    images = [im if len(im) else torch.zeros((0, image_dim)) for im in images]
    image_feats, image_lengths = pad(images)
    return {
        "text_ids": text_ids,
        "text_lengths": text_lengths,
        "aspect_ids": aspect_ids,
        "aspect_lengths": aspect_lengths,
        "images": image_feats,
        "image_lengths": image_lengths,
    }


FEATURES_RECORD_KEYS = ("backbone", "weights", "preprocessing", "precision", "fingerprint")


def features_record(path: str | Path) -> dict[str, str]:
    """What produced a features file (its Parquet metadata: backbone, weights, preprocessing, precision,
    fingerprint), for the checkpoint: prediction must compute new images' features the same way."""
    path = Path(path)
    if not path.is_file():
        return {}
    metadata = pq.read_schema(path).metadata or {}
    return {key: metadata[key.encode()].decode() for key in FEATURES_RECORD_KEYS if key.encode() in metadata}


def make_loader(dataset: PairDataset, batch_size: int, shuffle: bool, seed: int, bucket: bool = True) -> DataLoader:
    """Training (shuffle=True): length-bucketed batches in a seeded order, or plain seeded shuffling.
    Evaluation (shuffle=False): batches in the data's order (see eval_loader for sorted ones)."""
    if shuffle and bucket:
        sampler = LengthBucketSampler(dataset.text.lengths(), batch_size, seed)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=dataset.collate, num_workers=0)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=dataset.collate, num_workers=0
    )


def eval_loader(dataset: PairDataset, batch_size: int, bucket: bool = True) -> tuple[DataLoader, list[list[int]]]:
    """Batches sorted by length when `bucket` (predictions come back in batch order: use sampler.restore_order)."""
    lengths = dataset.text.lengths() if bucket else [0] * len(dataset)
    batches = ordered_batches(lengths, batch_size)
    return DataLoader(dataset, batch_sampler=batches, collate_fn=dataset.collate, num_workers=0), batches
