"""Model families by name (the `model.family` param): MIMN and the baselines of the paper's Table 2.

Every family takes MIMN's forward signature, so the training loop, the train and evaluate stages and the metrics
are the same for all; a checkpoint stores its family and config, and `rebuild_model` makes the right class again.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from common.errors import UserError
from model.baselines.atae_lstm import ATAELSTM
from model.baselines.co_memory import CoMemory
from model.baselines.ian import IAN
from model.baselines.lstm import LSTMClassifier
from model.baselines.memnet import MemNet
from model.baselines.ram import RAM
from model.config import BaselineConfig, MIMNConfig
from model.mimn import MIMN

DEFAULT_FAMILY = "mimn"
# the neural families, by name: (config class, model class); every name the project knows is here or LINEAR
FAMILIES: dict[str, tuple[type, type[nn.Module]]] = {
    "mimn": (MIMNConfig, MIMN),
    "lstm": (BaselineConfig, LSTMClassifier),
    "atae_lstm": (BaselineConfig, ATAELSTM),
    "memnet": (BaselineConfig, MemNet),
    "ian": (BaselineConfig, IAN),
    "ram": (BaselineConfig, RAM),
    "co_memory": (BaselineConfig, CoMemory),
}
LINEAR = "linear"  # the TF-IDF + aspect-conjoined logistic regression baseline (model/linear.py), not a torch model
FAMILY_NAMES: tuple[str, ...] = (*FAMILIES, LINEAR)


def _family_classes(family: str) -> tuple[type, type[nn.Module]]:
    if family not in FAMILIES:
        raise UserError(f"params.yaml: 'model.family' must be one of {', '.join(FAMILIES)}, got {family!r}")
    return FAMILIES[family]


def build_model(
    family: str, model_params: dict, vocab_size: int, num_classes: int, embedding_weights: torch.Tensor | None = None
) -> nn.Module:
    """A fresh model of `family` sized by params.yaml's `model` section, with the word vectors loaded last."""
    config_class, model_class = _family_classes(family)
    try:
        config = config_class.from_params(model_params, vocab_size=vocab_size, num_classes=num_classes)
    except (TypeError, ValueError) as exc:
        raise UserError(f"params.yaml: model section for family {family!r}: {exc}") from exc
    model = model_class(config)
    if embedding_weights is not None:  # after construction: nothing re-initialises the vectors afterwards
        model.load_embeddings(embedding_weights)
    return model


def family_of(model: nn.Module) -> str:
    for name, (_, model_class) in FAMILIES.items():
        if type(model) is model_class:
            return name
    raise ValueError(f"{type(model).__name__} is not a registered model family")


def checkpoint_fields(model: nn.Module) -> dict:
    """The checkpoint entries that rebuild `model`: its family and its config as a plain dict."""
    return {"family": family_of(model), "config": dataclasses.asdict(model.config)}


def rebuild_model(ckpt: dict) -> nn.Module:
    """The model a checkpoint dict describes, its weights loaded (a checkpoint without a family is MIMN's)."""
    family = str(ckpt.get("family", DEFAULT_FAMILY))
    config_class, model_class = _family_classes(family)
    config = dict(ckpt["config"])
    if family == "mimn":  # checkpoints from before model.word_evidence existed hold a plain MIMN
        config.setdefault("word_evidence", False)
    model = model_class(config_class(**config))
    model.load_state_dict(ckpt["model"])
    return model
