"""Segmented splits + image features -> padded tensor batches for MIMN."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset

from common.errors import UserError
from model.labels import LabelMap
from model.sampler import LengthBucketSampler, ordered_batches
from model.vocab import PAD_ID, Vocab
from pipeline.io import read_frame
from pipeline.schema import FEATURE_DIM, FEATURES_SCHEMA, SEGMENTED_SCHEMA

SEGMENTED_DIR = Path("data/segmented")  # the segment stage's splits: train, dev, test .parquet
FEATURES_PATH = Path("data/features/images.parquet")  # the features stage's image features
SPLIT_COLUMNS = ["review_id", "aspect", "score", "tokens", "aspect_tokens", "image_paths"]
FEATURE_COLUMNS = ["path", "ok", "feature"]


def read_split(path: str | Path) -> pd.DataFrame:
    """A segmented split with the columns the model uses, scores checked, sorted by (review_id, aspect)."""
    path = Path(path)
    if path.is_file():
        names = pq.read_schema(path).names
        missing = [c for c in SPLIT_COLUMNS if c not in names]
        if missing:
            raise UserError(
                f"{path} lacks columns {missing} (expected {SEGMENTED_SCHEMA.names}); re-run dvc repro segment"
            )
    frame = read_frame(path, columns=SPLIT_COLUMNS)
    for column in ("tokens", "aspect_tokens", "image_paths"):
        if frame[column].isna().any():
            first = frame.loc[frame[column].isna(), "review_id"].iloc[0]
            raise UserError(
                f"{path}: column {column} is null in {int(frame[column].isna().sum())} rows "
                f"(first: review {first}); re-run dvc repro segment"
            )
    bad = frame[~frame["score"].between(1, 10)]
    if len(bad):
        raise UserError(
            f"{path}: {len(bad)} rows have a score outside 1..10 (first: review {bad.iloc[0]['review_id']}); "
            "re-run dvc repro clean"
        )
    return frame.sort_values(["review_id", "aspect"], kind="stable").reset_index(drop=True)


@dataclass
class ImageFeatures:
    """Usable (ok) image features by path; the rows of `matrix` are the images of `index`."""

    index: dict[str, int]
    matrix: np.ndarray  # (n_ok, 2048) float32
    unusable: frozenset[str]  # paths the features stage could not read

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]


def read_features(path: str | Path) -> ImageFeatures:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run the features stage first (dvc repro features)")
    names = pq.read_schema(path).names
    missing = [c for c in FEATURE_COLUMNS if c not in names]
    if missing:
        raise UserError(f"{path} lacks columns {missing} (expected {FEATURES_SCHEMA.names}); re-run dvc repro features")
    table = pq.read_table(path, columns=FEATURE_COLUMNS)
    paths = table.column("path").to_pylist()
    ok = np.asarray(table.column("ok").to_pylist(), dtype=bool)
    flat = table.column("feature").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    matrix = (
        np.asarray(flat, dtype=np.float32).reshape(len(paths), -1)
        if len(paths)
        else np.zeros((0, FEATURE_DIM), np.float32)
    )
    ok_paths = [p for p, good in zip(paths, ok, strict=False) if good]
    return ImageFeatures(
        index={p: i for i, p in enumerate(ok_paths)},
        matrix=matrix[ok],
        unusable=frozenset(p for p, good in zip(paths, ok, strict=False) if not good),
    )


def check_feature_coverage(frame: pd.DataFrame, features: ImageFeatures, split_path: str | Path) -> None:
    """Every referenced image must have a row in the features file (ok or not): else the features are stale."""
    referenced = {p for paths in frame["image_paths"] for p in paths}
    absent = sorted(referenced - features.index.keys() - features.unusable)
    if absent:
        raise UserError(
            f"data/features/images.parquet has no row for {len(absent)} image(s) of {split_path} "
            f"(first: {absent[0]}); re-run dvc repro features"
        )


def feature_norm(frame: pd.DataFrame, features: ImageFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean/std of the usable images the training split references (std 1 where constant)."""
    rows = sorted({features.index[p] for paths in frame["image_paths"] for p in paths if p in features.index})
    if not rows:
        return np.zeros(features.dim, np.float32), np.ones(features.dim, np.float32)
    sample = features.matrix[rows].astype(np.float64)
    std = sample.std(axis=0)
    std[std < 1e-6] = 1.0
    return sample.mean(axis=0).astype(np.float32), std.astype(np.float32)


class PairDataset(Dataset):
    """One (review, aspect) pair per item: token ids, aspect ids, image rows (page order, ok only), class."""

    def __init__(
        self,
        frame: pd.DataFrame,
        vocab: Vocab,
        labels: LabelMap,
        features: ImageFeatures,
        mean: np.ndarray,
        std: np.ndarray,
        max_text_len: int,
        max_aspect_len: int,
        max_images: int,
    ) -> None:
        self.text = [torch.from_numpy(vocab.encode(t, max_text_len)) for t in frame["tokens"]]
        self.aspect = [torch.from_numpy(vocab.encode(t, max_aspect_len)) for t in frame["aspect_tokens"]]
        self.image_rows = [
            torch.tensor([features.index[p] for p in paths if p in features.index][:max_images], dtype=torch.long)
            for paths in frame["image_paths"]
        ]
        self.images = torch.from_numpy((features.matrix - mean) / std).float()
        self.targets = torch.from_numpy(labels.scores_to_classes(frame["score"]))
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
        sampler = LengthBucketSampler([len(t) for t in dataset.text], batch_size, seed)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=dataset.collate, num_workers=0)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=dataset.collate, num_workers=0
    )


def eval_loader(dataset: PairDataset, batch_size: int, bucket: bool = True) -> tuple[DataLoader, list[list[int]]]:
    """Batches sorted by length when `bucket` (predictions come back in batch order: use sampler.restore_order)."""
    lengths = [len(t) for t in dataset.text] if bucket else [0] * len(dataset)
    batches = ordered_batches(lengths, batch_size)
    return DataLoader(dataset, batch_sampler=batches, collate_fn=dataset.collate, num_workers=0), batches
