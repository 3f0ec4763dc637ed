"""The model, embeddings and train sections of params.yaml as validated dataclasses.

One source of truth: each dataclass default equals the value in params.yaml (a test checks it), so a key
left out of params.yaml behaves exactly as the shipped params. Unknown keys (a misspelt `model.hopps`),
values of the wrong type (a seed that is not a number) and values out of range (batch size 0, a negative
learning rate) are one-line UserErrors naming the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from common.errors import UserError
from model.layers import ATTENTION_SCORES
from model.losses import LOSSES

VARIANTS: tuple[str, ...] = ("mimn", "self", "text2img", "img2text")
# neural families share MIMN's inputs and the training loop (model/families.py); `linear` is the TF-IDF baseline
NEURAL_FAMILIES: tuple[str, ...] = ("mimn", "lstm", "atae_lstm", "memnet", "ian", "ram", "co_memory")
FAMILIES: tuple[str, ...] = (*NEURAL_FAMILIES, "linear")
MAX_HOPS = 5
SELECT_METRICS: tuple[str, ...] = ("loss", "accuracy", "macro_f1", "weighted_f1")
CLASS_WEIGHTS: tuple[str, ...] = ("none", "sqrt", "balanced")
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
WIDE_INITS: tuple[str, ...] = ("linear", "zero")


@dataclass(frozen=True)
class MIMNConfig:
    vocab_size: int
    num_classes: int
    embed_dim: int = 100  # Dtext (300 in the paper)
    hidden_dim: int = 50  # Dh, each LSTM direction (100 in the paper)
    max_text_len: int = 320  # L
    max_aspect_len: int = 4  # N
    max_images: int = 5  # K
    image_dim: int = 2048  # ResNet-50 pooled features
    hops: int = 3  # H
    dropout: float = 0.5
    variant: str = "mimn"  # the paper's Table 4: mimn | self | text2img | img2text
    attention_score: str = "mlp"  # mlp: u·tanh(W[m, q] + b) | linear: tanh(w·[m, q] + b), see layers.MemoryAttention
    word_evidence: bool = True  # add the wide path's logits (model/word_evidence.py), an extension of the paper
    wide_dropout: float = 0.0  # share of the words the wide path drops in training
    wide_pairs: int = 0  # rows of the wide path's (aspect, word) table (set by training, not a param)
    wide_aspects: int = 0  # rows of its per-aspect bias table (set by training, not a param)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.attention_score not in ATTENTION_SCORES:
            raise ValueError(
                f"attention_score must be one of {', '.join(ATTENTION_SCORES)}, got {self.attention_score!r}"
            )
        if not 1 <= self.hops <= MAX_HOPS:
            raise ValueError(f"hops must be 1..{MAX_HOPS}, got {self.hops}")
        if self.wide_pairs < 0 or self.wide_aspects < 0:
            raise ValueError(f"wide_pairs and wide_aspects must be >= 0, got {self.wide_pairs}, {self.wide_aspects}")
        for name in ("dropout", "wide_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in (
            "vocab_size",
            "num_classes",
            "embed_dim",
            "hidden_dim",
            "max_text_len",
            "max_aspect_len",
            "max_images",
            "image_dim",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_params(cls, model_params: dict, vocab_size: int, num_classes: int) -> MIMNConfig:
        """A config from params.yaml's `model` section (checked by ModelParams first)."""
        known = {f.name for f in fields(cls)} - {"vocab_size", "num_classes"}
        return cls(
            vocab_size=vocab_size, num_classes=num_classes, **{k: v for k, v in model_params.items() if k in known}
        )


@dataclass(frozen=True)
class ModelParams:
    """params.yaml `model`: which model family, MIMN's sizes, and the linear baseline's C grid."""

    family: str = "mimn"  # a neural family (model/families.py) | linear (TF-IDF + aspect-conjoined LR)
    variant: str = "mimn"
    hops: int = 3
    embed_dim: int = 100
    hidden_dim: int = 50
    max_text_len: int = 320
    max_aspect_len: int = 4
    max_images: int = 5
    image_dim: int = 2048
    dropout: float = 0.5
    attention_score: str = "mlp"
    word_evidence: bool = True
    wide_init: str = "linear"  # linear: the wide path starts as the fitted linear baseline | zero
    wide_dropout: float = 0.0
    linear_c: tuple = (0.1, 0.3, 1.0, 3.0, 10.0)  # inverse regularisation strengths tried; the best on dev is kept

    def check(self) -> None:
        one_of("model", "family", self.family, FAMILIES)
        one_of("model", "wide_init", self.wide_init, WIDE_INITS)
        if not self.linear_c or any(c <= 0 for c in self.linear_c):
            raise UserError(
                f"params.yaml: 'model.linear_c' must be a non-empty list of numbers > 0, got {list(self.linear_c)}"
            )
        try:
            MIMNConfig.from_params(self.mimn_section(), vocab_size=1, num_classes=2)
        except ValueError as exc:
            raise UserError(f"params.yaml: model.{exc}") from exc

    def mimn_section(self) -> dict:
        known = {f.name for f in fields(MIMNConfig)}
        return {k: v for k, v in dataclasses.asdict(self).items() if k in known}


