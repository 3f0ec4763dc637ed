"""End to end: the whole `dvc repro` (mirror → crawl → clean → split → segment → features → train → evaluate)
in a temporary copy of the repository on a small generated mirror; then a no-op re-run and a forced re-run
that must write identical bytes."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.schema import FEATURES_SCHEMA, PAIRS_SCHEMA, REJECTED_SCHEMA, SEGMENTED_SCHEMA, SPLITS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["crawler", "pipeline", "model", "data/lexicon", "dvc.yaml", "params.yaml", "scrapy.cfg",
                 ".dvc/config", ".dvc/.gitignore", ".gitignore"]
STAGES = ["sample_site", "crawl", "clean", "split", "segment", "features", "train", "evaluate"]
# Files whose bytes must be identical after a forced re-run (reviews.jsonl is compared without crawled_at).
DETERMINISTIC_OUTPUTS = [
    "data/clean/pairs.parquet", "data/clean/rejected.parquet",
    *[f"data/splits/{s}.parquet" for s in SPLITS], *[f"data/segmented/{s}.parquet" for s in SPLITS],
    "data/features/images.parquet", "metrics/clean.json", "metrics/split.json",
    "reports/predictions.parquet", "plots/train_curve.csv",
]


def _copy_project(dest: Path) -> None:
    for name in PROJECT_FILES:
        src = REPO / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, target)


def _small_params(path: Path) -> None:
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["sample"].update(products=3, reviews_per_product=12, seed=11)
    params["features"].update(weights="random", num_workers=0)
    params["train"].update(max_epochs=3, patience=2, batch_size=32)
    path.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(cwd), ZOL_CRAWLED_AT="2018-09-15T00:00:00Z")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _reviews_without_crawl_time(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        row.pop("crawled_at")
    return rows


@pytest.fixture(scope="module")
def repro_repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    _copy_project(root)
    _small_params(root / "params.yaml")
    _run(["git", "init", "-q"], root)
    _run(["dvc", "repro"], root)
    return root


def test_every_stage_ran_and_lock_written(repro_repo: Path) -> None:
    lock = yaml.safe_load((repro_repo / "dvc.lock").read_text(encoding="utf-8"))
    assert sorted(lock["stages"]) == sorted(STAGES)
    status = _run(["dvc", "status"], repro_repo)
    assert "up to date" in status.stdout


def test_crawl_matches_mirror_manifest(repro_repo: Path) -> None:
    manifest = json.loads((repro_repo / "data/sample_site/manifest.json").read_text(encoding="utf-8"))
    reviews = [json.loads(line) for line in (repro_repo / "data/raw/zol/reviews.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(r["review_id"] for r in reviews) == sorted(r["review_id"] for r in manifest["reviews"])
    expected = {r["review_id"]: r for r in manifest["reviews"]}
    for review in reviews:
        truth = expected[review["review_id"]]
        assert review["scores"] == pytest.approx(truth["scores"])
        assert len(review["image_urls"]) == truth["n_images"]


def test_parquet_outputs_follow_the_contracts(repro_repo: Path) -> None:
    def schema_of(rel: str):
        return pq.read_schema(repro_repo / rel).remove_metadata()

    assert schema_of("data/clean/pairs.parquet").equals(PAIRS_SCHEMA)
    assert schema_of("data/clean/rejected.parquet").equals(REJECTED_SCHEMA)
    review_sets = []
    for split in SPLITS:
        assert schema_of(f"data/splits/{split}.parquet").equals(PAIRS_SCHEMA)
        assert schema_of(f"data/segmented/{split}.parquet").equals(SEGMENTED_SCHEMA)
        frame = pq.read_table(repro_repo / f"data/segmented/{split}.parquet").to_pandas()
        assert len(frame) > 0
        assert frame["tokens"].map(len).min() > 0
        review_sets.append(set(frame["review_id"]))
    train, dev, test = review_sets
    assert not (train & dev or train & test or dev & test), "a review is in two splits"
    features = pq.read_table(repro_repo / "data/features/images.parquet")
    assert features.schema.remove_metadata().equals(FEATURES_SCHEMA)
    assert b"weights" in features.schema.metadata
    assert features.num_rows > 0 and all(features.column("ok").to_pylist())


def test_model_artefacts_and_metrics(repro_repo: Path) -> None:
    import torch

    checkpoint = torch.load(repro_repo / "models/mimn.pt", weights_only=True)
    assert {"model", "config", "vocab", "labels", "epoch", "metrics"} <= set(checkpoint)
    test_metrics = json.loads((repro_repo / "metrics/test.json").read_text(encoding="utf-8"))
    for key in ("accuracy", "macro_f1", "weighted_f1"):
        assert 0.0 <= test_metrics[key] <= 1.0
    for rel in ("reports/confusion.png", "reports/learning_curve.png", "reports/predictions.parquet"):
        assert (repro_repo / rel).stat().st_size > 0


def test_second_repro_does_nothing_and_forced_rerun_is_byte_identical(repro_repo: Path) -> None:
    before = {rel: _digest(repro_repo / rel) for rel in DETERMINISTIC_OUTPUTS}
    reviews_before = _reviews_without_crawl_time(repro_repo / "data/raw/zol/reviews.jsonl")
    idle = _run(["dvc", "repro"], repro_repo)
    assert "Running stage" not in idle.stdout
    _run(["dvc", "repro", "--force"], repro_repo)
    after = {rel: _digest(repro_repo / rel) for rel in DETERMINISTIC_OUTPUTS}
    assert after == before
    assert _reviews_without_crawl_time(repro_repo / "data/raw/zol/reviews.jsonl") == reviews_before
