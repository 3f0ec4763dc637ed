"""Multi-process training (torchrun + DDP, gloo on CPU): shares of the seeded batches, one process's path
untouched, and two real CPU processes that train, write only from rank 0 and leave a checkpoint that evaluates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import yaml
from test_model_synthetic import write_dataset
from torch.utils.data import DataLoader

from model import distributed, evaluate, train
from model.sampler import LengthBucketSampler

REPO = Path(__file__).resolve().parents[1]
# a tiny MIMN that learns the synthetic data's give-away sentiment word in a few epochs
LEARNABLE_PARAMS = {
    "model": {
        "variant": "mimn",
        "hops": 1,
        "embed_dim": 16,
        "hidden_dim": 16,
        "max_text_len": 320,
        "max_aspect_len": 4,
        "max_images": 5,
        "dropout": 0.1,
    },
    "embeddings": {"source": "random", "lr_scale": 1.0},
    "train": {
        "seed": 3,
        "classes": 10,
        "lr": 0.02,
        "batch_size": 32,
        "max_epochs": 6,
        "patience": 2,
        "class_weights": "none",
        "device": "cpu",
    },
}
# runs each rank of model.train with an audit hook that records the files it opens for writing or renames
AUDITED_TRAIN = """
import json, os, runpy, sys
root, written = os.getcwd(), []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, os.PathLike)) and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
        written.append(os.path.relpath(os.path.abspath(args[0]), root))
    elif event in ("os.rename", "os.replace"):
        written.append(os.path.relpath(os.path.abspath(args[1]), root))
sys.addaudithook(hook)
sys.argv = ["model.train", "--params", "params.yaml"]
try:
    runpy.run_module("model.train", run_name="__main__")
finally:
    mine = [w for w in written if not w.startswith("..") and not w.startswith("writes-")]
    with open(f"writes-{os.environ['RANK']}.json", "w") as handle:
        json.dump(mine, handle)
"""


@pytest.fixture
def torch_state():
    """torch's global settings (threads, deterministic mode) restored after a test that trains in-process."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    torch.utils.deterministic.fill_uninitialized_memory = fill


def batches_of(sampler) -> list[list[int]]:
    return [list(b) for b in sampler]


@pytest.mark.parametrize("n, batch_size, world", [(103, 8, 2), (100, 10, 3), (9, 4, 4), (1, 1, 2)])
def test_shards_are_disjoint_and_make_up_each_seeded_batch(n, batch_size, world):
    lengths = [int(x) for x in np.random.default_rng(0).integers(1, 50, n)]
    whole = batches_of(LengthBucketSampler(lengths, batch_size, seed=5, pool_batches=2))
    shares = [
        batches_of(
            distributed.ShardedBatchSampler(LengthBucketSampler(lengths, batch_size, seed=5, pool_batches=2), r, world)
        )
        for r in range(world)
    ]
    assert all(len(s) == len(whole) for s in shares)  # every rank takes the same number of steps
    for step, batch in enumerate(whole):
        parts = [s[step] for s in shares]
        assert all(parts)
        if len(batch) >= world:  # disjoint, and together exactly the batch
            assert sorted(i for p in parts for i in p) == sorted(batch)
        else:  # a batch smaller than the world: the ranks without a pair repeat one of its pairs
            assert set(i for p in parts for i in p) == set(batch)
    again = batches_of(
        distributed.ShardedBatchSampler(
            LengthBucketSampler(lengths, batch_size, seed=5, pool_batches=2), world - 1, world
        )
    )
    assert again == shares[-1]  # the same seed gives the same shares


def test_one_process_uses_nothing_of_ddp(tmp_path, monkeypatch):
    model = torch.nn.Linear(2, 2)
    loader = DataLoader(list(range(10)), batch_size=3)
    assert distributed.world_size() == 1 and distributed.is_main()
    assert distributed.wrap_model(model, torch.device("cpu"), 0) is model
    assert distributed.shard_loader(loader) is loader
    assert distributed.agree(0.25) == 0.25
    y = np.arange(4)
    assert distributed.gather_epoch(1.5, y, y) == (1.5, y, y)
    assert distributed.setup(torch.device("cpu"), 1) == torch.device("cpu") and not dist.is_initialized()
    state = {"module.w": torch.ones(1)}
    assert list(distributed.unwrap_state(state)) == ["w"] and distributed.unwrap_state({"w": 1}) == {"w": 1}


def _write_inputs(root: Path, params: dict) -> None:
    write_dataset(root, n_train=80, n_dev=20, n_test=20, text_len=(3, 12))
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")


def _env() -> dict:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "ZOL_TORCH_THREADS": "1",
    }


@pytest.mark.slow
def test_two_cpu_processes_train_write_from_rank_0_and_the_checkpoint_evaluates(tmp_path, monkeypatch, torch_state):
    _write_inputs(tmp_path, LEARNABLE_PARAMS)
    (tmp_path / "audited_train.py").write_text(AUDITED_TRAIN, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "audited_train.py"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("train: 400 train / 100 dev pairs") == 1  # printed by rank 0 alone

    rank0 = set(json.loads((tmp_path / "writes-0.json").read_text()))
    assert {"models/mimn.pt", "metrics/train.json", "reports/train_detail.json", "plots/train_curve.csv"} <= rank0
    assert json.loads((tmp_path / "writes-1.json").read_text()) == []  # rank 1 wrote nothing

    metrics = json.loads((tmp_path / "reports/train_detail.json").read_text())
    assert metrics["processes"] == 2 and metrics["train_pairs"] == 400
    assert metrics["dev"]["accuracy"] >= 0.8  # the majority class is ~0.1-0.2 of these 10 classes
    assert len((tmp_path / "plots/train_curve.csv").read_text().splitlines()) == metrics["epochs_run"] + 1

    monkeypatch.chdir(tmp_path)
    model, ckpt = evaluate.load_checkpoint("models/mimn.pt")  # rebuilt from the checkpoint alone
    assert ckpt["epoch"] == metrics["best_epoch"] and not any(k.startswith("module.") for k in ckpt["model"])
    assert evaluate.main(["--params", "params.yaml"]) == 0
    test = json.loads((tmp_path / "reports/test_detail.json").read_text())
    assert test["accuracy"] >= test["majority_baseline"]["accuracy"] + 0.5

    # one process on the same data and seed (nothing of DDP) reaches the same range
    single = train.run(yaml.safe_load((tmp_path / "params.yaml").read_text()), verbose=False)
    assert not dist.is_initialized() and "processes" not in single
    assert single["dev"]["accuracy"] >= 0.8 and abs(single["dev"]["accuracy"] - metrics["dev"]["accuracy"]) <= 0.15


@pytest.mark.slow
def test_train_nproc_param_runs_the_same_command_under_torchrun(tmp_path):
    params = {**LEARNABLE_PARAMS, "train": {**LEARNABLE_PARAMS["train"], "max_epochs": 1, "nproc": 2}}
    _write_inputs(tmp_path, params)
    proc = subprocess.run(
        [sys.executable, "-m", "model.train", "--params", "params.yaml"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "reports/train_detail.json").read_text())
    assert metrics["processes"] == 2 and metrics["epochs_run"] == 1
    assert torch.load(tmp_path / "models/mimn.pt", weights_only=True)["params"]["train"]["nproc"] == 2
