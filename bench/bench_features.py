"""Benchmark: images/s of feature extraction on CPU at 224, our batched DataLoader vs one image at a time.

One image at a time without batching is how the public reference code featurises (open, transform,
forward a batch of 1). Both paths use the same random-init ResNet-50 and the same generated JPEGs.

    .venv/bin/python bench/bench_features.py [--images 40] [--size 224]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.backbone import random_backbone  # noqa: E402
from pipeline.features import extract  # noqa: E402
from pipeline.imaging import IMAGENET_MEAN, IMAGENET_STD, Preprocessing  # noqa: E402
from common.atomic import write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "features.json"


def generate_images(folder: Path, count: int) -> list[Path]:
    """Phone-photo-like JPEGs (640x480, smooth gradients plus noise)."""
    rng = np.random.default_rng(0)
    paths = []
    yy, xx = np.mgrid[0:480, 0:640]
    for i in range(count):
        base = np.stack([(xx * (i + 1)) % 256, (yy * 3 + i * 7) % 256, (xx + yy) // 5 % 256], axis=-1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"img_{i:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def one_at_a_time(model: torch.nn.Module, paths: list[Path], size: int) -> np.ndarray:
    transform = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(),
                                    transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    out = []
    with torch.inference_mode():
        for path in paths:
            pixels = transform(Image.open(path).convert("RGB")).unsqueeze(0)
            out.append(model(pixels)[0].numpy())
    return np.stack(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; speedup = median ratio")
    args = parser.parse_args()

    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    model = random_backbone(0).model
    with torch.inference_mode():  # warm-up: first-call allocations are not part of either figure
        model(torch.zeros(2, 3, args.size, args.size))
    with tempfile.TemporaryDirectory() as tmp:
        paths = generate_images(Path(tmp), args.images)

        # alternate the two methods so that load from other processes hits both alike
        single_s, batched_s = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            single = one_at_a_time(model, paths, args.size)
            single_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            batched, errors, _ = extract(model, paths, Preprocessing(args.size, 40_000_000),
                                         args.batch_size, args.workers, torch.device("cpu"), "fp32")
            batched_s.append(time.perf_counter() - started)
    # the ratio within a round compares adjacent measurements: the figure most robust to outside load
    round_ratios = [round(s / b, 2) for s, b in zip(single_s, batched_s)]
    single_s, batched_s = min(single_s), min(batched_s)
    assert not errors, errors

    results = {
        "images": args.images,
        "image_size": args.size,
        "torch_threads": threads,
        "rounds": args.rounds,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "batched": {"batch_size": args.batch_size, "num_workers": args.workers,
                    "seconds": round(batched_s, 2), "images_per_s": round(args.images / batched_s, 2)},
        "one_at_a_time": {"seconds": round(single_s, 2), "images_per_s": round(args.images / single_s, 2)},
        "speedup_per_round": round_ratios,
        "speedup": float(np.median(round_ratios)),
        "feature_cosine_batched_vs_single_mean": round(float(np.mean(
            (batched * single).sum(1) / np.linalg.norm(batched, axis=1) / np.linalg.norm(single, axis=1))), 4),
    }
    write_json(results, RESULTS)
    print(f"features on CPU ({threads} threads, {args.images} images at {args.size}): batched "
          f"{results['batched']['images_per_s']} img/s vs one at a time {results['one_at_a_time']['images_per_s']} "
          f"img/s (best rounds); speedup x{results['speedup']} (median of rounds {round_ratios}); written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
