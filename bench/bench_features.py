"""Benchmark: the features stage's CPU path end to end (decode included) against one image at a time in fp32.

One image at a time in fp32 is how the public reference code featurises (PIL open, torchvision transforms,
forward a batch of 1, NCHW). The stage's path is `pipeline.features` as params.yaml configures it
(channels-last, bf16 autocast where the CPU has native bf16, batches, decode workers). Both use the same
random-init ResNet-50 and the same generated 640x480 JPEGs. Every measurement runs in a fresh process, so its
peak RSS is its own; the two methods alternate within each round so that outside load hits both alike, and
the speed-up is the median of the per-round ratios. The same run also measures the choices behind the
defaults: PIL against torchvision.io.decode_jpeg, decode workers against the core count, batch size, fp32.

    .venv/bin/python bench/bench_features.py [--images 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.quiet import measured_child, run_commit  # noqa: E402
from common.atomic import write_json  # noqa: E402
from pipeline.features.extraction import DECODE_THREADS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "features.json"
SIZE = 224


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


# ---- one measurement, in its own process ----


def one_at_a_time_fp32(model, paths: list[Path]) -> None:
    import torch
    from torchvision import transforms

    from pipeline.imaging import IMAGENET_MEAN, IMAGENET_STD

    transform = transforms.Compose(
        [transforms.Resize((SIZE, SIZE)), transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    with torch.inference_mode():
        for path in paths:
            model(transform(Image.open(path).convert("RGB")).unsqueeze(0))


def decode_torchvision(paths: list[Path]) -> None:
    """torchvision.io.decode_jpeg (libjpeg-turbo, full resolution) + antialiased resize + normalisation."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg, read_file
    from torchvision.transforms.v2 import functional as F

    from pipeline.imaging import IMAGENET_MEAN, IMAGENET_STD

    for path in paths:
        image = decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB)
        image = F.resize(image, [SIZE, SIZE], antialias=True)
        F.normalize(image.to(torch.float32) / 255.0, IMAGENET_MEAN, IMAGENET_STD)


def measure(args: argparse.Namespace) -> dict:
    import torch

    from common.params import load_section
    from pipeline.backbone import random_backbone
    from pipeline.features import FeatureConfig, extract
    from pipeline.features.device import available_cores, resolve_num_workers
    from pipeline.imaging import decode_image

    paths = sorted(Path(args.files).glob("*.jpg"))[: args.count]
    torch.set_num_threads(available_cores())
    record: dict = {"method": args.measure, "images": len(paths)}
    if args.measure.startswith("decode"):  # as one decode worker runs: a single thread
        torch.set_num_threads(1)
        config = load_section(FeatureConfig, "features", REPO / "params.yaml")
        if args.measure == "decode_pil":
            seconds = _timed_twice(lambda: [decode_image(p, config.preprocessing) for p in paths])
        else:
            seconds = _timed_twice(lambda: decode_torchvision(paths))
    elif args.measure == "model_only":
        seconds, extra = _model_only(args, len(paths))
        record.update(extra)
    elif args.measure == "one_fp32":
        model = random_backbone(0).model
        one_at_a_time_fp32(model, paths[:2])  # warm-up: first-call allocations count in neither figure
        started = time.perf_counter()
        one_at_a_time_fp32(model, paths)
        seconds = time.perf_counter() - started
    else:
        config, device, precision, model = _stage_setup(args)
        workers = resolve_num_workers("auto" if args.workers is None else args.workers, device)
        # warm-up on one full batch: oneDNN builds its kernels per input shape, once per run
        warm = (paths * config.batch_size)[: config.batch_size]
        extract(model, warm, config.preprocessing, config.batch_size, 0, device, precision)
        started = time.perf_counter()
        _, errors, _ = extract(
            model,
            paths,
            config.preprocessing,
            config.batch_size,
            workers,
            device,
            precision,
            decode_threads=args.decode_threads,
        )
        seconds = time.perf_counter() - started
        assert not errors, errors
        record.update(
            precision=precision,
            batch_size=config.batch_size,
            num_workers=workers,
            decode_threads=DECODE_THREADS if args.decode_threads is None else args.decode_threads,
            threads=torch.get_num_threads(),
        )
    return {**record, **_speed_and_memory(seconds, len(paths))}


def _stage_setup(args: argparse.Namespace) -> tuple:
    """(config, device, precision, model) as the stage runs on CPU: params.yaml's features section with this
    measurement's overrides, its precision, the random-init backbone prepared (channels-last, threads)."""
    import torch

    from common.params import load_section
    from pipeline.backbone import random_backbone
    from pipeline.features import FeatureConfig, prepare_model, resolve_precision

    config = load_section(FeatureConfig, "features", REPO / "params.yaml")
    config = replace(config, device="cpu", **_stage_overrides(args))
    device = torch.device("cpu")
    return config, device, resolve_precision(config.precision, device), prepare_model(random_backbone(0).model, device)


