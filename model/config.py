"""The configs of the neural model families: one base (`ModelShape`, the sizes every family reads) with one set of
defaults, equal to params.yaml's `model` section (model/settings.py reads that section into a subclass of it).

A config is stored in the checkpoint as a plain dict and built again from it, so `__post_init__` checks every
field against the ranges and allowed values declared on it (a ValueError naming the field): a hostile or stale
checkpoint is refused before any tensor is made.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Literal

from common.params import bounded
from model.layers import ATTENTION_SCORES

MAX_HOPS = 5
Variant = Literal["mimn", "self", "text2img", "img2text"]  # the paper's Table 4
VARIANTS: tuple[str, ...] = typing.get_args(Variant)
AttentionScore = Literal[ATTENTION_SCORES]  # mlp: u·tanh(W[m, q] + b) | linear: tanh(w·[m, q] + b)
RATES = ("dropout", "wide_dropout")  # shares in [0, 1)


@dataclass(frozen=True)
class ModelShape:
    """The sizes shared by MIMN and every baseline (each model uses the fields it needs)."""

    hops: int = bounded(3, 1, MAX_HOPS)  # H (MIMN, MemNet, RAM, Co-Memory)
    embed_dim: int = bounded(100, 1)  # Dtext (300 in the paper)
    hidden_dim: int = bounded(50, 1)  # Dh, each LSTM direction (100 in the paper)
    max_text_len: int = bounded(320, 1)  # L
    max_aspect_len: int = bounded(4, 1)  # N
    max_images: int = bounded(5, 1)  # K
    image_dim: int = bounded(2048, 1)  # ResNet-50 pooled features
    dropout: float = bounded(0.5, 0.0, 1.0)  # < 1 (RATES)
    attention_score: AttentionScore = "mlp"  # see layers.MemoryAttention


@dataclass(frozen=True)
class MIMNOptions:
    """What only MIMN reads: the attention variant and the wide path (model/word_evidence.py, not in the paper)."""

    variant: Variant = "mimn"
    word_evidence: bool = True  # add the wide path's logits
    wide_dropout: float = bounded(0.0, 0.0, 1.0)  # share of the words the wide path drops in training (< 1)


def _size(low: int = 1, default: typing.Any = MISSING) -> typing.Any:
    return field(default=default, kw_only=True, metadata={"low": low, "high": None})


def check_fields(config: object) -> None:
    """ValueError naming the first field outside its declared range or allowed values."""
    hints = typing.get_type_hints(type(config))
    for spec in fields(config):  # type: ignore[arg-type]
        value = getattr(config, spec.name)
        kind = hints[spec.name]
        if typing.get_origin(kind) is Literal and value not in typing.get_args(kind):
            allowed = ", ".join(map(str, typing.get_args(kind)))
            raise ValueError(f"{spec.name} must be one of {allowed}, got {value!r}")
        low, high = spec.metadata.get("low"), spec.metadata.get("high")
        if low is not None and value < low or high is not None and value > high:
            wanted = f"in {low}..{high}" if high is not None else f">= {low}"
            raise ValueError(f"{spec.name} must be {wanted}, got {value!r}")
        if spec.name in RATES and not value < 1.0:
            raise ValueError(f"{spec.name} must be in [0, 1), got {value}")


@dataclass(frozen=True, kw_only=True)
class BaselineConfig(ModelShape):
    """The config of a baseline of the paper's Table 2: the shared sizes plus the vocabulary and classes."""

    vocab_size: int = _size()
    num_classes: int = _size()

    def __post_init__(self) -> None:
        check_fields(self)

    @classmethod
    def from_params(cls, model_params: dict, vocab_size: int, num_classes: int) -> BaselineConfig:
        """A config from params.yaml's `model` section as a dict (keys this config has no field for are left)."""
        known = {f.name for f in fields(cls)} - {"vocab_size", "num_classes"}
        return cls(
            vocab_size=vocab_size, num_classes=num_classes, **{k: v for k, v in model_params.items() if k in known}
        )


@dataclass(frozen=True, kw_only=True)
class MIMNConfig(MIMNOptions, BaselineConfig):
    """MIMN's config: the shared sizes, its own options and the wide path's table sizes (set by training)."""

    wide_pairs: int = _size(0, 0)  # rows of the wide path's (aspect, word) table
    wide_aspects: int = _size(0, 0)  # rows of its per-aspect bias table
