"""What every training run of the train stage starts from: the splits and image features read and checked, the
vocabulary, label map, feature standardisation and datasets built, and (model.word_evidence) the linear baseline
fitted as the wide path's tables."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
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
    standardised,
)
from model.labels import LabelMap
from model.linear import fit_linear, out_of_fold_logits
from model.pairs import encode_pairs
from model.provenance import aspect_pair_counts
from model.settings import Settings
from model.splits import SplitFile, TrainCorpus, aspect_tokens
from model.vocab import Vocab, build_vocab
from model.word_evidence import linear_tables
from pipeline.paths import DataParams

PAIR_TEXT = ["tokens", "aspect"]  # what the linear baseline reads of a pair


@dataclass
class Prepared:
    vocab: Vocab
    labels: LabelMap
    config: MIMNConfig
    mean: np.ndarray
    std: np.ndarray
    splits: dict[str, SplitFile]  # read again, batch by batch, by the linear baseline
    datasets: dict[str, PairDataset]
    corpus: TrainCorpus  # the word vectors' training text, read again on every pass
    class_counts: list[int]
    aspect_tokens: dict[str, list[str]]  # each aspect's tokens (the wide path's aspect keys)
    wide: dict | None = None  # the wide path's tables from the fitted linear baseline (model.word_evidence)
    linear: dict | None = None  # that baseline (LinearModel.to_checkpoint): evaluate reports it without refitting
    data_source: str = "unknown"  # sample | crawl | multizol | unknown (model.provenance)


def open_splits(batch_rows: int) -> dict[str, SplitFile]:
    """The segmented splits, checked (test only when present: its aspect tokens join the vocabulary)."""
    split_paths = {s: SEGMENTED_DIR / f"{s}.parquet" for s in ("train", "dev", "test")}
    splits = {s: SplitFile(p, batch_rows) for s, p in split_paths.items() if s != "test" or p.is_file()}
    if not splits["train"].rows or not splits["dev"].rows:
        raise UserError(f"{split_paths['train']} or {split_paths['dev']} has no rows; check the split stage's output")
    return splits


def read_image_features(splits: dict[str, SplitFile], batch_rows: int) -> tuple[set[str], ImageFeatures]:
    """(the training split's image paths, the features of the images train and dev read); every split's images
    must have a row in the features file."""
    train_images = splits["train"].image_paths()
    keep = train_images | splits["dev"].image_paths()
    wanted = keep | splits["test"].image_paths() if "test" in splits else keep
    features = read_features(FEATURES_PATH, batch_rows, wanted, keep)
    if wanted - features.index.keys() - features.unusable - features.unread:  # name the first split lacking one
        for split in splits.values():
            check_feature_coverage(split.image_paths(), features, split.path)
    return train_images, features


def prepare(settings: Settings, batch_rows: int = DataParams.batch_rows) -> Prepared:
    """Read the splits and features in batches of `batch_rows` rows; build vocabulary, label map, feature
    normalisation and datasets."""
    splits = open_splits(batch_rows)
    train_images, features = read_image_features(splits, batch_rows)
    # a review's text repeats once per scored aspect: count words and train word vectors on each text once.
    # Only training text: dev and test text never shapes the vocabulary or the vectors.
    corpus = TrainCorpus(splits["train"])
    all_aspect_tokens, by_aspect = aspect_tokens(splits.values())
    vocab = build_vocab(corpus, [all_aspect_tokens], min_count=settings.train.min_word_count)
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
        features = features.without_features(config.image_dim)
    mean, std = feature_norm(train_images, features)
    images = standardised(features, mean, std)
    sizes = (config.max_text_len, config.max_aspect_len, config.max_images)
    datasets = {
        s: PairDataset(encode_pairs(splits[s], vocab, features.index, *sizes), labels, images) for s in ("train", "dev")
    }
    counts = np.bincount(datasets["train"].targets.numpy(), minlength=labels.num_classes).tolist()
    return Prepared(vocab, labels, config, mean, std, splits, datasets, corpus, counts, by_aspect)


def fit_linear_baseline(prepared: Prepared, settings: Settings):
    """The linear baseline fitted on train, its C chosen on dev: (LinearModel, the dev scores of every C)."""
    splits, datasets = prepared.splits, prepared.datasets
    return fit_linear(
        splits["train"].reader(PAIR_TEXT),
        datasets["train"].targets.numpy(),
        splits["dev"].reader(PAIR_TEXT),
        datasets["dev"].targets.numpy(),
        prepared.labels.num_classes,
        settings.model.linear_c,
        settings.train.select_metric,
        settings.train.seed,
    )


def fit_wide_path(prepared: Prepared, settings: Settings) -> dict:
    """The linear baseline fitted on train (C chosen on dev), as the wide path's tables; sets prepared.wide and the
    table sizes in prepared.config. Returns what metrics/train.json records of it."""
    train = prepared.datasets["train"]
    linear, rows = fit_linear_baseline(prepared, settings)
    aspects = {
        name: prepared.vocab.encode(tokens, prepared.config.max_aspect_len).tolist()
        for name, tokens in prepared.aspect_tokens.items()
    }
    prepared.wide = linear_tables(linear, list(prepared.vocab.tokens), aspects)
    prepared.linear = linear.to_checkpoint()
    # torch.save pickles a string once however often it appears: the baseline's word features are the vocabulary's
    # own string objects, as when both came from one whole-table read, so the checkpoint keeps its bytes
    prepared.linear["features"] = prepared.vocab.same_strings(prepared.linear["features"])
    prepared.config = dataclasses.replace(
        prepared.config, wide_pairs=len(prepared.wide["pair_keys"]), wide_aspects=len(prepared.wide["aspect_keys"])
    )
    folds = settings.train.wide_folds if settings.model.wide_init == "linear" else 0
    if folds:
        train.wide_logits = torch.from_numpy(
            out_of_fold_logits(
                prepared.splits["train"].reader(PAIR_TEXT),
                train.targets.numpy(),
                prepared.labels.num_classes,
                linear.c,
                folds,
                settings.train.seed,
                groups=train.keys.review,
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
        "aspect_train_pairs": aspect_pair_counts(prepared.datasets["train"].keys.frame()["aspect"]),
    }


def visual_memory(datasets: dict[str, PairDataset]) -> dict:
    """How many train and dev pairs have a usable image; with none, every visual memory is masked (text only)."""
    with_image = {split: int((datasets[split].image_rows.lengths() > 0).sum()) for split in ("train", "dev")}
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
