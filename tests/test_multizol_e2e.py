"""End to end on real data: the public part of the Multi-ZOL release (text only) through `dvc repro` in a temporary
copy of the repository, with the default model and training (the run test_model_public.py scores, shared through
the session fixture `public_release_run` of conftest.py, tests/multizol_support.py). Skipped where the data folder
is absent (env var MULTIZOL_PUBLIC, default <repo>/../shared/data/multizol-public)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from multizol_support import PUBLIC_RUN_TIMEOUT_S
from test_pipeline_e2e import _run

from pipeline.schema import FEATURES_SCHEMA, SEGMENTED_SCHEMA, SPLITS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(PUBLIC_RUN_TIMEOUT_S)]


def _metrics(root: Path, name: str) -> dict:
    """A stage's full counts (metrics/<name>.json holds its headline only); the import's are reports/import.json."""
    path = root / "reports" / ("import.json" if name == "import" else f"{name}_detail.json")
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_release_runs_without_the_sample_site_or_the_crawl(public_release_run):
    root, log = public_release_run
    ran = [line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage")]
    assert ran == ["sources/multizol/dvc.yaml:import", "clean", "split", "segment", "features", "train", "evaluate"]
    assert not (root / "data/sample_site").exists() and not (root / "data/raw/zol").exists()
    assert "Running stage" not in _run(["dvc", "repro"], root).stdout


def test_every_pair_accounted_for(public_release_run):
    root, _ = public_release_run
    imported, cleaned, split = _metrics(root, "import"), _metrics(root, "clean"), _metrics(root, "split")
    duplicates = imported["duplicate_pairs"]
    assert duplicates["dropped"] > 0 and duplicates["dropped"] == duplicates["dropped_same_score"]
    assert imported["reviews_with_image"] == 0 and cleaned["text_only_reviews_out"] == cleaned["reviews_out"]
    assert cleaned["records_in"] == imported["reviews"]
    rejected = pq.read_table(root / "data/clean/rejected.parquet").to_pylist()
    assert {r["reason"] for r in rejected} <= {"no_text"}  # real release lines are all well-formed
    pairs_of_dropped_records = sum(len(json.loads(r["raw"])["scores"]) for r in rejected if r["aspect"] is None)
    pairs_dropped = sum(1 for r in rejected if r["aspect"] is not None)
    assert cleaned["pairs_out"] + pairs_of_dropped_records + pairs_dropped == imported["pairs"]  # nothing lost
    assert sum(m["pairs"] for m in split["splits"].values()) == cleaned["pairs_out"]
    assert split["overlap"]["reviews_in_several_splits"] == 0  # the public part is split by review


def test_presegmented_words_kept_and_counted(public_release_run):
    root, _ = public_release_run
    segmented = _metrics(root, "segment")
    for name in SPLITS:
        counts = segmented["splits"][name]
        assert counts["jieba"]["rows"] == 0 and counts["presegmented"]["rows"] > 0
        assert counts["presegmented"]["tokens"] == counts["presegmented"]["words"] > 0
    train = pq.read_table(root / "data/segmented/train.parquet")
    assert train.schema.remove_metadata() == SEGMENTED_SCHEMA
    assert all(train.column("presegmented").to_pylist())


def test_text_only_features_and_a_model_that_learns(public_release_run):
    root, _ = public_release_run
    features = pq.read_table(root / "data/features/images.parquet")
    assert features.num_rows == 0 and features.schema.remove_metadata() == FEATURES_SCHEMA
    assert (root / "data/features/cache.parquet").is_file()
    test = _metrics(root, "test")
    assert test["pairs_without_usable_image"] == test["pairs"]
    # the chain learns: above the majority class in macro-F1 (tests/test_model_public.py holds the default model to
    # its measured margins over the majority class and the linear baseline on the same run)
    assert test["macro_f1"] > test["majority_baseline"]["macro_f1"] + 0.01
