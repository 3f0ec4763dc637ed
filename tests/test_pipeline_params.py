"""The data stages' params sections: one frozen dataclass each, whose defaults are params.yaml's values (one home
for each default), and no run-only setting among them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from common.params import read_section, section_defaults
from pipeline.clean import CleanParams
from pipeline.features import FeatureConfig
from pipeline.imaging import Preprocessing
from pipeline.import_multizol import MultizolParams
from pipeline.paths import DataParams
from pipeline.segment import SegmentParams
from pipeline.split import SplitParams

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
SECTIONS = [
    (MultizolParams, "multizol"),
    (DataParams, "data"),
    (CleanParams, "clean"),
    (SplitParams, "split"),
    (SegmentParams, "segment"),
    (FeatureConfig, "features"),
]


@pytest.mark.parametrize("cls, section", SECTIONS)
def test_defaults_are_the_shipped_params(cls, section):
    assert section_defaults(cls) == PARAMS[section]
    assert read_section(cls, PARAMS[section], section) == cls()


def test_clean_decodes_images_with_the_features_settings():
    assert Preprocessing() == FeatureConfig().preprocessing
    assert {k: PARAMS["features"][k] for k in section_defaults(Preprocessing)} == section_defaults(Preprocessing)


def test_how_to_run_is_no_param():
    """Process counts change no output: they are command-line options (docs/pipeline.md), not params."""
    assert "processes" not in PARAMS["segment"] and "num_workers" not in PARAMS["features"]
