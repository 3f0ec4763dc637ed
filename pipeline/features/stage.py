"""Stage `features`: one 2048-d ResNet-50 feature per distinct image path of the splits.

Each distinct file content (sha256) is computed once; features already computed with the same
backbone, weights, preprocessing and precision are reused from a keyed cache, so a re-run after
adding a few reviews computes only their new images. The splits are read in batches of `data.batch_rows` rows,
their image paths only (what stays in memory: docs/scaling.md).

    python -m pipeline.features [--params params.yaml] [--splits data/splits] [--out ...] [--cache ...]
                                [--num-workers auto|N]

Several processes or machines: `--shard i/n` computes only the i-th of n deterministic parts of the images
still to compute and writes them to a shard file; the next run without --shard merges every shard file into
the cache and writes the same bytes as one process would have. Under `torchrun` the ranks are the shards and
rank 0 merges. How many processes decode images (`--num-workers`, or $ZOL_FEATURES_WORKERS; default auto: none
on a CPU, one per core up to 8 with a GPU) changes no feature, so it is no param.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import torch
import torch.distributed as dist

from common.atomic import remove_leftovers
from common.device import choose_device
from common.errors import UserError
from common.metrics import detail_path, write_metrics
from common.params import load_params, read_section, section_of
from common.runlog import DEFAULT_LOG_DIR, write_run_log
from common.stage import run_stage, stage_parser
from pipeline.backbone import Backbone, load_backbone
from pipeline.features.cache import (
    cache_index,
    config_fingerprint,
    new_cache_rows,
    read_cache_table,
    reuse_cached,
    write_cache,
)
from pipeline.features.config import FeatureConfig
from pipeline.features.device import WORKERS_ENV, resolve_precision, worker_count
from pipeline.features.extraction import compute_new, run_timing
from pipeline.features.output import build_features_table, features_metrics, output_metadata
from pipeline.features.plan import Computed, ImagePlan, plan_images
from pipeline.features.shards import merge_shards, parse_shard, shard_path
from pipeline.io import write_table
from pipeline.paths import FEATURES_DIR, SPLITS_DIR, DataParams

DEFAULT_SPLITS = SPLITS_DIR
DEFAULT_OUT = FEATURES_DIR / "images.parquet"
DEFAULT_CACHE = FEATURES_DIR / "cache.parquet"
DEFAULT_METRICS = Path("metrics/features.json")  # images ok and failed; every count in DEFAULT_DETAIL
DEFAULT_DETAIL = detail_path("features")
DEFAULT_SHARDS = FEATURES_DIR / "shards"
NO_BACKBONE = "none (the splits reference no image)"


@dataclass(frozen=True)
class FeaturePaths:
    """What the stage reads and writes."""

    splits: Path = DEFAULT_SPLITS
    out: Path = DEFAULT_OUT
    cache: Path = DEFAULT_CACHE
    metrics: Path = DEFAULT_METRICS
    detail: Path = DEFAULT_DETAIL
    root: Path = Path(".")  # the splits' image paths are relative to it
    shard_dir: Path = DEFAULT_SHARDS
    log_dir: Path = DEFAULT_LOG_DIR  # timings: they change on every run, so they stay out of metrics/ (DVC)


@dataclass
class Setup:
    """What every run finds first: the device and precision, the images, the backbone and the cache."""

    device: torch.device
    precision: str
    plan: ImagePlan
    backbone: Backbone | None
    weights: str
    fingerprint: str
    cache_table: pa.Table
    cache_rows_dropped: int
    started: float


@dataclass
class FeaturesRun:
    counts: dict  # the metrics written (a shard: its run-log record)
    summary: str  # the stage's summary line


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
    num_workers: int | str = "auto",
    batch_rows: int = DataParams.batch_rows,
) -> dict:
    """The whole stage; returns the counts it writes (detail_path; their headline to metrics_path). Splits
    without any image still get all three outputs.

    With `shard` (i, n) only the i-th part of the images still to compute is computed, into a shard file
    under shard_dir, and nothing else is written; without it, shard files found there are merged first.
    Timings go to the run log (log_dir/features.json), never to the DVC-tracked metrics. The splits are read
    `batch_rows` rows at a time (params.yaml `data.batch_rows`)."""
    paths = FeaturePaths(splits_dir, out, cache_path, metrics_path, detail_path, root, shard_dir, log_dir)
    return featurise(config, paths, shard, num_workers, batch_rows).counts


def featurise(
    config: FeatureConfig,
    paths: FeaturePaths,
    shard: tuple[int, int] | None = None,
    num_workers: int | str = "auto",
    batch_rows: int = DataParams.batch_rows,
) -> FeaturesRun:
    """run_features, with the summary line."""
    setup = set_up(config, paths, batch_rows)
    if shard is not None:
        return run_shard(setup, config, paths, shard, num_workers)
    plan = setup.plan
    cache_table, from_shards, shard_files = merge_shards(setup.cache_table, paths.shard_dir)
    cached = cache_index(cache_table, setup.fingerprint)
    features, content_errors, reused = reuse_cached(plan, cache_table, cached, config.preprocessing)
    computed = compute(setup, [i for i in plan.representative if i not in cached], config, paths, num_workers)
    features.update(computed.features)
    content_errors.update(computed.errors)
    errors = dict(plan.errors)
    errors.update({p: content_errors[plan.ids[p]] for p in plan.paths if plan.ids.get(p) in content_errors})

    for path in (paths.out, paths.cache):
        remove_leftovers(path)
    table = build_features_table(plan.paths, plan.ids, errors, features)
    metadata = output_metadata(setup.weights, config.preprocessing, setup.precision, setup.fingerprint)
    write_table(table, paths.out, metadata=metadata)
    write_cache(paths.cache, cache_table, setup.fingerprint, computed)
    for merged in shard_files:  # their rows are in the cache now
        merged.unlink()
    metrics = features_metrics(
        plan, table, errors, reused, computed, setup.device, setup.precision, setup.weights, setup.fingerprint
    )
    metrics["precision_param"] = config.precision
    metrics["merged_from_shards"] = from_shards
    write_metrics({k: metrics[k] for k in ("images_ok", "images_failed")}, metrics, paths.metrics, paths.detail)
    timing = run_timing(computed, setup.started, setup.device)
    log = {**timing, "computed": metrics["computed"], "precision": setup.precision}
    write_run_log("features", {**log, "cache_rows_dropped": setup.cache_rows_dropped}, paths.log_dir)
    return FeaturesRun(metrics, summary_line(metrics, timing, len(shard_files)))


def set_up(config: FeatureConfig, paths: FeaturePaths, batch_rows: int) -> Setup:
    started = time.perf_counter()
    device = choose_device(config.device, "params.yaml: 'features.device'")
    precision = resolve_precision(config.precision, device)
    plan = plan_images(paths.splits, paths.root, batch_rows)
    # without any image to featurise no backbone is loaded (nor its weights downloaded)
    backbone = load_backbone(config.weights, config.seed, config.download_timeout_s) if plan.representative else None
    weights = backbone.weights if backbone else NO_BACKBONE
    fingerprint = config_fingerprint(weights, config.preprocessing, precision)
    cache_table, cache_rows_dropped = read_cache_table(paths.cache)
    return Setup(device, precision, plan, backbone, weights, fingerprint, cache_table, cache_rows_dropped, started)


def compute(
    setup: Setup,
    image_ids: list[str],
    config: FeatureConfig,
    paths: FeaturePaths,
    num_workers: int | str,
    shard: tuple[int, int] | None = None,
) -> Computed:
    """The backbone's features of the contents `image_ids` (those of `shard` only, when given)."""
    if setup.backbone is None:
        return Computed({}, {}, {}, 0.0)
    return compute_new(
        setup.backbone, image_ids, setup.plan, config, setup.device, setup.precision, paths.root, num_workers, shard
    )


