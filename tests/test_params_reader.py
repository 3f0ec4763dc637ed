"""common.params.read_section: one frozen dataclass per params section, typed, bounded, unknown keys refused."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass
from typing import Literal

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from common.errors import UserError
from common.params import bounded, fail, read_section, section_defaults


@dataclass(frozen=True)
class Example:
    size: int = bounded(224, 32, 1024)
    rate: float = bounded(0.5, 0.0, 1.0)
    name: str = "x"
    on: bool = True
    mode: Literal["a", "b"] = "a"
    grid: tuple[float, ...] = (0.1, 1.0)
    workers: int | Literal["auto"] = "auto"
    extra: dict | None = None

    def check(self) -> None:
        if self.name == "bad" and self.on:
            raise fail("ex", "name", "may not be bad while on")


def test_defaults_and_coercion():
    parsed = read_section(Example, {"size": 32.0, "rate": "5e-1", "grid": 3, "workers": 4}, "ex")
    assert parsed == Example(size=32, rate=0.5, grid=(3.0,), workers=4)
    assert read_section(Example, None, "ex") == Example()
    assert section_defaults(Example)["grid"] == [0.1, 1.0]
    with pytest.raises(FrozenInstanceError):
        parsed.size = 64  # type: ignore[misc]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"size": 31}, "params.yaml: 'ex.size' must be in 32..1024, got 31"),
        ({"size": 1.5}, "params.yaml: 'ex.size' must be a whole number, got 1.5"),
        ({"size": True}, "params.yaml: 'ex.size' must be a whole number, got True"),
        ({"rate": float("nan")}, "params.yaml: 'ex.rate' must be a finite number, got nan"),
        ({"mode": "c"}, "params.yaml: 'ex.mode' must be one of a, b, got 'c'"),
        ({"workers": "many"}, "params.yaml: 'ex.workers' must be a whole number or one of auto, got 'many'"),
        ({"grid": [1, "x"]}, "params.yaml: 'ex.grid' must be a list of finite numbers, got [1, 'x']"),
        ({"on": "yes"}, "params.yaml: 'ex.on' must be true or false, got 'yes'"),
        ({"name": "bad"}, "params.yaml: 'ex.name' may not be bad while on"),
        (
            {"sise": 1},
            "params.yaml: unknown key(s) ex.sise; valid keys: extra, grid, mode, name, on, rate, size, workers",
        ),
    ],
)
def test_bad_values_are_one_line_naming_the_key(values, message):
    with pytest.raises(UserError) as error:
        read_section(Example, values, "ex")
    assert str(error.value) == message


def test_the_source_file_is_named():
    with pytest.raises(UserError, match=r"^other.yaml: 'ex.size'"):
        read_section(Example, {"size": 0}, "ex", source="other.yaml")
    with pytest.raises(UserError, match="'ex' must be a mapping"):
        read_section(Example, [1, 2], "ex")


yaml_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
yaml_value = st.recursive(
    yaml_leaf,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)


@given(
    st.dictionaries(
        st.sampled_from(["size", "rate", "name", "on", "mode", "grid", "workers", "extra", "?"]), yaml_value, max_size=4
    )
)
def test_any_yaml_values_give_a_config_or_one_line(values):
    values = yaml.safe_load(yaml.safe_dump({"s": values}))["s"]
    try:
        parsed = read_section(Example, values, "ex")
    except UserError as error:
        assert "\n" not in str(error) and str(error).startswith("params.yaml: ")
    else:
        assert 32 <= parsed.size <= 1024 and 0.0 <= parsed.rate <= 1.0
