"""Every section of params.yaml is one frozen dataclass read through common.params.read_section, whose defaults are
exactly the shipped values (one home per default), and params.yaml holds no run-only setting."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from common.params import read_section, section_defaults
from crawler.params import CrawlParams
from model.settings import EmbeddingParams, ModelParams, TrainParams
from pipeline.clean import CleanParams
from pipeline.features.config import FeatureConfig
from pipeline.import_multizol import MultizolParams
from pipeline.paths import DataParams
from pipeline.segment import SegmentParams
from pipeline.split import SplitParams
from sitegen.mirror import SampleParams
from tools.paper_grid import PaperParams

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
SECTIONS = {
    "sample": SampleParams,
    "crawl": CrawlParams,
    "multizol": MultizolParams,
    "data": DataParams,
    "clean": CleanParams,
    "split": SplitParams,
    "segment": SegmentParams,
    "features": FeatureConfig,
    "model": ModelParams,
    "embeddings": EmbeddingParams,
    "train": TrainParams,
    "paper": PaperParams,
}
# how a run goes, never what it writes: command-line options and environment variables (README, "Where settings live")
RUN_ONLY = {"backend", "redis_url", "redis_key", "workers", "processes", "num_workers", "num_threads"}


def test_every_section_has_its_dataclass() -> None:
    assert set(PARAMS) == set(SECTIONS)


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_defaults_are_the_shipped_values(section: str) -> None:
    cls = SECTIONS[section]
    assert cls.__dataclass_params__.frozen
    assert section_defaults(cls) == PARAMS[section]
    assert read_section(cls, PARAMS[section], section) == cls()


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_no_run_only_setting_in_params(section: str) -> None:
    assert RUN_ONLY.isdisjoint(f.name for f in fields(SECTIONS[section]))
