"""The backbone over batches of decoded images: a feature, an error or a size per image (model.predict uses it for
new images too)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.backbone import Backbone
from pipeline.features.config import FeatureConfig
from pipeline.features.device import available_cores, local_processes, resolve_num_workers
from pipeline.features.plan import Computed, ImagePlan
from pipeline.features.shards import shard_batches
from pipeline.image_data import fixed_batches, make_loader, model_input
from pipeline.imaging import NON_FINITE, Preprocessing
from pipeline.schema import FEATURE_DIM

# decode threads beside the backbone when decoding in this process (num_workers 0, the CPU default)
DECODE_THREADS = 1


def extract(
    model: torch.nn.Module,
    files: list[Path],
    prep: Preprocessing,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    precision: str,
    batches: list[list[int]] | None = None,
    decode_threads: int | None = None,
) -> tuple[np.ndarray, dict[int, str], dict[int, tuple[int, int]]]:
    """Features [len(files), 2048] (zeros where decoding failed), errors by index, (w, h) by index.

    `batches` (index lists) replaces the plain cut into batch_size; files in no batch stay zero. With
    num_workers 0 the images decode in `decode_threads` threads (default DECODE_THREADS) while the backbone
    computes the batch before. The model should come from prepare_model (channels-last, like the input)."""
    out = np.zeros((len(files), FEATURE_DIM), dtype=np.float32)
    errors: dict[int, str] = {}
    sizes: dict[int, tuple[int, int]] = {}
    batches = fixed_batches(len(files), batch_size) if batches is None else batches
    if not batches:
        return out, errors, sizes
    autocast_dtype = {"bf16-autocast": torch.bfloat16, "fp16-autocast": torch.float16}.get(precision)
    threads = DECODE_THREADS if decode_threads is None else decode_threads
    loader = make_loader(files, prep, batches, num_workers, device.type == "cuda", threads)
    total = sum(map(len, batches))
    with (
        torch.inference_mode(),
        tqdm(total=total, desc="features", unit="img", file=sys.stderr, disable=total < 4 * len(batches[0])) as bar,
    ):
        for batch in loader:
            errors.update(batch.errors)
            sizes.update(batch.sizes)
            if batch.ok_indices:
                # channels-last on CPU too: oneDNN's convolutions run on NHWC without reordering each layer
                pixels = model_input(batch.pixels, device)
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    feats = model(pixels)
                feats = feats.float().cpu().numpy()
                for row, index in enumerate(batch.ok_indices):
                    if np.isfinite(feats[row]).all():
                        out[index] = feats[row]
                    else:
                        errors[index] = f"{NON_FINITE}: the backbone returned inf/nan"
                        sizes.pop(index, None)
            bar.update(len(batch.indices))
    return out, errors, sizes


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Eval mode, channels-last on every device; on CPU the cores split between this machine's processes."""
    model = model.to(device).eval().to(memory_format=torch.channels_last)
    if device.type == "cpu":
        torch.set_num_threads(max(1, available_cores() // local_processes()))
    else:
        torch.backends.cudnn.benchmark = True
    return model


def compute_new(
    backbone: Backbone,
    image_ids: list[str],
    plan: ImagePlan,
    config: FeatureConfig,
    device: torch.device,
    precision: str,
    root: Path,
    num_workers: int | str = "auto",
    shard: tuple[int, int] | None = None,
) -> Computed:
    """The features of the contents `image_ids` (their batches of `shard` only, when given)."""
    started = time.perf_counter()
    batches = shard_batches(len(image_ids), config.batch_size, shard)
    if not batches:
        return Computed({}, {}, {}, 0.0)
    workers = resolve_num_workers(num_workers, device)
    model = prepare_model(backbone.model, device)
    matrix, errors, sizes = extract(
        model,
        [root / plan.representative[i] for i in image_ids],
        config.preprocessing,
        config.batch_size,
        workers,
        device,
        precision,
        batches,
    )
    done = [index for batch in batches for index in batch]
    ok = [index for index in done if index not in errors]
    return Computed(
        {image_ids[i]: matrix[i] for i in ok},
        {image_ids[i]: sizes[i] for i in ok},
        {image_ids[i]: errors[i] for i in errors},
        time.perf_counter() - started,
        workers,
    )


def run_timing(computed: Computed, started: float, device: torch.device) -> dict:
    """The run log's figures: they change on every run, so they stay out of metrics/ (DVC)."""
    n_computed = len(computed.features)
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "compute_seconds": round(computed.seconds, 2),
        "images_per_s": round(n_computed / computed.seconds, 2) if n_computed and computed.seconds else 0.0,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "num_workers": computed.num_workers,
    }
