"""The features stage's speed-ups keep its results: bf16 autocast against fp32 on the real ResNet-50 code path,
and shards computed by separate processes merge into the bytes of a single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_features import CONFIG, IMAGES, encoded, write_splits

from pipeline.features import FeatureConfig, features_metadata, read_features, resolve_precision, run_features
from pipeline.features.device import cpu_flags, cpu_has_native_bf16
from pipeline.features.shards import shard_batches

REPO = Path(__file__).resolve().parents[1]


def run(root: Path, config: FeatureConfig, out: str = "images.parquet", cache: str = "cache.parquet") -> dict:
    features = root / "data" / "features"
    return run_features(
        config,
        root / "data" / "splits",
        features / out,
        features / cache,
        root / "metrics" / "features.json",
        root=root,
        shard_dir=features / "shards",
        log_dir=root / "logs",
        detail_path=root / "reports" / "features_detail.json",
    )


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """7 distinct photo-like JPEGs at the stage's real 224 input size, plus an undecodable file."""
    images = tmp_path / IMAGES
    images.mkdir(parents=True)
    for i in range(7):
        yy, xx = np.mgrid[0:240, 0:320]
        base = np.stack([(xx * (i + 1)) % 256, (yy * 3 + i * 7) % 256, (xx + yy) // 5 % 256], axis=-1)
        pixels = np.clip(base + np.random.default_rng(i).normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        from PIL import Image

        (images / f"p{i}.jpg").write_bytes(encoded(Image.fromarray(pixels), "JPEG"))
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    write_splits(
        tmp_path,
        {
            "train": {"r1": ["p0.jpg", "p1.jpg", "broken.jpg"], "r2": ["p2.jpg", "p3.jpg"]},
            "dev": {"r3": ["p4.jpg"]},
            "test": {"r4": ["p5.jpg", "p6.jpg", "p0.jpg"]},
        },
    )
    return tmp_path


def test_bf16_features_match_fp32_and_never_share_the_cache(photos: Path):
    """cosine >= 0.999 per image at 224 with a (random-init) ResNet-50: the stage's own path, weights aside."""
    config = replace(CONFIG, image_size=224, max_image_pixels=40_000_000, batch_size=4)
    fp32 = run(photos, replace(config, precision="fp32"), out="fp32.parquet")
    bf16 = run(photos, replace(config, precision="bf16"), out="bf16.parquet")
    assert (fp32["computed"], bf16["computed"]) == (7, 7)  # different cache keys: nothing reused
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16-autocast")
    assert fp32["fingerprint"] != bf16["fingerprint"]
    features = photos / "data/features"
    assert features_metadata(features / "bf16.parquet")["precision"] == "bf16-autocast"
    paths, a, ok = read_features(features / "fp32.parquet")
    paths_b, b, ok_b = read_features(features / "bf16.parquet")
    assert paths == paths_b and ok.sum() == 7 and np.array_equal(ok, ok_b)
    cosine = (a[ok] * b[ok]).sum(1) / np.linalg.norm(a[ok], axis=1) / np.linalg.norm(b[ok], axis=1)
    assert cosine.min() >= 0.999, cosine
    assert not np.array_equal(a[ok], b[ok])  # it really ran in bf16
    again = run(photos, replace(config, precision="fp32"), out="fp32.parquet")
    assert (again["computed"], again["reused_from_cache"]) == (0, 7)


def test_precision_auto_follows_the_cpu(monkeypatch):
    assert cpu_flags("processor: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n") >= {"avx512_bf16", "avx2"}
    assert cpu_flags("Features\t: fp asimd bf16\n") == {"fp", "asimd", "bf16"}
    assert cpu_has_native_bf16({"avx2", "amx_bf16"}) and not cpu_has_native_bf16({"avx2", "avx512f"})
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16-autocast"
    monkeypatch.setattr("pipeline.features.device.cpu_flags", lambda: {"avx2"})
    assert resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr("pipeline.features.device.cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert resolve_precision("auto", cpu) == "bf16-autocast"


def test_shards_take_whole_batches_round_robin():
    assert shard_batches(7, 2, None) == [[0, 1], [2, 3], [4, 5], [6]]
    assert shard_batches(7, 2, (0, 2)) == [[0, 1], [4, 5]] and shard_batches(7, 2, (1, 2)) == [[2, 3], [6]]
    assert shard_batches(2, 2, (1, 3)) == []


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_two_shard_processes_merge_into_the_single_process_bytes(photos: Path, precision: str):
    features = photos / "data/features"
    params = photos / "params.yaml"
    params.write_text(
        "features:\n  weights: random\n  image_size: 64\n  batch_size: 2\n"
        f"  device: cpu\n  max_image_pixels: 100000\n  seed: 0\n  download_timeout_s: 1\n"
        f"  precision: {precision}\n"
    )
    single = replace(CONFIG, image_size=64, batch_size=2, max_image_pixels=100_000, precision=precision)
    run(photos, single, out="single.parquet", cache="single_cache.parquet")

    args = [
        "--params",
        str(params),
        "--splits",
        str(photos / "data/splits"),
        "--root",
        str(photos),
        "--out",
        str(features / "sharded.parquet"),
        "--cache",
        str(features / "cache.parquet"),
        "--metrics",
        str(photos / "metrics/sharded.json"),
        "--detail",
        str(photos / "reports/sharded.json"),
        "--shard-dir",
        str(features / "shards"),
        "--log-dir",
        str(photos / "logs"),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline.features", *args, "--shard", f"{i}/2"],
            cwd=photos,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for worker in workers:
        assert worker.wait(timeout=300) == 0, worker.stderr.read()
    logs = [json.loads((photos / f"logs/features-shard-{i}-of-2.json").read_text()) for i in range(2)]
    # 8 contents in path order, batches of 2: [broken p0] [p1 p2] [p3 p4] [p5 p6] -> shard 0: 1st and 3rd
    assert [(log["to_compute"], log["computed"], log["decode_failed"]) for log in logs] == [(8, 3, 1), (8, 4, 0)]
    assert not (features / "sharded.parquet").exists()  # a shard writes its shard file only
    assert sorted(p.name for p in (features / "shards").iterdir()) == [
        "shard-0000-of-0002.parquet",
        "shard-0001-of-0002.parquet",
    ]

    assert main_merge(args) == 0
    merged = json.loads((photos / "reports/sharded.json").read_text())
    assert (merged["merged_from_shards"], merged["computed"], merged["images_ok"]) == (7, 0, 7)
    assert (features / "sharded.parquet").read_bytes() == (features / "single.parquet").read_bytes()
    assert (features / "cache.parquet").read_bytes() == (features / "single_cache.parquet").read_bytes()
    assert not list((features / "shards").iterdir())  # merged shard files are removed


def main_merge(args: list[str]) -> int:
    from pipeline.features import main

    return main(args)


def test_torchrun_ranks_compute_their_shards_and_rank_0_merges(photos: Path):
    """The same entry point under torchrun (2 CPU processes, gloo) writes the single-process bytes."""
    features = photos / "data/features"
    params = photos / "params.yaml"
    params.write_text(
        "features:\n  weights: random\n  image_size: 64\n  batch_size: 2\n"
        "  device: cpu\n  max_image_pixels: 100000\n  seed: 0\n  download_timeout_s: 1\n"
        "  precision: bf16\n"
    )
    run(
        photos,
        replace(CONFIG, image_size=64, batch_size=2, max_image_pixels=100_000, precision="bf16"),
        out="single.parquet",
        cache="single_cache.parquet",
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "pipeline.features",
            "--params",
            str(params),
            "--splits",
            str(photos / "data/splits"),
            "--root",
            str(photos),
            "--out",
            str(features / "images.parquet"),
            "--cache",
            str(features / "cache.parquet"),
            "--metrics",
            str(photos / "metrics/features.json"),
            "--shard-dir",
            str(features / "shards"),
            "--log-dir",
            str(photos / "logs"),
        ],
        cwd=photos,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((photos / "reports/features_detail.json").read_text())["merged_from_shards"] == 7  # the default
    assert (features / "images.parquet").read_bytes() == (features / "single.parquet").read_bytes()
    assert (features / "cache.parquet").read_bytes() == (features / "single_cache.parquet").read_bytes()