def _model_only(args: argparse.Namespace, count: int) -> tuple[float, dict]:
    """The backbone alone as the stage runs it (its precision, channels-last, its batch) on tensors already
    prepared: the rate the stage would reach if decoding, resizing and normalising cost nothing."""
    import torch

    config, _, precision, model = _stage_setup(args)
    autocast_dtype = torch.bfloat16 if precision == "bf16-autocast" else None
    generator = torch.Generator().manual_seed(0)
    sizes = [min(config.batch_size, count - start) for start in range(0, count, config.batch_size)]
    batches = [
        torch.randn(size, 3, SIZE, SIZE, generator=generator).contiguous(memory_format=torch.channels_last)
        for size in sizes
    ]

    def forward_all(tensors: list) -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast_dtype is not None):
            for batch in tensors:
                model(batch).float()

    forward_all(batches[:1])  # warm-up, as the stage's measurement has
    started = time.perf_counter()
    forward_all(batches)
    return time.perf_counter() - started, {
        "precision": precision,
        "batch_size": config.batch_size,
        "threads": torch.get_num_threads(),
    }


def _timed_twice(run: Callable[[], object]) -> float:
    """Seconds of the second call: the first warms the page cache and the libraries."""
    run()
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _stage_overrides(args: argparse.Namespace) -> dict:
    """The features config's values that this measurement sets (batch size, precision)."""
    given = (("batch_size", args.batch_size), ("precision", args.precision))
    return {key: value for key, value in given if value is not None}


