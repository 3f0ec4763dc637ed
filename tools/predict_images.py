"""New images -> the features the model was trained on: the backbone and weights its training features came from,
the same preprocessing and the checkpoint's standardisation; other weights are refused (used by tools.predict)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from common.errors import UserError
from model.data import features_record
from pipeline.backbone import (
    BACKBONE,
    IMAGENET_FILE_NAME,
    IMAGENET_LABEL,
    Backbone,
    WeightsUnavailable,
    file_backbone,
    imagenet_backbone,
    imagenet_cache_file,
    random_backbone,
)
from pipeline.features import extract, prepare_model, resolve_precision
from pipeline.image_data import Preprocessing


def weights_identity(label: str) -> str:
    """What must match between two weights labels: a file's content hash, else the whole label."""
    return f"file-sha256:{label.rsplit(':', 1)[1]}" if label.startswith("file:") else label


def backbone_for_label(label: str, download_timeout_s: float) -> Backbone:
    """Load exactly the weights a features label names (never a fallback)."""
    if label.startswith("imagenet:"):
        try:
            return imagenet_backbone(download_timeout_s)
        except WeightsUnavailable as exc:
            raise UserError(
                f"the images need ResNet-50 weights {label} (those of the model's training features), "
                f"which are {exc}; put {IMAGENET_FILE_NAME} into {imagenet_cache_file().parent}"
            ) from exc
    if label.startswith("random:seed="):
        return random_backbone(int(label.split("=", 1)[1]))
    if label.startswith("file:"):
        path = label[len("file:") :].rsplit(":", 1)[0]
        if not Path(path).is_file():
            raise UserError(
                f"the model's image features came from ResNet-50 weights in {path}, which is not there; "
                "pass --weights PATH of that file"
            )
        return file_backbone(path)
    raise UserError(f"unknown backbone weights label {label!r} in the checkpoint; re-run dvc repro features train")


def named_weights(value: str) -> str | None:
    """The label of --weights when it names weights (imagenet, random:seed=N); None for a file (known once read)."""
    if value in ("random", "auto"):
        raise UserError(f"--weights {value}: name the exact weights (imagenet, random:seed=N or a .pth path)")
    if value == "imagenet" or value.startswith("imagenet:"):
        suffix = value.partition(":")[2]
        return f"imagenet:{suffix}" if suffix else IMAGENET_LABEL
    return value if value.startswith("random:seed=") else None


def refuse_other_weights(recorded: str, given: str) -> None:
    if weights_identity(given) != weights_identity(recorded):
        raise UserError(
            f"the model was trained on image features from ResNet-50 weights {recorded}, but --weights "
            f"gives {given}: features from other weights mean nothing to it. Use the weights its features "
            "were computed with (reports/features_detail.json)"
        )


class ImageFeaturizer:
    """New images -> standardised 2048-d features, computed as the model's training features were.

    The backbone is loaded on first use only (text-only input never loads it)."""

    def __init__(
        self,
        record: Callable[[], dict[str, str]],
        mean: np.ndarray,
        std: np.ndarray,
        device: torch.device,
        weights: str | None,
        max_image_pixels: int,
        batch_size: int,
        num_workers: int,
        download_timeout_s: float = 20.0,
    ) -> None:
        self.record_source, self.mean, self.std, self.device = record, mean, std, device
        self.weights_option, self.batch_size, self.num_workers = weights, batch_size, num_workers
        self.max_image_pixels, self.download_timeout_s = max_image_pixels, download_timeout_s
        self.model: torch.nn.Module | None = None
        self.prep: Preprocessing | None = None
        self.precision = "fp32"

    @staticmethod
    def _preprocessing(record: dict[str, str], max_image_pixels: int) -> Preprocessing:
        if record.get("backbone") != BACKBONE:
            raise UserError(
                f"the model's image features came from backbone {record.get('backbone')!r}, this code "
                f"computes {BACKBONE!r}; re-run dvc repro features train"
            )
        try:
            recorded = json.loads(record["preprocessing"])
            prep = Preprocessing(int(recorded["resize"][0]), max_image_pixels)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UserError(
                f"the checkpoint's features record has no readable preprocessing ({exc}); "
                "re-run dvc repro features train"
            ) from exc
        if prep.describe() != recorded:
            raise UserError(
                "the model's image features were preprocessed differently from what this code does "
                f"({record['preprocessing']}); re-run dvc repro features train"
            )
        return prep

    def load(self) -> None:
        """Check the record against this code and load the backbone: refused, with the reason, on any mismatch."""
        if self.model is not None:
            return
        record = self.record_source()
        self.prep = self._preprocessing(record, self.max_image_pixels)
        recorded = record["weights"]
        named = named_weights(self.weights_option) if self.weights_option else recorded
        if named is not None:
            refuse_other_weights(recorded, named)  # before loading anything
            backbone = backbone_for_label(named, self.download_timeout_s)
        else:
            backbone = file_backbone(str(self.weights_option))
            refuse_other_weights(recorded, backbone.weights)
        # the features stage's precision when this device can use it, else fp32 (they differ by rounding only)
        recorded_precision = record.get("precision", "fp32")
        if recorded_precision != "fp32":
            self.precision = resolve_precision("auto", self.device)  # bf16 on CPUs with native bf16, else fp32
        self.model = prepare_model(backbone.model, self.device)  # channels-last, as the stage runs it

    def __call__(self, files: list[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """path -> standardised feature for the decodable files; path -> error for the others."""
        files = list(dict.fromkeys(files))
        if not files:
            return {}, {}
        self.load()
        assert self.model is not None and self.prep is not None
        matrix, errors, _ = extract(
            self.model,
            [Path(f) for f in files],
            self.prep,
            self.batch_size,
            self.num_workers if len(files) >= 2 * self.batch_size else 0,
            self.device,
            self.precision,
        )
        standardised = (matrix - self.mean) / self.std
        return (
            {f: standardised[i] for i, f in enumerate(files) if i not in errors},
            {f: errors[i] for i, f in enumerate(files) if i in errors},
        )


def checkpoint_features_record(ckpt: dict, model_path: Path, features_path: Path) -> dict[str, str]:
    """The checkpoint's record of what produced its training features; a checkpoint written before train stored
    it falls back, loudly, to the features file the pipeline trained it on."""
    record = ckpt.get("features")
    if isinstance(record, dict) and record.get("weights"):
        return {k: str(v) for k, v in record.items()}
    record = features_record(features_path)
    if record.get("weights"):
        print(
            f"warning: {model_path} does not record which backbone weights produced its image features; "
            f"assuming those of {features_path} ({record['weights']}). Re-run `dvc repro train` to record them.",
            file=sys.stderr,
        )
        return record
    raise UserError(
        f"{model_path} does not record which backbone weights produced its image features and "
        f"{features_path} is not there to tell; re-run dvc repro train, or predict without images"
    )


def trained_without_images(ckpt: dict) -> bool:
    """The training split had no usable image: the standardisation is the identity (model.data.feature_norm)."""
    norm = ckpt["feature_norm"]
    return bool((norm["mean"] == 0).all() and (norm["std"] == 1).all())
