"""Benchmark: MIMN training pairs/s with 1 and 2 processes (torchrun + DDP, gloo) on a sample-sized split.

`python -m model.train` itself runs on synthetic splits of sample size (default 1,100 train pairs of 40-120
tokens drawn from a 20,000-word vocabulary, so the word-vector gradient that DDP all-reduces has its real size;
random word vectors, the shipped model sizes, batch 128). Reported: the stage's own `train_pairs_per_second`
(training steps only, every rank's pairs) for 1 process with all cores, 1 process with 1 thread, and 2
processes with 1 thread each; and the time of one gloo all-reduce of a gradient as large as the model.

    .venv/bin/python bench/bench_train_ddp.py [--pairs 1100] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the tests' synthetic split writer
from test_model_synthetic import write_dataset  # noqa: E402

from common.atomic import write_json  # noqa: E402
from pipeline.io import write_frame  # noqa: E402
from pipeline.schema import SEGMENTED_SCHEMA  # noqa: E402

RESULTS = REPO / "bench" / "results" / "train_ddp.json"
VOCAB = 20_000
PAIRS_PER_REVIEW = 5


def write_inputs(root: Path, pairs: int, epochs: int) -> None:
    write_dataset(root, n_train=pairs // PAIRS_PER_REVIEW, n_dev=20, n_test=4, text_len=(40, 120))
    rng = np.random.default_rng(0)
    for split in ("train", "dev", "test"):  # words from a 20k vocabulary instead of the 20 test words
        path = root / "data" / "segmented" / f"{split}.parquet"
        frame = pd.read_parquet(path)
        frame["tokens"] = [[f"w{int(i)}" for i in rng.integers(0, VOCAB, len(t))] for t in frame["tokens"]]
        write_frame(frame, path, SEGMENTED_SCHEMA)
    params = {
        "model": {},
        "embeddings": {"source": "random"},
        "train": {"seed": 1, "max_epochs": epochs, "patience": epochs, "device": "cpu"},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")


def run_train(root: Path, processes: int, threads: int) -> dict:
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
        if processes > 1
        else [sys.executable]
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "ZOL_TORCH_THREADS": str(threads)}  # 0: cores / processes
    tick = time.perf_counter()
    proc = subprocess.run([*launcher, "-m", "model.train"], cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"model.train failed ({proc.returncode}): {proc.stderr[-2000:]}")
    timings = json.loads((root / "logs" / "train.json").read_text())  # the run log: timings
    detail = json.loads((root / "reports" / "train_detail.json").read_text())  # the stage's full figures
    return {
        "processes": processes,
        "threads_per_process": threads or os.cpu_count(),
        "train_pairs_per_second": timings["train_pairs_per_second"],
        "train_seconds": timings["train_seconds"],
        "wall_seconds": round(time.perf_counter() - tick, 1),
        "parameters": detail["parameters"],
    }


def allreduce_worker(numel: int, rounds: int) -> None:
    """Run under torchrun: time an all-reduce of `numel` float32 (what DDP sums per step, in buckets)."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    grad = torch.ones(numel)
    dist.all_reduce(grad)  # warm-up
    dist.barrier()
    tick = time.perf_counter()
    for _ in range(rounds):
        dist.all_reduce(grad)
    seconds = (time.perf_counter() - tick) / rounds
    if dist.get_rank() == 0:
        print(json.dumps({"numel": numel, "mib": round(numel * 4 / 2**20, 1), "seconds": round(seconds, 4)}))
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1100, help="training pairs (5 per synthetic review)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--allreduce-worker", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.allreduce_worker:
        allreduce_worker(args.allreduce_worker, 5)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_inputs(root, args.pairs, args.epochs)
        runs = [run_train(root, 1, 0), run_train(root, 1, 1), run_train(root, 2, 1)]
    numel = runs[0]["parameters"]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            __file__,
            "--allreduce-worker",
            str(numel),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    allreduce = json.loads(out.stdout.strip().splitlines()[-1])
    results = {
        "cpu_cores": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "train_pairs": args.pairs,
        "epochs": args.epochs,
        "vocabulary": VOCAB,
        "runs": runs,
        "speedup_2_processes_vs_1_process_1_thread": round(
            runs[2]["train_pairs_per_second"] / runs[1]["train_pairs_per_second"], 2
        ),
        "speedup_2_processes_vs_1_process_all_cores": round(
            runs[2]["train_pairs_per_second"] / runs[0]["train_pairs_per_second"], 2
        ),
        "gloo_allreduce_2_processes": allreduce,
    }
    print(json.dumps(results, indent=2))
    write_json(results, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
