"""Stage `features`: one 2048-d ResNet-50 feature per distinct image path of the splits.

Each distinct file content (sha256) is computed once; features already computed with the same
backbone, weights, preprocessing and precision are reused from a keyed cache, so a re-run after
adding a few reviews computes only their new images.

    python -m pipeline.features [--params params.yaml] [--splits data/splits] [--out ...] [--cache ...]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torchvision
from tqdm import tqdm

from common.atomic import remove_leftovers, write_json
from pipeline.backbone import BACKBONE, Backbone, load_backbone
from common.errors import UserError, cli_entry
from pipeline.image_data import make_loader
from pipeline.imaging import MISSING, NON_FINITE, TOO_LARGE, UNREADABLE, Preprocessing, error_kind, sha256_file
from pipeline.io import read_frame, write_table
from common.params import load_params, require
from pipeline.schema import FEATURE_DIM, FEATURES_SCHEMA, SPLITS

DEFAULT_SPLITS = Path("data/splits")
DEFAULT_OUT = Path("data/features/images.parquet")
DEFAULT_CACHE = Path("data/features/cache.parquet")
DEFAULT_METRICS = Path("metrics/features.json")
NO_BACKBONE = "none (the splits reference no image)"

# data/features/cache.parquet: features by (content, configuration), kept across runs (DVC persist: true)
CACHE_SCHEMA = pa.schema([
    ("fingerprint", pa.string()),   # config_fingerprint(): backbone, weights, preprocessing, precision
    ("image_id", pa.string()),
    ("width", pa.int32()),          # from the header, so a lowered max_image_pixels still refuses it
    ("height", pa.int32()),
    ("feature", pa.list_(pa.float32(), FEATURE_DIM)),
])


@dataclass(frozen=True)
class FeatureConfig:
    weights: str = "auto"
    image_size: int = 224
    batch_size: int = 16
    num_workers: int = 2
    device: str = "auto"
    max_image_pixels: int = 40_000_000
    seed: int = 0
    download_timeout_s: float = 20.0

    @classmethod
    def from_params(cls, section: dict) -> "FeatureConfig":
        name = "features"
        config = cls(
            weights=str(require(section, "weights", name, str)),
            image_size=require(section, "image_size", name, int),
            batch_size=require(section, "batch_size", name, int),
            num_workers=require(section, "num_workers", name, int),
            device=require(section, "device", name, str),
            max_image_pixels=require(section, "max_image_pixels", name, int),
            seed=require(section, "seed", name, int),
            download_timeout_s=float(require(section, "download_timeout_s", name, (int, float))),
        )
        if config.image_size < 32:
            raise UserError(f"params.yaml: 'features.image_size' must be >= 32, got {config.image_size}")
        if config.batch_size < 1 or config.num_workers < 0 or config.max_image_pixels < 1:
            raise UserError("params.yaml: 'features.batch_size' and 'features.max_image_pixels' must be >= 1 "
                            "and 'features.num_workers' >= 0")
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
    return torch.device(name)


def precision_for(device: torch.device) -> str:
    if device.type != "cuda":
        return "fp32"
    return "bf16-autocast" if torch.cuda.is_bf16_supported() else "fp16-autocast"


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


def read_cache(path: Path, fingerprint: str) -> tuple[pa.Table, dict[str, tuple[int, int, int]]]:
    """The whole cache table, and image_id -> (row, width, height) for this configuration."""
    if not path.is_file():
        return CACHE_SCHEMA.empty_table(), {}
    try:
        table = pq.read_table(path)
        table = table.select(CACHE_SCHEMA.names).cast(CACHE_SCHEMA)
    except (pa.ArrowInvalid, OSError, KeyError, ValueError) as exc:
        print(f"warning: {path} is unreadable ({exc}); ignoring it, every image is computed again", file=sys.stderr)
        return CACHE_SCHEMA.empty_table(), {}
    fingerprints = table["fingerprint"].to_pylist()
    index = {image_id: (row, w, h) for row, (fp, image_id, w, h) in enumerate(zip(
        fingerprints, table["image_id"].to_pylist(), table["width"].to_pylist(), table["height"].to_pylist()))
        if fp == fingerprint}
    return table, index


def features_array(matrix: np.ndarray) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, FEATURE_DIM)


def feature_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed_size_list<float32>[2048] column -> float32 array [rows, 2048]."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, FEATURE_DIM).astype(np.float32, copy=False)


def extract(model: torch.nn.Module, files: list[Path], prep: Preprocessing, batch_size: int, num_workers: int,
            device: torch.device, precision: str) -> tuple[np.ndarray, dict[int, str], dict[int, tuple[int, int]]]:
    """Features [len(files), 2048] (zeros where decoding failed), errors by index, (w, h) by index."""
    out = np.zeros((len(files), FEATURE_DIM), dtype=np.float32)
    errors: dict[int, str] = {}
    sizes: dict[int, tuple[int, int]] = {}
    if not files:
        return out, errors, sizes
    autocast_dtype = {"bf16-autocast": torch.bfloat16, "fp16-autocast": torch.float16}.get(precision)
    loader = make_loader(files, prep, batch_size, num_workers, pin_memory=device.type == "cuda")
    with torch.inference_mode(), tqdm(total=len(files), desc="features", unit="img", file=sys.stderr,
                                      disable=len(files) < 2 * batch_size) as bar:
        for batch in loader:
            errors.update(batch.errors)
            sizes.update(batch.sizes)
            if batch.ok_indices:
                pixels = batch.pixels.to(device, non_blocking=True)
                if device.type == "cuda":
                    pixels = pixels.contiguous(memory_format=torch.channels_last)
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


def build_features_table(paths: list[str], ids: dict[str, str], errors: dict[str, str],
                         features: dict[str, np.ndarray]) -> pa.Table:
    """Rows in `paths` order (sorted); ok exactly when a feature is known and no error was recorded."""
    matrix = np.zeros((len(paths), FEATURE_DIM), dtype=np.float32)
    ok = []
    for row, path in enumerate(paths):
        image_id = ids.get(path)
        good = path not in errors and image_id in features
        if good:
            matrix[row] = features[image_id]
        ok.append(good)
    return pa.Table.from_arrays([
        pa.array([ids.get(p) for p in paths], pa.string()),
        pa.array(paths, pa.string()),
        pa.array(ok, pa.bool_()),
        pa.array([errors.get(p) for p in paths], pa.string()),
        features_array(matrix),
    ], schema=FEATURES_SCHEMA)


@dataclass
class ImagePlan:
    """The images of the splits: which paths, which contents, which of them still need the backbone."""
    paths: list[str]                      # distinct paths, sorted
    ids: dict[str, str]                   # path -> content id (sha256), for readable files
    errors: dict[str, str]                # path -> "kind: detail", for the unusable ones
    representative: dict[str, str]        # content id -> its first path in sort order
    empty_entries: int                    # null or empty strings among the splits' image paths


def plan_images(splits_dir: Path, root: Path) -> ImagePlan:
    paths, empty_entries = collect_image_paths(splits_dir)
    ids, errors = hash_images(paths, root)
    representative: dict[str, str] = {}
    for path in paths:
        if path in ids:
            representative.setdefault(ids[path], path)
    return ImagePlan(paths, ids, errors, representative, empty_entries)


def reuse_cached(plan: ImagePlan, cache_table: pa.Table, cached: dict[str, tuple[int, int, int]],
                 prep: Preprocessing) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """(features, errors by content id, reused content ids) of the contents already in the cache.

    A cached image above today's max_image_pixels is refused as the decoder would refuse it."""
    reused = [i for i in plan.representative if i in cached]
    matrix = feature_matrix(cache_table["feature"].take(pa.array([cached[i][0] for i in reused], pa.int64())))
    features: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    for image_id, vector in zip(reused, matrix):
        width, height = cached[image_id][1:]
        if width * height > prep.max_image_pixels:
            errors[image_id] = f"{TOO_LARGE}: {width}x{height} pixels > max_image_pixels {prep.max_image_pixels}"
        else:
            features[image_id] = vector
    return features, errors, reused


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    model = model.to(device).eval()
    if device.type == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()  # macOS has no affinity
        torch.set_num_threads(cores or 1)
    else:  # channels-last feeds the tensor cores; on CPU it measured no faster (bench/bench_features.py)
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)
    return model


