"""Stage `features`: one 2048-d ResNet-50 feature per distinct image path of the splits.

Each distinct file content (sha256) is computed once; features already computed with the same
backbone, weights, preprocessing and precision are reused from a keyed cache, so a re-run after
adding a few reviews computes only their new images.

    python -m pipeline.features [--params params.yaml] [--splits data/splits] [--out ...] [--cache ...]

Several processes or machines: `--shard i/n` computes only the i-th of n deterministic parts of the images
still to compute and writes them to a shard file; the next run without --shard merges every shard file into
the cache and writes the same bytes as one process would have. Under `torchrun` the ranks are the shards and
rank 0 merges.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
import torchvision
from tqdm import tqdm

from common.atomic import remove_leftovers
from common.errors import UserError, cli_entry
from common.metrics import detail_path, write_metrics
from common.params import IMAGE_SIZE_RANGE, load_params, require, require_int_in
from common.runlog import DEFAULT_LOG_DIR, write_run_log
from pipeline.backbone import BACKBONE, Backbone, load_backbone
from pipeline.image_data import fixed_batches, make_loader
from pipeline.imaging import MISSING, NON_FINITE, TOO_LARGE, UNREADABLE, Preprocessing, error_kind, sha256_file
from pipeline.io import read_frame, write_table
from pipeline.schema import FEATURE_DIM, FEATURES_SCHEMA, SPLITS

DEFAULT_SPLITS = Path("data/splits")
DEFAULT_OUT = Path("data/features/images.parquet")
DEFAULT_CACHE = Path("data/features/cache.parquet")
DEFAULT_METRICS = Path("metrics/features.json")  # images ok and failed; every count in DEFAULT_DETAIL
DEFAULT_DETAIL = detail_path("features")
DEFAULT_SHARDS = Path("data/features/shards")
PRECISIONS = ("auto", "fp32", "bf16")
# /proc/cpuinfo flags of native bf16 arithmetic: AVX512-BF16 (Cooper Lake, Zen 4+), AMX (Sapphire Rapids+),
# and Arm's BF16 extension; without one of them bf16 is emulated and slower than fp32
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
# decode processes on CPU for num_workers: auto; 0 (decode in the main process between batches) measured
# fastest on 2 cores, where any worker takes cycles from the convolutions (bench/results/features.json)
AUTO_CPU_WORKERS = 0
NO_BACKBONE = "none (the splits reference no image)"

# data/features/cache.parquet: features by (content, configuration), kept across runs (DVC persist: true)
CACHE_SCHEMA = pa.schema(
    [
        ("fingerprint", pa.string()),  # config_fingerprint(): backbone, weights, preprocessing, precision
        ("image_id", pa.string()),
        ("width", pa.int32()),  # from the header, so a lowered max_image_pixels still refuses it
        ("height", pa.int32()),
        ("feature", pa.list_(pa.float32(), FEATURE_DIM)),
    ]
)


def timeout_seconds(section: dict) -> float:
    """features.download_timeout_s as a finite number of seconds > 0."""
    value = require(section, "download_timeout_s", "features", (int, float))
    try:
        seconds = float(value)
    except OverflowError:  # an integer beyond float's range
        seconds = math.inf
    if isinstance(value, bool) or not 0 < seconds < math.inf:  # `not` catches NaN too
        raise UserError(f"params.yaml: 'features.download_timeout_s' must be a number of seconds > 0, got {value!r}")
    return seconds


@dataclass(frozen=True)
class FeatureConfig:
    weights: str = "auto"
    image_size: int = 224
    batch_size: int = 16
    num_workers: int | str = "auto"
    device: str = "auto"
    max_image_pixels: int = 40_000_000
    seed: int = 0
    download_timeout_s: float = 20.0
    precision: str = "fp32"  # params.yaml says auto; fp32 here keeps direct callers exact

    @classmethod
    def from_params(cls, section: dict) -> FeatureConfig:
        name = "features"
        config = cls(
            weights=str(require(section, "weights", name, str)),
            image_size=require_int_in(section, "image_size", name, *IMAGE_SIZE_RANGE),
            batch_size=require(section, "batch_size", name, int),
            num_workers=require(section, "num_workers", name, (int, str)),
            device=require(section, "device", name, str),
            max_image_pixels=require(section, "max_image_pixels", name, int),
            seed=require(section, "seed", name, int),
            download_timeout_s=timeout_seconds(section),
            precision=require(section, "precision", name, str),
        )
        workers = config.num_workers
        if (
            config.batch_size < 1
            or config.max_image_pixels < 1
            or (workers != "auto" and (isinstance(workers, str) or workers < 0))
        ):
            raise UserError(
                "params.yaml: 'features.batch_size' and 'features.max_image_pixels' must be >= 1 "
                "and 'features.num_workers' auto or >= 0"
            )
        if config.precision not in PRECISIONS:
            raise UserError(f"params.yaml: 'features.precision' must be auto, fp32 or bf16, got {config.precision!r}")
        if config.device not in ("auto", "cpu", "cuda"):
            raise UserError(f"params.yaml: 'features.device' must be auto, cpu or cuda, got {config.device!r}")
        return config

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.image_size, self.max_image_pixels)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("params.yaml: 'features.device' is cuda but no CUDA GPU is visible; set it to auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per process on this machine
        index = int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device(name)


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo ("flags" on x86, "Features" on Arm); empty where unknown."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:  # not Linux
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_has_native_bf16(flags: set[str] | None = None) -> bool:
    """Whether this CPU computes bf16 in hardware (oneDNN then runs bf16 convolutions faster than fp32)."""
    flags = cpu_flags() if flags is None else flags
    return torch.backends.mkldnn.is_available() and bool(flags & BF16_CPU_FLAGS)


def resolve_precision(requested: str, device: torch.device) -> str:
    """features.precision (auto | fp32 | bf16) -> what runs: fp32 | bf16-autocast | fp16-autocast.

    auto: bf16 autocast on CPUs with native bf16 (x1.2 over fp32 at the same batch on a Zen 4 CPU, cosine
    >= 0.999 to the fp32 features), fp32 on other CPUs; on GPUs bf16 where supported, else fp16."""
    if requested == "fp32":
        return "fp32"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16-autocast"
        if requested == "bf16":
            raise UserError("params.yaml: 'features.precision' is bf16 but this GPU has no bf16; set auto or fp32")
        return "fp16-autocast"
    if requested == "bf16" or cpu_has_native_bf16():
        if not cpu_has_native_bf16():
            print(
                "note: features.precision=bf16 on a CPU without native bf16 (avx512_bf16/amx): it is emulated, "
                "expect it slower than fp32",
                file=sys.stderr,
            )
        return "bf16-autocast"
    return "fp32"


def available_cores() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()  # macOS: no affinity
    return cores or 1


def resolve_num_workers(requested: int | str, device: torch.device) -> int:
    """features.num_workers: auto = the measured best on CPU (decoding in this process: the convolutions
    already keep every core busy, bench/bench_features.py), on a GPU one decode process per core up to 8."""
    if requested != "auto":
        return int(requested)
    if device.type == "cuda":
        return min(available_cores(), 8)
    return AUTO_CPU_WORKERS


def config_fingerprint(weights: str, prep: Preprocessing, precision: str) -> str:
    """Cache key part: everything that changes the feature values of a given file content."""
    spec = {"backbone": BACKBONE, "weights": weights, "preprocessing": prep.describe(), "precision": precision}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def collect_image_paths(splits_dir: Path) -> tuple[list[str], int]:
    """Sorted distinct image paths referenced by the splits, and how many entries were null or empty."""
    paths: set[str] = set()
    empty = 0
    for split in SPLITS:
        frame = read_frame(splits_dir / f"{split}.parquet", columns=["image_paths"])
        for entry in frame["image_paths"]:
            if entry is None:
                continue
            for path in entry:
                if path:
                    paths.add(str(path))
                else:
                    empty += 1
    return sorted(paths), empty


def hash_images(paths: list[str], root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """path -> image_id (sha256) for readable files, path -> error for the others."""
    ids: dict[str, str] = {}
    errors: dict[str, str] = {}
    for path in tqdm(paths, desc="hash images", unit="img", disable=len(paths) < 500, file=sys.stderr):
        try:
            ids[path] = sha256_file(root / path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            errors[path] = f"{MISSING}: no such file"
        except OSError as exc:
            errors[path] = f"{UNREADABLE}: {exc.strerror or exc}"
    return ids, errors


def read_cache_table(path: Path) -> tuple[pa.Table, int]:
    """(a cache or shard file's valid rows as CACHE_SCHEMA, how many invalid rows were dropped, with a warning).

    Empty when absent, with a warning when unreadable; the images of dropped rows are computed again."""
    if not path.is_file():
        return CACHE_SCHEMA.empty_table(), 0
    try:
        table = pq.read_table(path).select(CACHE_SCHEMA.names)
        valid = table.filter(valid_cache_rows(table)).cast(CACHE_SCHEMA)
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        print(f"warning: {path} is unreadable ({exc}); ignoring it, its images are computed again", file=sys.stderr)
        return CACHE_SCHEMA.empty_table(), 0
    dropped = table.num_rows - valid.num_rows
    if dropped:
        print(
            f"warning: {path}: dropped {dropped} of {table.num_rows} rows with a null, a non-finite value, a "
            f"size <= 0 or a feature not {FEATURE_DIM} wide; their images are computed again",
            file=sys.stderr,
        )
    return valid, dropped


def valid_cache_rows(table: pa.Table) -> pa.BooleanArray:
    """Per row: every field set, width and height > 0, a feature of FEATURE_DIM finite numbers.

    A null feature must not reach feature_matrix (flatten() skips it and every later row would shift)."""
    ok = np.ones(table.num_rows, dtype=bool)
    for name in ("fingerprint", "image_id", "width", "height", "feature"):
        ok &= table[name].is_valid().to_numpy(zero_copy_only=False)
    for name in ("width", "height"):
        ok &= pc.fill_null(pc.greater(table[name], 0), False).to_numpy(zero_copy_only=False)
    feature = table["feature"].combine_chunks()
    ok &= pc.fill_null(pc.list_value_length(feature), -1).to_numpy(zero_copy_only=False) == FEATURE_DIM
    values = pc.cast(pc.list_flatten(feature), pa.float64())
    bad_value = pc.invert(pc.fill_null(pc.is_finite(values), False)).to_numpy(zero_copy_only=False)
    ok[pc.list_parent_indices(feature).to_numpy(zero_copy_only=False)[bad_value]] = False
    return pa.array(ok)


def cache_index(table: pa.Table, fingerprint: str) -> dict[str, tuple[int, int, int]]:
    """image_id -> (row, width, height) of the rows computed with this configuration."""
    return {
        image_id: (row, w, h)
        for row, (fp, image_id, w, h) in enumerate(
            zip(
                table["fingerprint"].to_pylist(),
                table["image_id"].to_pylist(),
                table["width"].to_pylist(),
                table["height"].to_pylist(),
                strict=False,
            )
        )
        if fp == fingerprint
    }


def read_cache(path: Path, fingerprint: str) -> tuple[pa.Table, dict[str, tuple[int, int, int]]]:
    """The whole cache table, and image_id -> (row, width, height) for this configuration."""
    table, _ = read_cache_table(path)
    return table, cache_index(table, fingerprint)


def shard_path(shard_dir: Path, shard: tuple[int, int]) -> Path:
    return shard_dir / f"shard-{shard[0]:04d}-of-{shard[1]:04d}.parquet"


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    index, _, total = text.partition("/")
    try:
        shard = int(index), int(total)
    except ValueError:
        shard = (-1, 0)
    if not 0 <= shard[0] < shard[1]:
        raise UserError(f"--shard must be i/n with 0 <= i < n (e.g. 0/2), got {text!r}")
    return shard


def merge_shards(cache: pa.Table, shard_dir: Path) -> tuple[pa.Table, int, list[Path]]:
    """The cache plus the rows of every shard file under shard_dir that it lacks; (table, rows added, files)."""
    files = sorted(shard_dir.glob("shard-*-of-*.parquet")) if shard_dir.is_dir() else []
    if not files:
        return cache, 0, []
    combined = pa.concat_tables([cache, *(read_cache_table(f)[0] for f in files)])
    seen: set[tuple[str, str]] = set()
    keep = []
    for row, key in enumerate(zip(combined["fingerprint"].to_pylist(), combined["image_id"].to_pylist(), strict=False)):
        if key not in seen:  # first occurrence: the cache's own row wins over a shard's
            seen.add(key)
            keep.append(row)
    return combined.take(pa.array(keep, pa.int64())), len(keep) - cache.num_rows, files


def features_array(matrix: np.ndarray) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, FEATURE_DIM)


def feature_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed_size_list<float32>[2048] column -> float32 array [rows, 2048], one row per entry of `column`."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    values = column.flatten()  # skips null entries: the rows after one would belong to other images
    if column.null_count or len(values) != len(column) * FEATURE_DIM:
        raise UserError(
            f"a feature column holds {column.null_count} null entries among {len(column)} rows: the file "
            f"is damaged; delete it and re-run dvc repro features"
        )
    return values.to_numpy(zero_copy_only=False).reshape(-1, FEATURE_DIM).astype(np.float32, copy=False)


def extract(
    model: torch.nn.Module,
    files: list[Path],
    prep: Preprocessing,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    precision: str,
    batches: list[list[int]] | None = None,
) -> tuple[np.ndarray, dict[int, str], dict[int, tuple[int, int]]]:
    """Features [len(files), 2048] (zeros where decoding failed), errors by index, (w, h) by index.

    `batches` (index lists) replaces the plain cut into batch_size; files in no batch stay zero. The model
    should come from prepare_model (channels-last, like the input)."""
    out = np.zeros((len(files), FEATURE_DIM), dtype=np.float32)
    errors: dict[int, str] = {}
    sizes: dict[int, tuple[int, int]] = {}
    batches = fixed_batches(len(files), batch_size) if batches is None else batches
    if not batches:
        return out, errors, sizes
    autocast_dtype = {"bf16-autocast": torch.bfloat16, "fp16-autocast": torch.float16}.get(precision)
    loader = make_loader(files, prep, batches, num_workers, pin_memory=device.type == "cuda")
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
                pixels = batch.pixels.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
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


def build_features_table(
    paths: list[str], ids: dict[str, str], errors: dict[str, str], features: dict[str, np.ndarray]
) -> pa.Table:
    """Rows in `paths` order (sorted); ok exactly when a feature is known and no error was recorded."""
    matrix = np.zeros((len(paths), FEATURE_DIM), dtype=np.float32)
    ok = []
    for row, path in enumerate(paths):
        image_id = ids.get(path)
        good = path not in errors and image_id in features
        if good:
            matrix[row] = features[image_id]
        ok.append(good)
    return pa.Table.from_arrays(
        [
            pa.array([ids.get(p) for p in paths], pa.string()),
            pa.array(paths, pa.string()),
            pa.array(ok, pa.bool_()),
            pa.array([errors.get(p) for p in paths], pa.string()),
            features_array(matrix),
        ],
        schema=FEATURES_SCHEMA,
    )


@dataclass
class ImagePlan:
    """The images of the splits: which paths, which contents, which of them still need the backbone."""

    paths: list[str]  # distinct paths, sorted
    ids: dict[str, str]  # path -> content id (sha256), for readable files
    errors: dict[str, str]  # path -> "kind: detail", for the unusable ones
    representative: dict[str, str]  # content id -> its first path in sort order
    empty_entries: int  # null or empty strings among the splits' image paths


def plan_images(splits_dir: Path, root: Path) -> ImagePlan:
    paths, empty_entries = collect_image_paths(splits_dir)
    ids, errors = hash_images(paths, root)
    representative: dict[str, str] = {}
    for path in paths:
        if path in ids:
            representative.setdefault(ids[path], path)
    return ImagePlan(paths, ids, errors, representative, empty_entries)


def reuse_cached(
    plan: ImagePlan, cache_table: pa.Table, cached: dict[str, tuple[int, int, int]], prep: Preprocessing
) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """(features, errors by content id, reused content ids) of the contents already in the cache.

    A cached image above today's max_image_pixels is refused as the decoder would refuse it."""
    reused = [i for i in plan.representative if i in cached]
    matrix = feature_matrix(cache_table["feature"].take(pa.array([cached[i][0] for i in reused], pa.int64())))
    features: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    for image_id, vector in zip(reused, matrix, strict=False):
        width, height = cached[image_id][1:]
        if width * height > prep.max_image_pixels:
            errors[image_id] = f"{TOO_LARGE}: {width}x{height} pixels > max_image_pixels {prep.max_image_pixels}"
        else:
            features[image_id] = vector
    return features, errors, reused


def local_processes() -> int:
    """Processes sharing this machine's cores: torchrun's LOCAL_WORLD_SIZE, else 1."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Eval mode, channels-last on every device; on CPU the cores split between this machine's processes."""
    model = model.to(device).eval().to(memory_format=torch.channels_last)
    if device.type == "cpu":
        torch.set_num_threads(max(1, available_cores() // local_processes()))
    else:
        torch.backends.cudnn.benchmark = True
    return model


@dataclass
class Computed:
    """What the backbone made of the contents not in the cache."""

    features: dict[str, np.ndarray]  # content id -> feature, for the decodable ones
    sizes: dict[str, tuple[int, int]]  # content id -> (width, height), same keys
    errors: dict[str, str]  # content id -> "kind: detail" for the others
    seconds: float
    num_workers: int = 0


def shard_batches(count: int, batch_size: int, shard: tuple[int, int] | None) -> list[list[int]]:
    """The batches of the `count` contents to compute that belong to `shard` (i, n): batch k goes to shard
    k mod n. Whole batches, cut as the unsharded run cuts them, so each feature comes out of the same batch
    (the same bits) in a sharded and in a single-process run."""
    batches = fixed_batches(count, batch_size)
    if shard is None:
        return batches
    index, total = shard
    return batches[index::total]


def compute_new(
    backbone: Backbone,
    image_ids: list[str],
    plan: ImagePlan,
    config: FeatureConfig,
    device: torch.device,
    precision: str,
    root: Path,
    shard: tuple[int, int] | None = None,
) -> Computed:
    started = time.perf_counter()
    batches = shard_batches(len(image_ids), config.batch_size, shard)
    if not batches:
        return Computed({}, {}, {}, 0.0)
    workers = resolve_num_workers(config.num_workers, device)
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


def run_features(
    config: FeatureConfig,
    splits_dir: Path = DEFAULT_SPLITS,
    out: Path = DEFAULT_OUT,
    cache_path: Path = DEFAULT_CACHE,
    metrics_path: Path = DEFAULT_METRICS,
    root: Path = Path("."),
    shard: tuple[int, int] | None = None,
    shard_dir: Path = DEFAULT_SHARDS,
    log_dir: Path = DEFAULT_LOG_DIR,
    detail_path: Path = DEFAULT_DETAIL,
) -> dict:
    """The whole stage; returns the counts it writes (detail_path; their headline to metrics_path). Splits
    without any image still get all three outputs.

    With `shard` (i, n) only the i-th part of the images still to compute is computed, into a shard file
    under shard_dir, and nothing else is written; without it, shard files found there are merged first.
    Timings go to the run log (log_dir/features.json), never to the DVC-tracked metrics."""
    started = time.perf_counter()
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    plan = plan_images(splits_dir, root)
    # without any image to featurise no backbone is loaded (nor its weights downloaded)
    backbone = load_backbone(config.weights, config.seed, config.download_timeout_s) if plan.representative else None
    weights = backbone.weights if backbone else NO_BACKBONE
    fingerprint = config_fingerprint(weights, config.preprocessing, precision)
    cache_table, cache_rows_dropped = read_cache_table(cache_path)
    if shard is not None:
        return run_shard(
            backbone,
            plan,
            config,
            device,
            precision,
            fingerprint,
            cache_table,
            root,
            shard,
            shard_dir,
            log_dir,
            started,
        )
    cache_table, from_shards, shard_files = merge_shards(cache_table, shard_dir)
    cached = cache_index(cache_table, fingerprint)

    features, content_errors, reused = reuse_cached(plan, cache_table, cached, config.preprocessing)
    computed = (
        compute_new(
            backbone, [i for i in plan.representative if i not in cached], plan, config, device, precision, root
        )
        if backbone
        else Computed({}, {}, {}, 0.0)
    )
    features.update(computed.features)
    content_errors.update(computed.errors)
    errors = dict(plan.errors)
    errors.update({p: content_errors[plan.ids[p]] for p in plan.paths if plan.ids.get(p) in content_errors})

    for path in (out, cache_path):
        remove_leftovers(path)
    table = build_features_table(plan.paths, plan.ids, errors, features)
    write_table(table, out, metadata=output_metadata(weights, config.preprocessing, precision, fingerprint))
    write_cache(cache_path, cache_table, fingerprint, computed)
    for merged in shard_files:  # their rows are in the cache now
        merged.unlink()
    metrics = features_metrics(plan, table, errors, reused, computed, device, precision, weights, fingerprint)
    metrics["precision_param"] = config.precision
    metrics["merged_from_shards"] = from_shards
    write_metrics({k: metrics[k] for k in ("images_ok", "images_failed")}, metrics, metrics_path, detail_path)
    timing = run_timing(computed, started, device)
    write_run_log(
        "features",
        {**timing, "computed": metrics["computed"], "precision": precision, "cache_rows_dropped": cache_rows_dropped},
        log_dir,
    )
    failed_text = ", ".join(f"{k} {v}" for k, v in metrics["failed_by_error"].items()) or "none"
    print(
        f"features: {len(plan.paths)} image paths -> {metrics['images_ok']} ok, {metrics['images_failed']} failed "
        f"({failed_text}); {len(plan.representative)} unique contents, {len(reused)} reused from cache"
        f"{f' ({from_shards} merged from {len(shard_files)} shard files)' if shard_files else ''}, "
        f"{metrics['computed']} computed at {timing['images_per_s']} img/s on {device} ({precision}, "
        f"{timing['threads']} threads, {timing['num_workers']} decode workers); weights {weights}; "
        f"{timing['seconds']} s",
        file=sys.stderr,
    )
    return metrics


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


def run_shard(
    backbone: Backbone | None,
    plan: ImagePlan,
    config: FeatureConfig,
    device: torch.device,
    precision: str,
    fingerprint: str,
    cache_table: pa.Table,
    root: Path,
    shard: tuple[int, int],
    shard_dir: Path,
    log_dir: Path,
    started: float,
) -> dict:
    """One shard: its batches of the contents the cache lacks, written as cache rows to its shard file."""
    cached = cache_index(cache_table, fingerprint)
    todo = [i for i in plan.representative if i not in cached]
    computed = (
        compute_new(backbone, todo, plan, config, device, precision, root, shard)
        if backbone
        else Computed({}, {}, {}, 0.0)
    )
    path = shard_path(shard_dir, shard)
    remove_leftovers(path)
    write_table(new_cache_rows(fingerprint, computed), path)
    timing = run_timing(computed, started, device)
    record = {
        **timing,
        "shard": f"{shard[0]}/{shard[1]}",
        "to_compute": len(todo),
        "computed": len(computed.features),
        "decode_failed": len(computed.errors),
        "precision": precision,
    }
    write_run_log(f"features-shard-{shard[0]}-of-{shard[1]}", record, log_dir)
    print(
        f"features shard {shard[0]}/{shard[1]}: {record['computed']} of the {len(todo)} contents to compute "
        f"-> {path} ({record['decode_failed']} undecodable, left to the merge) at {timing['images_per_s']} img/s "
        f"on {device} ({precision}, {timing['threads']} threads); {timing['seconds']} s",
        file=sys.stderr,
    )
    return record


def output_metadata(weights: str, prep: Preprocessing, precision: str, fingerprint: str) -> dict[str, str]:
    return {
        "backbone": BACKBONE,
        "weights": weights,
        "preprocessing": json.dumps(prep.describe(), sort_keys=True),
        "precision": precision,
        "fingerprint": fingerprint,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }


def features_metrics(
    plan: ImagePlan,
    table: pa.Table,
    errors: dict[str, str],
    reused: list[str],
    computed: Computed,
    device: torch.device,
    precision: str,
    weights: str,
    fingerprint: str,
) -> dict:
    ok = sum(table["ok"].to_pylist())
    n_computed = len(computed.features)
    return {
        "images_total": len(plan.paths),
        "images_ok": ok,
        "images_failed": len(plan.paths) - ok,
        "failed_by_error": dict(sorted(Counter(error_kind(errors[p]) for p in plan.paths if p in errors).items())),
        "empty_path_entries": plan.empty_entries,
        "unique_contents": len(plan.representative),
        "reused_from_cache": len(reused),
        "computed": n_computed,
        "decode_failed": len(computed.errors),
        "device": str(device),
        "precision": precision,
        "weights": weights,
        "fingerprint": fingerprint,
    }


def new_cache_rows(fingerprint: str, computed: Computed) -> pa.Table:
    """The computed features as cache rows, sorted by image_id."""
    image_ids = sorted(computed.features)
    sizes = [computed.sizes[i] for i in image_ids]
    matrix = (
        np.stack([computed.features[i] for i in image_ids]) if image_ids else np.zeros((0, FEATURE_DIM), np.float32)
    )
    return pa.Table.from_arrays(
        [
            pa.array([fingerprint] * len(image_ids), pa.string()),
            pa.array(image_ids, pa.string()),
            pa.array([w for w, _ in sizes], pa.int32()),
            pa.array([h for _, h in sizes], pa.int32()),
            features_array(matrix),
        ],
        schema=CACHE_SCHEMA,
    )


def write_cache(path: Path, old: pa.Table, fingerprint: str, computed: Computed) -> None:
    """Old entries plus the new ones, sorted by (fingerprint, image_id) so the bytes are reproducible.

    Always written, even with nothing new: DVC expects every declared output to exist."""
    merged = pa.concat_tables([old, new_cache_rows(fingerprint, computed)]).combine_chunks()
    merged = merged.sort_by([("fingerprint", "ascending"), ("image_id", "ascending")])
    write_table(merged, path)


# ---- reading the output: helpers for users and tests (model/data.py has the model's own loader) ----


def read_features(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(paths, features float32 [n, 2048], ok bool [n]) of data/features/images.parquet, in file order."""
    frame_path = Path(path)
    if not frame_path.is_file():
        raise UserError(f"{frame_path} not found: run the features stage first (dvc repro features)")
    try:
        table = pq.read_table(frame_path, columns=["path", "ok", "feature"])
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{frame_path} is not a readable features file ({exc}); re-run dvc repro features") from exc
    return (
        table["path"].to_pylist(),
        feature_matrix(table["feature"]),
        np.asarray(table["ok"].to_pylist(), dtype=bool),
    )


def load_features(path: str | Path) -> dict[str, np.ndarray]:
    """path -> 2048-d float32 feature, for the usable images only (a path absent here must be masked)."""
    paths, matrix, ok = read_features(path)
    return {p: matrix[i] for i, p in enumerate(paths) if ok[i]}


def features_metadata(path: str | Path) -> dict[str, str]:
    """The key-value metadata of a features file: backbone, weights, preprocessing, precision, versions."""
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if not k.startswith(b"ARROW:")}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.features", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--params", default="params.yaml", help="params file; section `features` (default: %(default)s)"
    )
    parser.add_argument("--splits", type=Path, default=DEFAULT_SPLITS, help="folder of {train,dev,test}.parquet")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="features Parquet (default: %(default)s)")
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="feature cache kept across runs (default: %(default)s)"
    )
    parser.add_argument(
        "--metrics",
        type=Path,
        default=DEFAULT_METRICS,
        help="headline metrics JSON: images ok and failed (default: %(default)s)",
    )
    parser.add_argument(
        "--detail",
        type=Path,
        default=DEFAULT_DETAIL,
        help="every count, the weights and the fingerprint (default: %(default)s)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("."),
        help="folder the splits' image paths are relative to (default: the repository root)",
    )
    parser.add_argument(
        "--shard",
        type=parse_shard,
        default=None,
        metavar="I/N",
        help="compute only part I of N of the images still to compute (batch k goes to part k mod "
        "N) into a shard file, and write nothing else; a later run without --shard merges "
        "the shard files. Under torchrun the ranks are the parts and rank 0 merges.",
    )
    parser.add_argument(
        "--shard-dir", type=Path, default=DEFAULT_SHARDS, help="folder of the shard files (default: %(default)s)"
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=DEFAULT_LOG_DIR,
        help="run log folder: timings, kept out of metrics/ (default: %(default)s)",
    )
    return parser.parse_args(argv)


def run_under_torchrun(config: FeatureConfig, args: argparse.Namespace) -> None:
    """torchrun: every rank computes its shard; once all succeeded, rank 0 merges and writes the outputs.

    gloo (CPU sockets) is only used to agree that every shard was written, so it works with GPUs too."""
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", timeout=timedelta(hours=12))  # a large shard can take hours
    try:
        failed = torch.zeros(1)
        try:
            run_features(
                config,
                args.splits,
                args.out,
                args.cache,
                args.metrics,
                args.root,
                (rank, world),
                args.shard_dir,
                args.log_dir,
            )
        except BaseException:
            failed += 1
            dist.all_reduce(failed)
            raise
        dist.all_reduce(failed)
        if failed.item():
            raise UserError(
                f"{int(failed.item())} of {world} feature shards failed (see their errors); "
                "nothing merged, the shards written are kept for the next run"
            )
        if rank == 0:
            run_features(
                config,
                args.splits,
                args.out,
                args.cache,
                args.metrics,
                args.root,
                None,
                args.shard_dir,
                args.log_dir,
                args.detail,
            )
    finally:
        dist.destroy_process_group()


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = FeatureConfig.from_params(load_params("features", args.params))
    if args.shard is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        run_under_torchrun(config, args)
    else:
        run_features(
            config,
            args.splits,
            args.out,
            args.cache,
            args.metrics,
            args.root,
            args.shard,
            args.shard_dir,
            args.log_dir,
            args.detail,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
