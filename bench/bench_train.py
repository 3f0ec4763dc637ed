"""Benchmark: MIMN training and inference throughput on CPU (full-size model, synthetic data).

(1) batches of 128 pairs at the maximum text length L = 320 with K = 5 images (the worst case);
(2) one epoch over a sample-sized training split (default 1,100 pairs, texts of 40-120 tokens, 0-5 images),
    which is what `train.max_epochs` is sized from. Peak memory is the process's max RSS.

    .venv/bin/python bench/bench_train.py [--steps 3] [--pairs 1100] [--threads 0]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.atomic import write_json  # noqa: E402
from model.config import MIMNConfig  # noqa: E402
from model.data import batch_inputs  # noqa: E402
from model.loop import train_epoch  # noqa: E402
from model.mimn import MIMN  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "train.json"
VOCAB = 20_000


def synthetic_batch(g: torch.Generator, size: int, min_len: int, max_len: int, max_images: int):
    text = [
        torch.randint(2, VOCAB, (int(n),), generator=g)
        for n in torch.randint(min_len, max_len + 1, (size,), generator=g)
    ]
    aspect = [torch.randint(2, VOCAB, (int(n),), generator=g) for n in torch.randint(1, 5, (size,), generator=g)]
    images = [
        torch.randn(int(k), 2048, generator=g)
        for k in torch.randint(max_images if min_len == max_len else 0, max_images + 1, (size,), generator=g)
    ]
    return batch_inputs(text, aspect, images, 2048), torch.randint(0, 10, (size,), generator=g)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed training steps at L = 320")
    parser.add_argument("--pairs", type=int, default=1100, help="pairs in the sample-sized epoch")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    torch.use_deterministic_algorithms(True)  # as model.train on CPU
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = MIMN(MIMNConfig(vocab_size=VOCAB, num_classes=10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    batch_size = 128

    full = [synthetic_batch(g, batch_size, 320, 320, 5) for _ in range(args.steps + 1)]
    model.train()
    timings = []
    for inputs, targets in full:
        tick = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(model(**inputs), targets).backward()
        optimizer.step()
        timings.append(time.perf_counter() - tick)
    train_full = batch_size * args.steps / sum(timings[1:])  # first step is warm-up
    model.eval()
    with torch.no_grad():
        tick = time.perf_counter()
        for inputs, _ in full[1:]:
            model(**inputs)
        infer_full = batch_size * args.steps / (time.perf_counter() - tick)

    sample = [synthetic_batch(g, min(batch_size, args.pairs - i), 40, 120, 5) for i in range(0, args.pairs, batch_size)]
    with tqdm(total=args.pairs, unit="pair", desc="sample epoch") as bar:
        tick, cpu_tick = time.perf_counter(), time.process_time()
        train_epoch(model, loss_fn, optimizer, sample, torch.device("cpu"), bar)
        epoch_seconds, epoch_cpu = time.perf_counter() - tick, time.process_time() - cpu_tick
    results = {
        "threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_pairs_per_second_L320": round(train_full, 1),
        "inference_pairs_per_second_L320": round(infer_full, 1),
        "sample_epoch_pairs": args.pairs,
        "sample_epoch_seconds": round(epoch_seconds, 2),
        "sample_train_pairs_per_second": round(args.pairs / epoch_seconds, 1),
        "sample_epoch_cpu_seconds": round(epoch_cpu, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    for key, value in results.items():
        print(f"{key}: {value}")
    write_json(results, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