@dataclass
class Computed:
    """What the backbone made of the contents not in the cache."""
    features: dict[str, np.ndarray]       # content id -> feature, for the decodable ones
    sizes: dict[str, tuple[int, int]]     # content id -> (width, height), same keys
    errors: dict[str, str]                # content id -> "kind: detail" for the others
    seconds: float


def compute_new(backbone: Backbone, image_ids: list[str], plan: ImagePlan, config: FeatureConfig,
                device: torch.device, precision: str, root: Path) -> Computed:
    started = time.perf_counter()
    if not image_ids:
        return Computed({}, {}, {}, 0.0)
    model = prepare_model(backbone.model, device)
    matrix, errors, sizes = extract(model, [root / plan.representative[i] for i in image_ids], config.preprocessing,
                                    config.batch_size, config.num_workers, device, precision)
    ok = [index for index in range(len(image_ids)) if index not in errors]
    return Computed({image_ids[i]: matrix[i] for i in ok}, {image_ids[i]: sizes[i] for i in ok},
                    {image_ids[i]: errors[i] for i in errors}, time.perf_counter() - started)


def run_features(config: FeatureConfig, splits_dir: Path = DEFAULT_SPLITS, out: Path = DEFAULT_OUT,
                 cache_path: Path = DEFAULT_CACHE, metrics_path: Path = DEFAULT_METRICS,
                 root: Path = Path(".")) -> dict:
    """The whole stage; returns the metrics it writes. Splits without any image still get all three outputs."""
    started = time.perf_counter()
    device = resolve_device(config.device)
    precision = precision_for(device)
    plan = plan_images(splits_dir, root)
    # without any image to featurise no backbone is loaded (nor its weights downloaded)
    backbone = load_backbone(config.weights, config.seed, config.download_timeout_s) if plan.representative else None
    weights = backbone.weights if backbone else NO_BACKBONE
    fingerprint = config_fingerprint(weights, config.preprocessing, precision)
    cache_table, cached = read_cache(cache_path, fingerprint)

    features, content_errors, reused = reuse_cached(plan, cache_table, cached, config.preprocessing)
    computed = compute_new(backbone, [i for i in plan.representative if i not in cached], plan, config,
                           device, precision, root) if backbone else Computed({}, {}, {}, 0.0)
    features.update(computed.features)
    content_errors.update(computed.errors)
    errors = dict(plan.errors)
    errors.update({p: content_errors[plan.ids[p]] for p in plan.paths if plan.ids.get(p) in content_errors})

    for path in (out, cache_path, metrics_path):
        remove_leftovers(path)
    table = build_features_table(plan.paths, plan.ids, errors, features)
    write_table(table, out, metadata=output_metadata(weights, config.preprocessing, precision, fingerprint))
    write_cache(cache_path, cache_table, fingerprint, computed)
    metrics = features_metrics(plan, table, errors, reused, computed, device, precision, weights, fingerprint)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    write_json(metrics, metrics_path)
    failed_text = ", ".join(f"{k} {v}" for k, v in metrics["failed_by_error"].items()) or "none"
    print(f"features: {len(plan.paths)} image paths -> {metrics['images_ok']} ok, {metrics['images_failed']} failed "
          f"({failed_text}); {len(plan.representative)} unique contents, {len(reused)} reused from cache, "
          f"{metrics['computed']} computed at {metrics['images_per_s']} img/s on {device} ({precision}); "
          f"weights {weights}; {metrics['seconds']} s", file=sys.stderr)
    return metrics