def _speed_and_memory(seconds: float, images: int) -> dict:
    """Images per second and the peak RSS of this process and of its decode workers."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "seconds": round(seconds, 3),
        "images_per_s": round(images / seconds, 2),
        "peak_rss_mb": round(own),
        "peak_rss_decode_worker_mb": round(workers_peak),
    }


def spawn(files: Path, method: str, count: int, **options) -> dict:
    command = [sys.executable, __file__, "--measure", method, "--files", str(files), "--count", str(count)]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    return measured_child(command, cwd=REPO)


def median_of(records: list[dict], key: str = "images_per_s") -> float:
    return round(statistics.median(r[key] for r in records), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32, help="base image count; growth runs 2x and 4x")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; speed-up = median ratio")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    parser.add_argument("--decode-threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args)))
        return 0

    from pipeline.features.device import available_cores, cpu_flags, cpu_has_native_bf16

    cores, n = available_cores(), args.images
    flags = cpu_flags()
    with tempfile.TemporaryDirectory() as tmp:
        runs = measure_all(Path(tmp), n, args.rounds, cores)
    machine = {
        "cores": cores,
        "bf16_native": cpu_has_native_bf16(flags),
        "bf16_flags": sorted(flags & {"avx512_bf16", "amx_bf16", "amx_tile", "bf16"}),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "commit": run_commit(),
    }
    results = summarise(machine, n, args.rounds, runs)
    write_json(results, RESULTS)
    print(summary_line(results))
    return 0


def measure_all(files: Path, n: int, rounds: int, cores: int) -> dict:
    """Every measurement, each in its own process, on 4n generated images in `files`: the alternating rounds
    (one at a time fp32, the stage), growth to 2n and 4n, decode libraries, decode workers, variants."""
    generate_images(files, 4 * n)
    return {
        "rounds": [
            {method: spawn(files, method, n) for method in ("one_fp32", "stage", "model_only")} for _ in range(rounds)
        ],
        "growth": {
            f"x{factor}": {
                "images": factor * n,
                "one_fp32": spawn(files, "one_fp32", factor * n),
                "stage": spawn(files, "stage", factor * n),
            }
            for factor in (2, 4)
        },
        "decode": {
            name: [spawn(files, name, 4 * n) for _ in range(rounds)] for name in ("decode_pil", "decode_torchvision")
        },
        "workers": {w: spawn(files, "stage", n, workers=w) for w in sorted({0, 1, cores})},
        "variants": {
            "batch_1": spawn(files, "stage", n, batch_size=1),
            "fp32_channels_last_batched": spawn(files, "stage", n, precision="fp32"),
            **{f"decode_threads_{t}": spawn(files, "stage", n, decode_threads=t) for t in (1, 2)},
        },
        "model_only_fp32": spawn(files, "model_only", n, precision="fp32"),
    }


def round_figures(measured: dict) -> dict:
    """One round's speed-up over one at a time fp32, the stage's share of the model-only rate, and its load."""
    return {
        "speedup": round(measured["stage"]["images_per_s"] / measured["one_fp32"]["images_per_s"], 2),
        "share_of_model_only": round(measured["stage"]["images_per_s"] / measured["model_only"]["images_per_s"], 3),
        "loaded": any(m["load"]["loaded"] for m in measured.values()),
        "other_cpu_cores": max(m["load"]["other_cpu_cores"] for m in measured.values()),
    }


def summarise(machine: dict, n: int, rounds: int, runs: dict) -> dict:
    """bench/results/features.json: per round the three rates, the stage's speed-up over one at a time fp32 and
    its share of the model-only rate, and whether the round was loaded; medians over the quiet rounds (over all
    rounds, flagged, when none was quiet); growth, decode and variants."""
    quiet = [r for r in runs["rounds"] if not any(m["load"]["loaded"] for m in r.values())]
    counted = quiet or runs["rounds"]
    per_round = [round_figures(r) for r in runs["rounds"]]
    counted_rounds = [p for p, r in zip(per_round, runs["rounds"], strict=True) if r in counted]
    stage = [r["stage"] for r in counted]
    one = [r["one_fp32"] for r in counted]
    model = [r["model_only"] for r in counted]
    growth = {"x1": {"images": n, "stage": stage[0], "one_fp32": one[0]}, **runs["growth"]}
    return {
        "machine": machine,
        "images": n,
        "image_size": SIZE,
        "rounds": rounds,
        "quiet_rounds": len(quiet),
        "loaded": not quiet,
        "per_round": per_round,
        "speedup": statistics.median(p["speedup"] for p in counted_rounds),
        "share_of_model_only": statistics.median(p["share_of_model_only"] for p in counted_rounds),
        "stage": {
            "images_per_s_median": median_of(stage),
            "peak_rss_mb_median": median_of(stage, "peak_rss_mb"),
            "config": {k: stage[0][k] for k in ("precision", "batch_size", "num_workers", "decode_threads", "threads")},
            "runs": [r["stage"] for r in runs["rounds"]],
        },
        "model_only": {
            "images_per_s_median": median_of(model),
            "config": {k: model[0][k] for k in ("precision", "batch_size", "threads")},
            "runs": [r["model_only"] for r in runs["rounds"]],
        },
        "one_at_a_time_fp32": {
            "images_per_s_median": median_of(one),
            "peak_rss_mb_median": median_of(one, "peak_rss_mb"),
            "runs": [r["one_fp32"] for r in runs["rounds"]],
        },
        "model_only_fp32_images_per_s": runs["model_only_fp32"]["images_per_s"],
        "growth": {
            label: {
                "images": g["images"],
                "stage_images_per_s": g["stage"]["images_per_s"],
                "one_fp32_images_per_s": g["one_fp32"]["images_per_s"],
                "speedup": round(g["stage"]["images_per_s"] / g["one_fp32"]["images_per_s"], 2),
                "stage_peak_rss_mb": g["stage"]["peak_rss_mb"],
                "one_fp32_peak_rss_mb": g["one_fp32"]["peak_rss_mb"],
            }
            for label, g in growth.items()
        },
        "decode_one_thread_images_per_s": {name: median_of(records) for name, records in runs["decode"].items()},
        "decode_workers_images_per_s": {str(w): r["images_per_s"] for w, r in runs["workers"].items()},
        "variants_images_per_s": {name: r["images_per_s"] for name, r in runs["variants"].items()},
    }


def summary_line(results: dict) -> str:
    quiet = f"{results['quiet_rounds']}/{results['rounds']} rounds quiet" + (
        " (LOADED: figures mean nothing)" if results["loaded"] else ""
    )
    return (
        f"features on CPU ({results['machine']['cores']} cores, bf16 native: {results['machine']['bf16_native']}; "
        f"{results['images']} images at {SIZE}, decode included; {quiet}): stage "
        f"{results['stage']['images_per_s_median']} img/s ({results['stage']['config']}), "
        f"{results['share_of_model_only']:.0%} of the model alone ({results['model_only']['images_per_s_median']} "
        f"img/s), x{results['speedup']} one at a time fp32 ({results['one_at_a_time_fp32']['images_per_s_median']} "
        f"img/s); per round {[(r['speedup'], r['share_of_model_only']) for r in results['per_round']]}; decode PIL "
        f"vs torchvision {results['decode_one_thread_images_per_s']}; workers "
        f"{results['decode_workers_images_per_s']}; variants {results['variants_images_per_s']}; written to {RESULTS}"
    )


if __name__ == "__main__":
    sys.exit(main())
