"""The trained checkpoint (models/mimn.pt): written by the train stage, read by evaluate and predict.

Every field they use is checked here, once, so that a file that is not a checkpoint of this code (empty, a list,
without its vocabulary, tensors of other shapes) is one clear error, never a traceback later. A neural model is
first built on PyTorch's meta device (no memory) and its shapes compared with the stored tensors, so sizes in a
hostile config cannot make it allocate more than the file itself holds. Loaded with torch.load(weights_only=True).
"""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import torch
from torch import nn

from common.atomic import atomic_path
from common.errors import UserError
from model.families import DEFAULT_FAMILY, FAMILIES, FAMILY_NAMES, LINEAR, rebuild_model
from model.linear import LinearModel

MODEL_PATH = Path("models/mimn.pt")


def save_checkpoint(ckpt: dict, path: Path = MODEL_PATH) -> None:
    """Write the checkpoint whole (a reader never sees half of it), the same bytes for the same content."""
    # serialise in memory: torch.save names the zip's root folder after the file, and the temporary file's
    # name is random, so saving to it directly would make every run's bytes differ
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


class BadCheckpoint(ValueError):
    """What makes a checkpoint unusable, in a few words."""


def _need(condition: bool, why: str) -> None:
    if not condition:
        raise BadCheckpoint(why)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


HISTORY_KEYS = ("epoch", "train_loss", "dev_loss", "train_macro_f1", "dev_macro_f1", "train_accuracy", "dev_accuracy")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite_tensor(value, name: str, dims: int | None = None) -> torch.Tensor:
    _need(isinstance(value, torch.Tensor), f"{name} is not a tensor")
    _need(value.is_floating_point(), f"{name} is not a float tensor")
    _need(dims is None or value.dim() == dims, f"{name} has {value.dim()} dimensions, not {dims}")
    _need(bool(torch.isfinite(value).all()), f"{name} holds NaN or infinite values")
    return value


def check_labels(ckpt: dict) -> int:
    """The number of classes; labels.class_scores must be increasing scores 1..10."""
    labels = ckpt.get("labels")
    scores = labels.get("class_scores") if isinstance(labels, dict) else None
    _need(
        isinstance(scores, list)
        and len(scores) >= 2
        and all(_is_int(s) and 1 <= s <= 10 for s in scores)
        and scores == sorted(set(scores)),
        "labels.class_scores is not an increasing list of scores 1..10",
    )
    return len(scores)


def check_state(state, reference: dict[str, torch.Tensor], name: str) -> None:
    """`state` holds exactly the model's tensors, with its shapes, float where the model's are, all finite."""
    _need(isinstance(state, dict) and all(isinstance(k, str) for k in state), f"{name} is not a dict of tensors")
    missing, extra = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
    _need(not missing and not extra, f"{name} lacks {missing[:3]} or has unknown {extra[:3]}")
    for key, expected in reference.items():
        value = state[key]
        _need(
            isinstance(value, torch.Tensor) and tuple(value.shape) == tuple(expected.shape),
            f"{name}.{key} is not a tensor of shape {tuple(expected.shape)}",
        )
        if expected.is_floating_point():
            _finite_tensor(value, f"{name}.{key}")


def check_config_types(config) -> None:
    """Every size an integer, every rate a number, every switch a boolean (the dataclass does not check types)."""
    kinds = {
        "int": _is_int,
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
    }
    for spec in dataclasses.fields(config):
        check = kinds.get(str(spec.type))
        _need(
            check is None or check(getattr(config, spec.name)),
            f"config.{spec.name} is {getattr(config, spec.name)!r}, not of type {spec.type}",
        )


def check_neural(ckpt: dict, family: str, num_classes: int) -> None:
    """config, model weights, vocab and feature standardisation of a neural family."""
    config = ckpt.get("config")
    _need(isinstance(config, dict), "config is not a dict")
    config_class, model_class = FAMILIES[family]
    try:
        with torch.device("meta"):  # shapes only: a config naming huge sizes allocates nothing
            skeleton = model_class(config_class(**{"word_evidence": False, **config} if family == "mimn" else config))
    except (TypeError, ValueError, RuntimeError, OverflowError, ZeroDivisionError, AttributeError) as exc:
        raise BadCheckpoint(f"config does not build a {family} model: {exc}") from None
    check_state(ckpt.get("model"), skeleton.state_dict(), "model")
    cfg = skeleton.config
    check_config_types(cfg)
    _need(cfg.num_classes == num_classes, f"config.num_classes {cfg.num_classes} != {num_classes} labels")
    vocab = ckpt.get("vocab")
    _need(isinstance(vocab, list) and all(isinstance(t, str) for t in vocab), "vocab is not a list of words")
    _need(len(vocab) == cfg.vocab_size, f"vocab holds {len(vocab)} words, config.vocab_size is {cfg.vocab_size}")
    norm = ckpt.get("feature_norm")
    _need(isinstance(norm, dict), "feature_norm is not a dict")
    for key in ("mean", "std"):
        tensor = _finite_tensor(norm.get(key), f"feature_norm.{key}", dims=1)
        _need(len(tensor) == cfg.image_dim, f"feature_norm.{key} has {len(tensor)} values, not {cfg.image_dim}")
    _need(bool((norm["std"] > 0).all()), "feature_norm.std has values <= 0")
    features = ckpt.get("features")
    _need(features is None or isinstance(features, dict), "features is not a dict")
    repeats = ckpt.get("repeats", [])
    _need(isinstance(repeats, list) and all(isinstance(r, dict) for r in repeats), "repeats is not a list of dicts")
    for n, repeat in enumerate(repeats):
        check_state(repeat.get("model"), skeleton.state_dict(), f"repeats[{n}].model")
        _need(_is_int(repeat.get("seed")), f"repeats[{n}].seed is not an integer")