def summary_line(metrics: dict, timing: dict, shard_files: int) -> str:
    failed = ", ".join(f"{k} {v}" for k, v in metrics["failed_by_error"].items()) or "none"
    merged = f" ({metrics['merged_from_shards']} merged from {shard_files} shard files)" if shard_files else ""
    return (
        f"features: {metrics['images_total']} image paths -> {metrics['images_ok']} ok, "
        f"{metrics['images_failed']} failed ({failed}); {metrics['unique_contents']} unique contents, "
        f"{metrics['reused_from_cache']} reused from cache{merged}, {metrics['computed']} computed at "
        f"{timing['images_per_s']} img/s on {metrics['device']} ({metrics['precision']}, {timing['threads']} "
        f"threads, {timing['num_workers']} decode workers); weights {metrics['weights']}"
    )


def run_shard(
    setup: Setup, config: FeatureConfig, paths: FeaturePaths, shard: tuple[int, int], num_workers: int | str
) -> FeaturesRun:
    """One shard: its batches of the contents the cache lacks, written as cache rows to its shard file."""
    cached = cache_index(setup.cache_table, setup.fingerprint)
    todo = [i for i in setup.plan.representative if i not in cached]
    computed = compute(setup, todo, config, paths, num_workers, shard)
    path = shard_path(paths.shard_dir, shard)
    remove_leftovers(path)
    write_table(new_cache_rows(setup.fingerprint, computed), path)
    timing = run_timing(computed, setup.started, setup.device)
    record = {
        **timing,
        "shard": f"{shard[0]}/{shard[1]}",
        "to_compute": len(todo),
        "computed": len(computed.features),
        "decode_failed": len(computed.errors),
        "precision": setup.precision,
    }
    write_run_log(f"features-shard-{shard[0]}-of-{shard[1]}", record, paths.log_dir)
    summary = (
        f"features shard {shard[0]}/{shard[1]}: {record['computed']} of the {len(todo)} contents to compute "
        f"-> {path} ({record['decode_failed']} undecodable, left to the merge) at {timing['images_per_s']} img/s "
        f"on {setup.device} ({setup.precision}, {timing['threads']} threads)"
    )
    return FeaturesRun(record, summary)


