"""torchvision's ResNet-50 without its classifier (2048-d pooled features), and the weights it runs with."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

from common.errors import UserError

BACKBONE = "torchvision.models.resnet50, fc=Identity (2048-d global average pool)"
IMAGENET_WEIGHTS = ResNet50_Weights.IMAGENET1K_V2
IMAGENET_LABEL = f"imagenet:{IMAGENET_WEIGHTS.name}"
# module-level so a test can point the (real) download path at an unreachable address
IMAGENET_URL = IMAGENET_WEIGHTS.url
IMAGENET_FILE_NAME = os.path.basename(urlparse(IMAGENET_WEIGHTS.url).path)
NAMED_WEIGHTS = ("imagenet", "random", "auto")


class WeightsUnavailable(Exception):
    """The ImageNet weights are neither in the torch hub cache nor downloadable."""


@dataclass
class Backbone:
    model: nn.Module  # eval mode, on CPU
    weights: str  # what was actually loaded: imagenet:IMAGENET1K_V2 | random:seed=N | file:<path>:<sha256 prefix>


def resnet50_trunk() -> nn.Module:
    """An (initialised) ResNet-50 whose forward returns the 2048-d pooled features."""
    model = resnet50(weights=None)
    model.fc = nn.Identity()
    return model


def imagenet_cache_file() -> Path:
    """Where torchvision keeps the IMAGENET1K_V2 file ($TORCH_HOME/hub/checkpoints/...)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE_NAME


def load_imagenet_state_dict(download_timeout_s: float) -> dict[str, torch.Tensor]:
    """The IMAGENET1K_V2 state dict: from the hub cache, else downloaded by torch.hub (hash-checked)."""
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(download_timeout_s)  # torch.hub's urlopen has no timeout of its own
    try:
        return torch.hub.load_state_dict_from_url(
            IMAGENET_URL,
            file_name=IMAGENET_FILE_NAME,
            map_location="cpu",
            progress=sys.stderr.isatty(),
            check_hash=True,
            weights_only=True,
        )
    except Exception as exc:  # noqa: BLE001 - URLError, timeouts, hash mismatch, corrupt cache file
        raise WeightsUnavailable(
            f"not in {imagenet_cache_file()} and the download from {IMAGENET_URL} failed ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        socket.setdefaulttimeout(previous_timeout)


def _load_into_trunk(model: nn.Module, state: dict, source: str) -> None:
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{source} does not hold a state dict; save one with torch.save(model.state_dict(), path)")
    trunk_state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        model.load_state_dict(trunk_state, strict=True)
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[1:2] or [str(exc)]
        raise UserError(
            f"{source} is not a torchvision ResNet-50 state dict ({first_line[0].strip()}); "
            "set features.weights to imagenet, random, auto or a matching .pth"
        ) from exc


def random_backbone(seed: int) -> Backbone:
    """torchvision's own initialisation, seeded, without touching the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = resnet50_trunk()
    return Backbone(model.eval(), f"random:seed={seed}")


def imagenet_backbone(download_timeout_s: float) -> Backbone:
    model = resnet50_trunk()
    _load_into_trunk(model, load_imagenet_state_dict(download_timeout_s), f"{imagenet_cache_file()}")
    return Backbone(model.eval(), IMAGENET_LABEL)


def file_backbone(path: str | Path) -> Backbone:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"features.weights: {path} not found; give imagenet, random, auto or the path of a "
            "ResNet-50 .pth state dict"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle/zip errors of a bad file
        raise UserError(
            f"{path} is not a loadable .pth file ({type(exc).__name__}: {exc}); "
            "point features.weights at a torch.save()d state dict"
        ) from exc
    model = resnet50_trunk()
    _load_into_trunk(model, state, str(path))
    return Backbone(model.eval(), f"file:{path}:{digest[:12]}")


def warn_random_fallback(reason: str, seed: int) -> None:
    bar = "!" * 100
    print(
        f"{bar}\nWARNING: ImageNet weights for ResNet-50 are unavailable: {reason}.\n"
        f"WARNING: features.weights=auto falls back to RANDOM weights (seed={seed}); image features will carry "
        "little meaning.\n"
        f"WARNING: fix: put {IMAGENET_FILE_NAME} into {imagenet_cache_file().parent} (or set TORCH_HOME), "
        f"or set features.weights to a .pth path.\n{bar}",
        file=sys.stderr,
        flush=True,
    )


def load_backbone(weights: str, seed: int, download_timeout_s: float) -> Backbone:
    """Resolve features.weights (imagenet | random | auto | path) into a model in eval mode."""
    if weights == "random":
        return random_backbone(seed)
    if weights == "imagenet":
        try:
            return imagenet_backbone(download_timeout_s)
        except WeightsUnavailable as exc:
            raise UserError(
                f"features.weights=imagenet: the weights are {exc}; put {IMAGENET_FILE_NAME} into "
                f"{imagenet_cache_file().parent} or set features.weights to auto or random"
            ) from exc
    if weights == "auto":
        try:
            return imagenet_backbone(download_timeout_s)
        except WeightsUnavailable as exc:
            warn_random_fallback(str(exc), seed)
            return random_backbone(seed)
    return file_backbone(weights)
