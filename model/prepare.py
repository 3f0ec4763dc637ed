"""What every training run of the train stage starts from: the splits and image features read and checked, the
vocabulary, label map, feature standardisation and datasets built, and (model.word_evidence) the linear baseline
fitted as the wide path's tables."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from common.errors import UserError
from model.config import MIMNConfig
from model.data import (
    FEATURES_PATH,
    SEGMENTED_DIR,
    ImageFeatures,
    PairDataset,
    check_feature_coverage,
    feature_norm,
    read_features,
    read_split,
)
from model.labels import LabelMap
from model.linear import fit_linear, out_of_fold_logits
from model.provenance import aspect_pair_counts
from model.settings import Settings
from model.vocab import Vocab, build_vocab
from model.word_evidence import linear_tables


@dataclass
class Prepared:
    vocab: Vocab
    labels: LabelMap
    config: MIMNConfig
    mean: np.ndarray
    std: np.ndarray
    frames: dict[str, pd.DataFrame]
    datasets: dict[str, PairDataset]
    corpus: list[list[str]]
    class_counts: list[int]
    wide: dict | None = None  # the wide path's tables from the fitted linear baseline (model.word_evidence)
    linear: dict | None = None  # that baseline (LinearModel.to_checkpoint): evaluate reports it without refitting
    data_source: str = "unknown"  # sample | crawl | multizol | unknown (model.provenance)


def read_frames() -> tuple[dict[str, pd.DataFrame], ImageFeatures]:
    """The segmented splits (test only when present: its aspect tokens join the vocabulary) and the features,
    every pair's images checked against them."""
    split_paths = {s: SEGMENTED_DIR / f"{s}.parquet" for s in ("train", "dev", "test")}
    frames = {s: read_split(p) for s, p in split_paths.items() if s != "test" or p.is_file()}
    if frames["train"].empty or frames["dev"].empty:
        raise UserError(f"{split_paths['train']} or {split_paths['dev']} has no rows; check the split stage's output")
    features = read_features(FEATURES_PATH)
    for split, frame in frames.items():
        check_feature_coverage(frame, features, split_paths[split])
    return frames, features


def prepare(settings: Settings) -> Prepared:
    """Read the splits and features; build vocabulary, label map, feature normalisation and datasets."""
    frames, features = read_frames()
    train = frames["train"]
    # a review's text repeats once per scored aspect: count words and train word vectors on each text once.
    # Only training text: dev and test text never shapes the vocabulary or the vectors.
    corpus = list(train.drop_duplicates("review_id")["tokens"]) + list(train["aspect_tokens"])
    vocab = build_vocab(
        corpus, [t for f in frames.values() for t in f["aspect_tokens"]], min_count=settings.train.min_word_count
    )
    labels = LabelMap.for_classes(settings.train.classes)
    config = MIMNConfig.from_params(
        dataclasses.asdict(settings.model), vocab_size=len(vocab), num_classes=labels.num_classes
    )
    if features.dim != config.image_dim and len(features.matrix):
        raise UserError(
            f"{FEATURES_PATH} holds {features.dim}-d features but model.image_dim is {config.image_dim}; "
            "set model.image_dim to match or re-run dvc repro features"
        )
    if not len(features.matrix):  # text-only data: an empty features file; every visual memory is masked
        features = ImageFeatures(features.index, np.zeros((0, config.image_dim), np.float32), features.unusable)
    mean, std = feature_norm(train, features)
    datasets = {
        s: PairDataset(
            f, vocab, labels, features, mean, std, config.max_text_len, config.max_aspect_len, config.max_images
        )
        for s, f in frames.items()
        if s != "test"
    }
    counts = np.bincount(datasets["train"].targets.numpy(), minlength=labels.num_classes).tolist()
    return Prepared(vocab, labels, config, mean, std, frames, datasets, corpus, counts)


def fit_linear_baseline(prepared: Prepared, settings: Settings):
    """The linear baseline fitted on train, its C chosen on dev: (LinearModel, the dev scores of every C)."""
    frames, datasets = prepared.frames, prepared.datasets
    return fit_linear(
        frames["train"],
        datasets["train"].targets.numpy(),
        frames["dev"],
        datasets["dev"].targets.numpy(),
        prepared.labels.num_classes,
        settings.model.linear_c,
        settings.train.select_metric,
        settings.train.seed,
    )


def fit_wide_path(prepared: Prepared, settings: Settings) -> dict:
    """The linear baseline fitted on train (C chosen on dev), as the wide path's tables; sets prepared.wide and the
    table sizes in prepared.config. Returns what metrics/train.json records of it."""
    frames, datasets = prepared.frames, prepared.datasets
    linear, rows = fit_linear_baseline(prepared, settings)
    aspects = {
        name: prepared.vocab.encode(tokens, prepared.config.max_aspect_len).tolist()
        for frame in frames.values()
        for name, tokens in zip(frame["aspect"], frame["aspect_tokens"], strict=False)
    }
    prepared.wide = linear_tables(linear, list(prepared.vocab.tokens), aspects)
    prepared.linear = linear.to_checkpoint()
    prepared.config = dataclasses.replace(
        prepared.config, wide_pairs=len(prepared.wide["pair_keys"]), wide_aspects=len(prepared.wide["aspect_keys"])
    )
    folds = settings.train.wide_folds if settings.model.wide_init == "linear" else 0
    if folds:
        datasets["train"].wide_logits = torch.from_numpy(
            out_of_fold_logits(
                frames["train"],
                datasets["train"].targets.numpy(),
                prepared.labels.num_classes,
                linear.c,
                folds,
                settings.train.seed,
            )
        )
    best = next(r for r in rows if r["c"] == linear.c)
    return {
        "init": settings.model.wide_init,
        "linear_c": linear.c,
        "stacking_folds": folds,
        "linear_dev": {k: v for k, v in best.items() if k != "c"},
        "pair_features": prepared.config.wide_pairs,
    }


def provenance(prepared: Prepared) -> dict:
    """The training data's source and each aspect's training pairs: predict marks what they cannot support."""
    return {
        "data_source": prepared.data_source,
        "aspect_train_pairs": aspect_pair_counts(prepared.frames["train"]["aspect"]),
    }


def visual_memory(datasets: dict[str, PairDataset]) -> dict:
    """How many train and dev pairs have a usable image; with none, every visual memory is masked (text only)."""
    with_image = {split: sum(1 for rows in datasets[split].image_rows if len(rows)) for split in ("train", "dev")}
    note = (
        "masked: no train or dev pair has a usable image, the model reads the text only"
        if not any(with_image.values())
        else "used where a pair has a usable image, masked elsewhere"
    )
    return {
        "visual_memory": note,
        "train_pairs_with_image": with_image["train"],
        "dev_pairs_with_image": with_image["dev"],
    }