@dataclass(frozen=True)
class EmbeddingParams:
    """params.yaml `embeddings`: initial word vectors and how fast they may move."""

    source: str = "sgns"  # sgns | random | path to a word2vec text file
    epochs: int = 10
    window: int = 5
    negative: int = 5
    min_count: int = 1
    lr_scale: float = 0.1  # embedding learning rate = train.lr * lr_scale; 0 freezes the vectors

    def check(self) -> None:
        for name in ("epochs", "window", "negative", "min_count"):
            at_least("embeddings", name, getattr(self, name), 1)
        at_least("embeddings", "lr_scale", self.lr_scale, 0.0)


@dataclass(frozen=True)
class TrainParams:
    """params.yaml `train`: optimisation, model selection, seeds."""

    seed: int = 42
    repeats: int = 1  # train this many models (seeds seed, seed+1, ...); metrics/test.json gets mean ± std
    classes: int = 10
    lr: float = 0.005
    weight_decay: float = 0.0
    wide_weight_decay: float = 0.0
    wide_lr_scale: float = 1.0  # the wide path learns at lr * wide_lr_scale; 0 keeps it as initialised
    wide_folds: int = 0  # >= 2: train the deep part beside out-of-fold linear logits (wide path fixed); 0: off
    lr_schedule: str = "constant"
    batch_size: int = 128
    max_epochs: int = 8
    patience: int = 8
    select_metric: str = "macro_f1"
    class_weights: str = "balanced"
    label_smoothing: float = 0.0
    loss: str = "ce"
    ordinal_weight: float = 1.0
    bucket_by_length: bool = True
    min_word_count: int = 1
    device: str = "auto"
    num_threads: int = 0
    nproc: int = 1  # training processes on this machine (torchrun, DDP); see model/distributed.py

    def check(self) -> None:
        for name in ("repeats", "batch_size", "max_epochs", "patience", "min_word_count", "nproc"):
            at_least("train", name, getattr(self, name), 1)
        at_least("train", "num_threads", self.num_threads, 0)
        at_least("train", "weight_decay", self.weight_decay, 0.0)
        at_least("train", "wide_weight_decay", self.wide_weight_decay, 0.0)
        at_least("train", "wide_lr_scale", self.wide_lr_scale, 0.0)
        if self.wide_folds == 1 or self.wide_folds < 0:
            raise UserError(f"params.yaml: 'train.wide_folds' must be 0 (off) or >= 2, got {self.wide_folds}")
        if not self.lr > 0:
            raise UserError(f"params.yaml: 'train.lr' must be > 0, got {self.lr}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"params.yaml: 'train.label_smoothing' must be in [0, 1), got {self.label_smoothing}")
        one_of("train", "classes", self.classes, (10, 8))
        one_of("train", "select_metric", self.select_metric, SELECT_METRICS)
        one_of("train", "class_weights", self.class_weights, CLASS_WEIGHTS)
        one_of("train", "loss", self.loss, LOSSES)
        at_least("train", "ordinal_weight", self.ordinal_weight, 0.0)
        one_of("train", "lr_schedule", self.lr_schedule, LR_SCHEDULES)
        one_of("train", "device", self.device, ("auto", "cpu", "cuda"))

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.repeats)]


def one_of(section: str, key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise UserError(f"params.yaml: '{section}.{key}' must be one of {', '.join(map(str, allowed))}, got {value!r}")


def at_least(section: str, key: str, value: float, low: float) -> None:
    if value < low:
        raise UserError(f"params.yaml: '{section}.{key}' must be >= {low}, got {value}")


def _coerce(section: str, key: str, value: Any, kind: str) -> Any:
    where = f"params.yaml: '{section}.{key}'"
    if kind == "bool":
        if not isinstance(value, bool):
            raise UserError(f"{where} must be true or false, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise UserError(f"{where} must be a whole number, got {value!r}")
        return int(value)
    if kind == "float":
        if isinstance(value, str):  # YAML reads 5e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where} must be a number, got {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise UserError(f"{where} must be finite, got {value!r}")
        return float(value)
    if kind == "tuple":
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(_coerce(section, key, v, "float") for v in items)
    if not isinstance(value, str):
        raise UserError(f"{where} must be a string, got {value!r}")
    return value


def parse_section(cls, section: str, values: dict | None):
    """A validated params dataclass from one params.yaml section; unknown keys list the valid ones."""
    values = values or {}
    if not isinstance(values, dict):
        raise UserError(f"params.yaml: '{section}' must be a mapping of keys to values")
    kinds = {f.name: str(f.type) for f in fields(cls)}
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise UserError(
            f"params.yaml: unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
            f"valid keys: {', '.join(sorted(kinds))}"
        )
    parsed = cls(**{k: _coerce(section, k, v, kinds[k]) for k, v in values.items()})
    parsed.check()
    return parsed


@dataclass(frozen=True)
class Settings:
    model: ModelParams
    embeddings: EmbeddingParams
    train: TrainParams

    @classmethod
    def from_params(cls, params: dict) -> Settings:
        return cls(
            parse_section(ModelParams, "model", params.get("model")),
            parse_section(EmbeddingParams, "embeddings", params.get("embeddings")),
            parse_section(TrainParams, "train", params.get("train")),
        )
