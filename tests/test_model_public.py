"""MIMN with the default params on the real Multi-ZOL public text (Train/Dev to fit and select, Test to score),
against the majority class and the linear baseline. Skipped where the data is absent (MULTIZOL_PUBLIC, default
<repo>/../shared/data/multizol-public). The pipeline runs once per session through `dvc repro`, one seed (42) and
one torch thread (as docs/model-tuning.md measured it); every other setting is params.yaml's (the wide path started
as the fitted linear baseline, balanced class weights, 8 epochs). test_multizol_e2e.py checks the chain on the same
run (the session fixture `public_release_run` of conftest.py, tests/multizol_support.py). `MULTIZOL_TEST_EPOCHS`
caps the epochs for a quicker look.

Measured (docs/results.md): seed 42 reaches 0.461 / 0.347 / 0.467 against the majority class's 0.467 / 0.127 / 0.298
and the linear baseline's 0.481 / 0.331 / 0.482 (0.472 / 0.349 / 0.475 before the training step's dropout draws
changed); over twelve seed runs the accuracy ranged 0.427 to 0.481."""

from __future__ import annotations

import json

import pytest
from multizol_support import PUBLIC_RUN_TIMEOUT_S, RELEASE, release_present

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(PUBLIC_RUN_TIMEOUT_S),
    pytest.mark.skipif(not release_present(), reason=f"{RELEASE} not present"),
]


@pytest.fixture(scope="module")
def public_metrics(public_release_run) -> dict:
    """reports/test_detail.json of the default MIMN trained on the public part's Train, selected on its Dev."""
    root, _ = public_release_run
    metrics = json.loads((root / "reports/test_detail.json").read_text(encoding="utf-8"))
    assert metrics["pairs"] > 400 and metrics["family"] == "mimn"
    return metrics


def test_default_mimn_beats_the_majority_class_on_macro_and_weighted_f1(public_metrics):
    majority = public_metrics["majority_baseline"]
    assert public_metrics["macro_f1"] > majority["macro_f1"] + 0.1
    assert public_metrics["weighted_f1"] > majority["weighted_f1"] + 0.1


def test_default_mimn_stays_near_the_majority_class_on_accuracy(public_metrics):
    """The balanced class weights trade accuracy for the F1s: the default's accuracy sits around the majority
    class's (above it on some seeds, up to 4 points below on others; docs/results.md), never far below."""
    assert public_metrics["accuracy"] > public_metrics["majority_baseline"]["accuracy"] - 0.05


def test_default_mimn_beats_the_linear_baseline_on_macro_f1(public_metrics):
    assert public_metrics["macro_f1"] > public_metrics["linear_baseline"]["macro_f1"]
