"""Property: any values for the keys of the `features` and `clean` params sections give a valid configuration or
one line naming the key (UserError); never a traceback (Hypothesis, the project's deterministic profile)."""

from __future__ import annotations

import math
import typing

import yaml
from hypothesis import given
from hypothesis import strategies as st

from common.errors import UserError
from common.params import IMAGE_SIZE_RANGE, read_section
from pipeline.clean import CleanParams
from pipeline.features import FeatureConfig
from pipeline.imaging import read_preprocessing

PRECISIONS = typing.get_args(typing.get_type_hints(FeatureConfig)["precision"])
# what a YAML file can hold, plus the values of the real params file
yaml_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from([0, -1, 1, 32, 224, 1024, 1025, 100_000, "auto", "cpu", "cuda", "fp32", "bf16", "random"])
)
yaml_value = st.recursive(
    yaml_leaf,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)
GOOD_FEATURES = {
    "weights": "random",
    "image_size": 224,
    "batch_size": 16,
    "device": "cpu",
    "max_image_pixels": 40_000_000,
    "seed": 0,
    "download_timeout_s": 20,
    "precision": "auto",
}
GOOD_CLEAN = {"require_image": True, "min_text_chars": 5, "dedupe_same_text": True}


def _section(good: dict, changes: dict, dropped: list[str]) -> dict:
    """The good section with some keys changed or dropped, through YAML as DVC and load_params read it."""
    section = {k: changes.get(k, v) for k, v in good.items() if k not in dropped}
    return yaml.safe_load(yaml.safe_dump({"s": section}, allow_unicode=True))["s"]


def _one_line(error: UserError, section: str) -> None:
    message = str(error)
    assert "\n" not in message and message.startswith("params.yaml: ") and f"{section}." in message, message


@given(
    st.dictionaries(st.sampled_from(sorted(GOOD_FEATURES)), yaml_value, max_size=4),
    st.lists(st.sampled_from(sorted(GOOD_FEATURES)), max_size=1),
)
def test_features_section_is_a_valid_config_or_one_line(changes, dropped):
    try:
        config = read_section(FeatureConfig, _section(GOOD_FEATURES, changes, dropped), "features")
    except UserError as error:
        _one_line(error, "features")
        return
    assert IMAGE_SIZE_RANGE[0] <= config.image_size <= IMAGE_SIZE_RANGE[1]
    assert config.batch_size >= 1 and config.max_image_pixels >= 1
    assert config.precision in PRECISIONS and config.device in ("auto", "cpu", "cuda")
    assert math.isfinite(config.download_timeout_s) and config.download_timeout_s > 0


@given(
    st.dictionaries(st.sampled_from(sorted(GOOD_CLEAN)), yaml_value, max_size=3),
    st.dictionaries(st.sampled_from(["image_size", "max_image_pixels"]), yaml_value, max_size=2),
    st.lists(st.sampled_from(sorted(GOOD_CLEAN)), max_size=1),
)
def test_clean_section_is_a_valid_config_or_one_line(changes, feature_changes, dropped):
    features = _section({**GOOD_FEATURES, "image_size": 224, "max_image_pixels": 40_000_000}, feature_changes, [])
    try:
        params = read_section(CleanParams, _section(GOOD_CLEAN, changes, dropped), "clean")
        images = read_preprocessing(features)
    except UserError as error:
        _one_line(error, "clean" if "clean." in str(error) else "features")
        return
    assert isinstance(params.require_image, bool) and isinstance(params.dedupe_same_text, bool)
    assert isinstance(params.min_text_chars, int)
    assert IMAGE_SIZE_RANGE[0] <= images.image_size <= IMAGE_SIZE_RANGE[1]
    assert images.max_image_pixels >= 1