def output_metadata(weights: str, prep: Preprocessing, precision: str, fingerprint: str) -> dict[str, str]:
    return {"backbone": BACKBONE, "weights": weights, "preprocessing": json.dumps(prep.describe(), sort_keys=True),
            "precision": precision, "fingerprint": fingerprint, "torch": torch.__version__,
            "torchvision": torchvision.__version__}


def features_metrics(plan: ImagePlan, table: pa.Table, errors: dict[str, str], reused: list[str], computed: Computed,
                     device: torch.device, precision: str, weights: str, fingerprint: str) -> dict:
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
        "images_per_s": round(n_computed / computed.seconds, 2) if n_computed else 0.0,
        "device": str(device),
        "precision": precision,
        "weights": weights,
        "fingerprint": fingerprint,
    }


def write_cache(path: Path, old: pa.Table, fingerprint: str, computed: Computed) -> None:
    """Old entries plus the new ones, sorted by (fingerprint, image_id) so the bytes are reproducible.

    Always written, even with nothing new: DVC expects every declared output to exist."""
    image_ids = sorted(computed.features)
    sizes = [computed.sizes[i] for i in image_ids]
    matrix = np.stack([computed.features[i] for i in image_ids]) if image_ids else np.zeros((0, FEATURE_DIM), np.float32)
    new = pa.Table.from_arrays([
        pa.array([fingerprint] * len(image_ids), pa.string()),
        pa.array(image_ids, pa.string()),
        pa.array([w for w, _ in sizes], pa.int32()),
        pa.array([h for _, h in sizes], pa.int32()),
        features_array(matrix),
    ], schema=CACHE_SCHEMA)
    merged = pa.concat_tables([old, new]).combine_chunks()
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
    return (table["path"].to_pylist(), feature_matrix(table["feature"]),
            np.asarray(table["ok"].to_pylist(), dtype=bool))


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
    parser.add_argument("--params", default="params.yaml", help="params file; section `features` (default: %(default)s)")
    parser.add_argument("--splits", type=Path, default=DEFAULT_SPLITS, help="folder of {train,dev,test}.parquet")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="features Parquet (default: %(default)s)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="feature cache kept across runs (default: %(default)s)")
    parser.add_argument("--metrics", type=Path, default=DEFAULT_METRICS, help="metrics JSON (default: %(default)s)")
    parser.add_argument("--root", type=Path, default=Path("."),
                        help="folder the splits' image paths are relative to (default: the repository root)")
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = FeatureConfig.from_params(load_params("features", args.params))
    run_features(config, args.splits, args.out, args.cache, args.metrics, args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
