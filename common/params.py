"""Read params.yaml (DVC's parameter file): one frozen dataclass per section, through one helper.

Each section of params.yaml is read by `read_section(SectionClass, values, "section")` into a frozen dataclass
whose fields are the section's keys and whose defaults equal the shipped params.yaml (each area's params tests
check that). The field's annotation says what a value may be: `bool`, `int`, `float` (YAML's 5e-3, a string, is
read as a number), `str`, `Literal[...]` (one of the values listed), a tuple of one of those, `dict` (a mapping,
left as it is), or a union of them (`int | None`). `bounded(default, low, high)` adds a range. Unknown keys are
refused naming the valid ones; a wrong type or a value out of range is one line naming `section.key`. A
dataclass may add `check(self)` for rules across keys; it raises UserError through `fail(...)`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import field, fields
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from common.errors import UserError

DEFAULT_PARAMS = Path("params.yaml")
T = TypeVar("T")

# features.image_size, read by clean and features alike: ResNet-50 needs >= 32 px; above 1024 px one image's
# tensor alone passes 12 MB and a batch's activations many GB, a typo (100000) would ask for terabytes
IMAGE_SIZE_RANGE = (32, 1024)


def load_params(section: str | None = None, path: str | Path = DEFAULT_PARAMS) -> Any:
    """The whole params file, or one top-level section of it; a missing file or section is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run from the repository root or pass --params PATH")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML ({exc}); fix the file") from exc
    if not isinstance(params, dict):
        raise UserError(f"{path} must be a mapping of sections; fix the file")
    return params if section is None else section_of(params, section, path)


def section_of(params: Mapping, section: str, path: str | Path = DEFAULT_PARAMS) -> Any:
    """params[section] of the file at `path` already read; a missing section is a UserError."""
    if section not in params:
        raise UserError(f"{path} has no '{section}' section; add it (docs/pipeline.md lists each stage's params)")
    return params[section]


def bounded(default: Any, low: float | None = None, high: float | None = None) -> Any:
    """A dataclass field whose value must lie in low..high (either end open when None)."""
    return field(default=default, metadata={"low": low, "high": high})


def fail(section: str, key: str, message: str, source: str | Path = DEFAULT_PARAMS) -> UserError:
    """The one-line error for a bad value: `params.yaml: 'section.key' <message>`."""
    return UserError(f"{source}: '{section}.{key}' {message}")


def read_section(cls: type[T], values: Any, section: str, source: str | Path = DEFAULT_PARAMS) -> T:
    """The frozen dataclass `cls` from one params section (keys left out take their defaults)."""
    values = {} if values is None else values
    if not isinstance(values, Mapping):
        raise UserError(f"{source}: '{section}' must be a mapping of keys to values, got {values!r}")
    kinds = _field_kinds(cls)
    unknown = sorted(str(k) for k in values if k not in kinds)
    if unknown:
        raise UserError(
            f"{source}: unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
            f"valid keys: {', '.join(sorted(kinds))}"
        )
    parsed = {}
    for f in fields(cls):
        if f.name in values:
            value = _coerce(values[f.name], kinds[f.name])
            if value is _INVALID:
                raise fail(section, f.name, f"must be {_describe(kinds[f.name])}, got {values[f.name]!r}", source)
            _check_range(section, f, value, source)
            parsed[f.name] = value
    result = cls(**parsed)
    check = getattr(result, "check", None)
    if check is not None:
        check()
    return result


def load_section(cls: type[T], section: str, path: str | Path = DEFAULT_PARAMS) -> T:
    """read_section of one section of the params file at `path`."""
    return read_section(cls, load_params(section, path), section, path)


def section_defaults(cls: type) -> dict[str, Any]:
    """The defaults of a section dataclass as params.yaml writes them (tuples as lists)."""
    out = {}
    for f in fields(cls):
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


_INVALID = object()


@cache
def _field_kinds(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _coerce(value: Any, kind: Any) -> Any:
    """value read as `kind`, or _INVALID."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(kind):
            coerced = _coerce(value, option)
            if coerced is not _INVALID:
                return coerced
        return _INVALID
    if origin is Literal:
        return value if any(value == c and type(value) is type(c) for c in typing.get_args(kind)) else _INVALID
    if origin is tuple:
        item = typing.get_args(kind)[0]
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        coerced = [_coerce(v, item) for v in items]
        return _INVALID if any(c is _INVALID for c in coerced) else tuple(coerced)
    if kind is type(None):
        return None if value is None else _INVALID
    if kind is bool:
        return value if isinstance(value, bool) else _INVALID
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _INVALID
        if isinstance(value, int):
            return value
        return int(value) if math.isfinite(value) and value == int(value) else _INVALID
    if kind is float:
        if isinstance(value, str):  # YAML 1.1 reads 5e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                return _INVALID
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _INVALID
        try:
            value = float(value)
        except OverflowError:  # an integer beyond float's range
            return _INVALID
        return value if math.isfinite(value) else _INVALID
    if kind is str:
        return value if isinstance(value, str) else _INVALID
    if kind is dict:
        return dict(value) if isinstance(value, Mapping) else _INVALID
    raise TypeError(f"params dataclass field type {kind!r} is not supported by common.params")


def _describe(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(k) for k in typing.get_args(kind))
    if origin is Literal:
        return "one of " + ", ".join(str(c) for c in typing.get_args(kind))
    if origin is tuple:
        item = typing.get_args(kind)[0]
        plural = {int: "whole numbers", float: "finite numbers", str: "strings"}
        return f"a list of {plural.get(item) or _describe(item)}"
    names = {bool: "true or false", int: "a whole number", float: "a finite number", str: "a string"}
    names |= {dict: "a mapping", type(None): "null"}
    return names[kind]


def _check_range(section: str, f: dataclasses.Field, value: Any, source: str | Path) -> None:
    low, high = f.metadata.get("low"), f.metadata.get("high")
    if low is None and high is None or value is None:
        return
    for item in value if isinstance(value, tuple) else (value,):
        if isinstance(item, str):
            continue  # a word beside a number (e.g. "auto")
        if low is not None and item < low or high is not None and item > high:
            wanted = (
                f"in {low}..{high}"
                if low is not None and high is not None
                else (f">= {low}" if low is not None else f"<= {high}")
            )
            raise fail(section, f.name, f"must be {wanted}, got {value!r}", source)
