"""One device chooser for every torch stage and tool: `auto` (a CUDA GPU when one is visible, else the CPU),
`cpu` or `cuda`. Under torchrun each process takes the GPU of its LOCAL_RANK."""

from __future__ import annotations

import os

import torch

from common.errors import UserError

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def choose_device(name: str, setting: str) -> torch.device:
    """The torch device for `name`; `setting` names where it came from in errors (e.g. "params.yaml:
    'train.device'" or "--device")."""
    if name not in DEVICES:
        raise UserError(f"{setting} must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{setting} is cuda but no CUDA GPU is visible; use auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per process on this machine
        index = int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device(name)