def parser() -> argparse.ArgumentParser:
    stage = stage_parser("python -m pipeline.features", __doc__)
    add = stage.add_argument
    add("--splits", type=Path, default=DEFAULT_SPLITS, help="folder of {train,dev,test}.parquet")
    add("--out", type=Path, default=DEFAULT_OUT, help="features Parquet (default: %(default)s)")
    add("--cache", type=Path, default=DEFAULT_CACHE, help="feature cache kept across runs (default: %(default)s)")
    add("--metrics", type=Path, default=DEFAULT_METRICS, help="headline metrics JSON (default: %(default)s)")
    add("--detail", type=Path, default=DEFAULT_DETAIL, help="every count, the weights and the fingerprint")
    add("--root", type=Path, default=Path("."), help="folder the image paths are relative to (default: the repo)")
    add(
        "--num-workers",
        type=worker_count,
        default=os.environ.get(WORKERS_ENV, "auto"),
        help=f"image decoding processes: auto (none on a CPU, measured fastest; one per core up to 8 with a GPU) "
        f"or a count (default: ${WORKERS_ENV}, else auto); changes no feature",
    )
    add(
        "--shard",
        type=parse_shard,
        default=None,
        metavar="I/N",
        help="compute only part I of N of the images still to compute (batch k goes to part k mod "
        "N) into a shard file, and write nothing else; a later run without --shard merges "
        "the shard files. Under torchrun the ranks are the parts and rank 0 merges.",
    )
    add("--shard-dir", type=Path, default=DEFAULT_SHARDS, help="folder of the shard files (default: %(default)s)")
    add("--log-dir", type=Path, default=DEFAULT_LOG_DIR, help="run log folder: timings (default: %(default)s)")
    return stage


def paths_of(args: argparse.Namespace) -> FeaturePaths:
    return FeaturePaths(
        args.splits, args.out, args.cache, args.metrics, args.detail, args.root, args.shard_dir, args.log_dir
    )


def run_under_torchrun(config: FeatureConfig, args: argparse.Namespace, batch_rows: int) -> str:
    """torchrun: every rank computes its shard; once all succeeded, rank 0 merges and writes the outputs.

    gloo (CPU sockets) is only used to agree that every shard was written, so it works with GPUs too."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", timeout=timedelta(hours=12))  # a large shard can take hours
    try:
        failed = torch.zeros(1)
        try:
            done = featurise(config, paths_of(args), (rank, world), args.num_workers, batch_rows)
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
            done = featurise(config, paths_of(args), None, args.num_workers, batch_rows)
        return done.summary
    finally:
        dist.destroy_process_group()


def run(args: argparse.Namespace) -> str:
    """The stage as `python -m pipeline.features` runs it; its summary line."""
    params = load_params(None, args.params)
    config = read_section(FeatureConfig, section_of(params, "features", args.params), "features", args.params)
    batch_rows = read_section(DataParams, params.get("data"), "data", args.params).batch_rows
    if args.shard is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return run_under_torchrun(config, args, batch_rows)
    return featurise(config, paths_of(args), args.shard, args.num_workers, batch_rows).summary


def main(argv: list[str] | None = None) -> int:
    return run_stage(parser(), run, argv)
