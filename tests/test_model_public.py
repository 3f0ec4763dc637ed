"""MIMN with the default params on the real Multi-ZOL public text (Train/Dev to fit and select, Test to score):
better than the majority class on accuracy and macro-F1. Skipped where the data is absent (MULTIZOL_PUBLIC,
default <repo>/../shared/data/multizol-public). To fit a CI budget on 2 CPU cores the test trains for at most
`MULTIZOL_TEST_EPOCHS` epochs (default 6) and one seed; every other setting is params.yaml's."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.schema import FEATURES_SCHEMA

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PUBLIC = Path(os.environ.get("MULTIZOL_PUBLIC", REPO.parent / "shared/data/multizol-public"))
EPOCHS = int(os.environ.get("MULTIZOL_TEST_EPOCHS", "6"))


def _run(args: list[str], cwd: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.mark.skipif(not (PUBLIC / "zol_Train_jieba.txt").is_file(), reason=f"{PUBLIC} not present")
def test_default_mimn_beats_the_majority_class_on_public_test(tmp_path):
    shutil.copytree(REPO / "data/lexicon", tmp_path / "data/lexicon")
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["raw"] = "data/raw/multizol"
    params["clean"]["require_image"] = False
    params["split"]["method"] = "predefined"
    params["train"]["max_epochs"] = min(params["train"]["max_epochs"], EPOCHS)
    params["train"]["repeats"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    _run(["pipeline.import_multizol", "--release", str(PUBLIC), "--out", "data/raw/multizol"], tmp_path)
    for stage in ("pipeline.clean", "pipeline.split", "pipeline.segment"):
        _run([stage], tmp_path)
    (tmp_path / "data/features").mkdir(parents=True)
    pq.write_table(FEATURES_SCHEMA.empty_table(), tmp_path / "data/features/images.parquet")  # text only
    _run(["model.train"], tmp_path)
    _run(["model.evaluate"], tmp_path)
    metrics = json.loads((tmp_path / "metrics/test.json").read_text(encoding="utf-8"))
    majority = metrics["majority_baseline"]
    assert metrics["pairs"] > 400
    assert metrics["accuracy"] > majority["accuracy"]
    assert metrics["macro_f1"] > majority["macro_f1"]
