"""Read one section of params.yaml (DVC's parameter file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from common.errors import UserError

DEFAULT_PARAMS = Path("params.yaml")


def load_params(section: str | None = None, path: str | Path = DEFAULT_PARAMS) -> Any:
    """The whole params file, or one top-level section of it; a missing file or section is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run from the repository root or pass --params PATH")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML ({exc}); fix the file") from exc
    return params if section is None else section_of(params, section, path)


def section_of(params: dict, section: str, path: str | Path = DEFAULT_PARAMS) -> Any:
    """params[section] of the file at `path` already read; a missing section is a UserError."""
    if section not in params:
        raise UserError(f"{path} has no '{section}' section; add it (docs/pipeline.md lists each stage's params)")
    return params[section]


def require(mapping: dict, key: str, section: str, kind: type | tuple[type, ...] | None = None) -> Any:
    """mapping[key], with a UserError naming `section.key` when it is missing or of the wrong type."""
    if key not in mapping:
        raise UserError(f"params.yaml: '{section}.{key}' is missing; add it")
    value = mapping[key]
    if kind is not None and not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UserError(f"params.yaml: '{section}.{key}' must be {names}, got {value!r}")
    return value


# features.image_size, read by clean and features alike: ResNet-50 needs >= 32 px; above 1024 px one image's
# tensor alone passes 12 MB and a batch's activations many GB, a typo (100000) would ask for terabytes
IMAGE_SIZE_RANGE = (32, 1024)


def require_int_in(mapping: dict, key: str, section: str, low: int, high: int | None = None) -> int:
    """mapping[key] as an integer in low..high (no upper bound when high is None), else a UserError naming
    `section.key` and the range."""
    value = require(mapping, key, section)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or high is not None and value > high:
        wanted = f"in {low}..{high}" if high is not None else f">= {low}"
        raise UserError(f"params.yaml: '{section}.{key}' must be an integer {wanted}, got {value!r}")
    return value