def check_linear(data, num_classes: int, name: str = "linear") -> None:
    """The linear baseline's tables (LinearModel.to_checkpoint) fit one another and the labels."""
    _need(isinstance(data, dict), f"{name} is not a dict")
    features = data.get("features")
    _need(
        isinstance(features, list) and all(isinstance(f, str) for f in features),
        f"{name}.features is not a list of strings",
    )
    idf = _finite_tensor(data.get("idf"), f"{name}.idf", dims=1)
    coef = _finite_tensor(data.get("coef"), f"{name}.coef", dims=2)
    intercept = _finite_tensor(data.get("intercept"), f"{name}.intercept", dims=1)
    classes = data.get("classes")
    _need(len(idf) == len(features) == coef.shape[1], f"{name}.idf, .coef and .features disagree on the feature count")
    _need(
        isinstance(classes, list)
        and len(classes) == coef.shape[0] == len(intercept) >= 1
        and all(_is_int(c) and 0 <= c < num_classes for c in classes)
        and len(set(classes)) == len(classes),
        f"{name}.classes does not match {name}.coef and the labels",
    )
    _need(data.get("num_classes") == num_classes, f"{name}.num_classes is not {num_classes}")
    c = data.get("c")
    _need(_is_number(c) and math.isfinite(c), f"{name}.c is not a number")


def check_evaluation_fields(ckpt: dict, num_classes: int) -> None:
    """What the evaluate stage reads besides the model: class counts, seed, epoch and history."""
    counts = ckpt.get("train_class_counts")
    _need(
        isinstance(counts, list) and len(counts) == num_classes and all(_is_int(c) and c >= 0 for c in counts),
        f"train_class_counts is not a list of {num_classes} counts",
    )
    train = (ckpt.get("params") or {}).get("train") if isinstance(ckpt.get("params"), dict) else None
    _need(isinstance(train, dict) and _is_int(train.get("seed")), "params.train.seed is not an integer")
    _need(_is_int(ckpt.get("epoch")), "epoch is not an integer")
    history = ckpt.get("history")
    _need(
        isinstance(history, list)
        and all(isinstance(row, dict) and all(_is_number(row.get(key)) for key in HISTORY_KEYS) for row in history),
        f"history is not a list of rows of {', '.join(HISTORY_KEYS)}",
    )
    if ckpt.get("linear_baseline") is not None:  # the linear baseline train fitted for MIMN's wide path
        check_linear(ckpt["linear_baseline"], num_classes, "linear_baseline")


def check_checkpoint(ckpt, for_evaluation: bool = False) -> str:
    """The checkpoint's family, or BadCheckpoint saying what is wrong."""
    _need(isinstance(ckpt, dict), f"it holds a {type(ckpt).__name__}, not a dict")
    family = ckpt.get("family", DEFAULT_FAMILY)
    _need(
        isinstance(family, str) and family in FAMILY_NAMES,
        f"family {str(family)[:40]!r} is none of {', '.join(FAMILY_NAMES)}",
    )
    num_classes = check_labels(ckpt)
    if family == LINEAR:
        check_linear(ckpt.get("linear"), num_classes)
    else:
        check_neural(ckpt, family, num_classes)
    if for_evaluation:
        check_evaluation_fields(ckpt, num_classes)
    return family


def first_line(exc: BaseException) -> str:
    """An exception as one short line (its message's first line, else its type)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def load_checkpoint(path: str | Path, for_evaluation: bool = False) -> tuple[nn.Module | LinearModel, dict]:
    """The trained model (a neural family in eval mode on CPU, or the linear baseline) and the checkpoint dict,
    loaded with weights_only=True; anything else is a UserError naming what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise UserError(f"{path} not found: run the train stage first (dvc repro train)")
    retrain = "re-run dvc repro train"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling arbitrary bytes raises anything; all mean "not a checkpoint"
        raise UserError(f"{path} is not a readable checkpoint ({first_line(exc)}); {retrain}") from None
    try:
        family = check_checkpoint(ckpt, for_evaluation)
        if family == LINEAR:
            return LinearModel.from_checkpoint(ckpt["linear"]), ckpt
        return rebuild_model(ckpt).eval(), ckpt
    except (BadCheckpoint, RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} is not a checkpoint of this model: {first_line(exc)}; {retrain}") from None
