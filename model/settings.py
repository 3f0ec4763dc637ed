"""The model, embeddings and train sections of params.yaml, each read into one frozen dataclass by
common.params.read_section.

Each default equals the value in params.yaml (a key left out behaves as the shipped params); the sizes shared by
every model family are model.config.ModelShape's, written once. Unknown keys, values of the wrong type and values
out of range are one-line UserErrors naming the key. How to run (torch threads) is not here: it changes no
output, so it comes from the command line or the environment (model/runtime.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from common.device import DEVICES
from common.params import DEFAULT_PARAMS, bounded, fail, read_section
from model.config import RATES, MIMNOptions, ModelShape
from model.families import FAMILY_NAMES
from model.losses import LOSSES

Family = Literal[FAMILY_NAMES]
Device = Literal[DEVICES]
Loss = Literal[LOSSES]
SelectMetric = Literal["loss", "accuracy", "macro_f1", "weighted_f1"]


@dataclass(frozen=True)
class ModelParams(MIMNOptions, ModelShape):
    """params.yaml `model`: which model family, the sizes (ModelShape), MIMN's options and the linear C grid."""

    family: Family = "mimn"  # a neural family (model/families.py) | linear (TF-IDF + aspect-conjoined LR)
    wide_init: Literal["linear", "zero"] = "linear"  # linear: the wide path starts as the fitted linear baseline
    linear_c: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)  # C tried by the linear model; the best on dev is kept

    def check(self) -> None:
        for name in RATES:
            if not getattr(self, name) < 1.0:
                raise fail("model", name, f"must be in [0, 1), got {getattr(self, name)}")
        if not self.linear_c or any(c <= 0 for c in self.linear_c):
            raise fail("model", "linear_c", f"must be a non-empty list of numbers > 0, got {list(self.linear_c)}")


@dataclass(frozen=True)
class EmbeddingParams:
    """params.yaml `embeddings`: initial word vectors and how fast they may move."""

    source: str = "sgns"  # sgns | random | path to a word2vec text file
    epochs: int = bounded(10, 1)
    window: int = bounded(5, 1)
    negative: int = bounded(5, 1)
    min_count: int = bounded(1, 1)
    lr_scale: float = bounded(0.1, 0.0)  # embedding learning rate = train.lr * lr_scale; 0 freezes the vectors


@dataclass(frozen=True)
class TrainParams:
    """params.yaml `train`: optimisation, model selection, seeds, and where and in how many processes it trains
    (both change the numbers: docs/model.md)."""

    seed: int = 42
    repeats: int = bounded(1, 1)  # this many models (seeds seed, seed+1, ...); metrics/test.json gets mean ± std
    classes: Literal[10, 8] = 10
    lr: float = 0.005  # > 0 (check)
    weight_decay: float = bounded(0.0, 0.0)
    wide_weight_decay: float = bounded(0.0, 0.0)
    wide_lr_scale: float = bounded(1.0, 0.0)  # the wide path learns at lr * wide_lr_scale; 0 keeps it as initialised
    wide_folds: int = bounded(0, 0)  # >= 2: the deep part trains beside out-of-fold linear logits; 0: off (check)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    batch_size: int = bounded(128, 1)
    max_epochs: int = bounded(8, 1)
    patience: int = bounded(8, 1)
    select_metric: SelectMetric = "macro_f1"
    class_weights: Literal["none", "sqrt", "balanced"] = "balanced"
    label_smoothing: float = bounded(0.0, 0.0, 1.0)  # < 1 (check)
    loss: Loss = "ce"
    ordinal_weight: float = bounded(1.0, 0.0)
    bucket_by_length: bool = True
    min_word_count: int = bounded(1, 1)
    device: Device = "auto"
    nproc: int = bounded(1, 1)  # training processes on this machine (torchrun, DDP); see model/distributed.py

    def check(self) -> None:
        if self.wide_folds == 1:
            raise fail("train", "wide_folds", "must be 0 (off) or >= 2, got 1")
        if not self.lr > 0:
            raise fail("train", "lr", f"must be > 0, got {self.lr}")
        if not self.label_smoothing < 1.0:
            raise fail("train", "label_smoothing", f"must be in [0, 1), got {self.label_smoothing}")

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.repeats)]


@dataclass(frozen=True)
class Settings:
    model: ModelParams
    embeddings: EmbeddingParams
    train: TrainParams

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str | Path = DEFAULT_PARAMS) -> Settings:
        """The three sections of a params dict (a section left out takes every default)."""
        return cls(
            read_section(ModelParams, params.get("model"), "model", source),
            read_section(EmbeddingParams, params.get("embeddings"), "embeddings", source),
            read_section(TrainParams, params.get("train"), "train", source),
        )
