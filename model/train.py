"""Stage `train`: fit MIMN (or another model.family) on data/segmented/train.parquet, select on dev, write
models/mimn.pt.

python -m model.train [--params params.yaml] [--threads N]

Reads params.yaml's model, embeddings and train sections (model/settings.py), and the splits and image features
`data.batch_rows` rows at a time (model/splits.py, model/pairs.py). With train.nproc > 1 the command
runs itself again as that many processes under torchrun (model/distributed.py); rank 0 writes the outputs.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import time
from pathlib import Path

import torch
from torch import nn

from common.atomic import atomic_path
from common.device import choose_device
from common.errors import UserError
from common.metrics import detail_path, write_metrics
from common.params import load_params, read_section, section_of
from common.runlog import write_run_log
from common.stage import run_stage, stage_parser
from model import distributed
from model.checkpoint import MODEL_PATH, save_checkpoint
from model.data import FEATURES_PATH, features_record
from model.families import LINEAR, checkpoint_fields
from model.prepare import Prepared, fit_linear_baseline, fit_wide_path, prepare, provenance, visual_memory
from model.provenance import data_source
from model.runtime import add_threads_option, configure_torch, seed_everything, torch_threads
from model.settings import Settings
from model.training import train_seed
from pipeline.paths import DataParams

METRICS_PATH = Path("metrics/train.json")  # the headline (write_train_metrics); every figure in DETAIL_PATH
DETAIL_PATH = detail_path("train")
CURVE_PATH = Path("plots/train_curve.csv")
CURVE_COLUMNS = ["epoch", "train_loss", "train_accuracy", "train_macro_f1", "dev_loss", "dev_accuracy", "dev_macro_f1"]
SECTIONS = ("model", "embeddings", "train")  # what it trains; data, crawl, sample: where the data came from


def checkpoint(
    model: nn.Module,
    prepared: Prepared,
    epoch: int,
    dev_metrics: dict,
    params: dict,
    history: list[dict],
    repeats: list[dict],
) -> dict:
    """Only tensors, lists, dicts, str, int, float: loads with torch.load(weights_only=True)."""
    return {
        "model": model.state_dict(),
        **checkpoint_fields(model),  # family and config
        "vocab": list(prepared.vocab.tokens),
        "labels": prepared.labels.to_dict(),
        "epoch": int(epoch),
        "metrics": {k: float(v) for k, v in dev_metrics.items()},
        "params": params,
        "features": features_record(FEATURES_PATH),  # backbone and weights of the features: predict must match them
        "feature_norm": {"mean": torch.from_numpy(prepared.mean), "std": torch.from_numpy(prepared.std)},
        "train_class_counts": prepared.class_counts,
        "history": history,
        "repeats": repeats,  # the other seeds' models: [{seed, model, epoch, metrics}]
        **({"linear_baseline": prepared.linear} if prepared.linear else {}),  # fitted for the wide path
        **provenance(prepared),
    }


def write_curve(history: list[dict], path: Path) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CURVE_COLUMNS)
        for row in history:
            writer.writerow([row["epoch"], *(f"{row[c]:.6f}" for c in CURVE_COLUMNS[1:])])


def write_train_metrics(metrics: dict) -> None:
    """metrics/train.json: the split sizes, the kept epoch and its dev macro-F1; the rest in DETAIL_PATH."""
    headline = {key: metrics[key] for key in ("train_pairs", "dev_pairs", "best_epoch") if key in metrics}
    headline["dev_macro_f1"] = metrics["dev"]["macro_f1"]
    write_metrics(headline, metrics, METRICS_PATH, DETAIL_PATH)


def run_linear(prepared: Prepared, settings: Settings, params: dict, started: float) -> dict:
    labels = prepared.labels
    model, rows = fit_linear_baseline(prepared, settings)
    best = next(r for r in rows if r["c"] == model.c)
    save_checkpoint(
        {
            "family": LINEAR,
            "linear": model.to_checkpoint(),
            "labels": labels.to_dict(),
            "epoch": 0,
            "metrics": {k: v for k, v in best.items() if k != "c"},
            "params": params,
            "train_class_counts": prepared.class_counts,
            "history": [],
            "repeats": [],
            **provenance(prepared),
        }
    )
    write_curve([], CURVE_PATH)
    metrics = {
        "family": LINEAR,
        "c": model.c,
        "dev": {k: v for k, v in best.items() if k != "c"},
        "dev_by_c": rows,
        "train_pairs": len(prepared.datasets["train"]),
        "dev_pairs": len(prepared.datasets["dev"]),
        "features": len(model.features),
        "num_classes": labels.num_classes,
    }
    write_train_metrics(metrics)
    write_run_log("train", {"seconds": round(time.perf_counter() - started, 2)})
    return metrics


def neural_metrics(prepared: Prepared, settings: Settings, runs: list, wide: dict | None, device) -> dict:
    """What metrics/train.json and reports/train_detail.json record of the seeds' runs (the first is kept)."""
    model, result, vectors = runs[0]
    return {
        "family": settings.model.family,
        "best_epoch": result.best_epoch,
        "dev": result.best_dev,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "train_pairs": len(prepared.datasets["train"]),
        "dev_pairs": len(prepared.datasets["dev"]),
        "vocab_size": len(prepared.vocab),
        "embedding_source": settings.embeddings.source,
        "embedding_coverage": round(vectors.coverage(), 4),
        "embedding_vectors_skipped_nonfinite": vectors.skipped_nonfinite,
        "num_classes": prepared.labels.num_classes,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(
            p.numel()
            for n, p in model.named_parameters()
            if n != "embedding.weight" or settings.embeddings.lr_scale > 0
        ),
        **visual_memory(prepared.datasets),
        **({"wide_path": wide} if wide else {}),
        "device": device.type,
        "seeds": settings.train.seeds,
        "dev_by_seed": [
            {"seed": s, "best_epoch": r.best_epoch, **r.best_dev}
            for s, (_, r, _) in zip(settings.train.seeds, runs, strict=False)
        ],
        **({"processes": distributed.world_size()} if distributed.world_size() > 1 else {}),
    }


def write_neural(prepared: Prepared, settings: Settings, params: dict, runs: list, metrics: dict, started) -> None:
    """The checkpoint (the first seed's model, the others as repeats), the curve, the metrics and the run log."""
    model, result, _ = runs[0]
    repeats = [
        {
            "seed": seed,
            "model": m.state_dict(),
            "epoch": int(r.best_epoch),
            "metrics": {k: float(v) for k, v in r.best_dev.items()},
        }
        for seed, (m, r, _) in zip(settings.train.seeds[1:], runs[1:], strict=False)
    ]
    save_checkpoint(checkpoint(model, prepared, result.best_epoch, result.best_dev, params, result.history, repeats))
    write_curve(result.history, CURVE_PATH)
    write_train_metrics(metrics)
    # timings change on every run: kept out of metrics/ and reports/ (DVC-tracked), in logs/train.json
    write_run_log(
        "train",
        {
            "seconds": round(time.perf_counter() - started, 2),
            "train_seconds": round(result.seconds, 2),
            "train_pairs_per_second": round(result.train_pairs_per_second, 1),
        },
    )


def run(params: dict, verbose: bool = True, threads: int = 0) -> dict:
    """Train and write the model, curve and metrics; returns metrics/train.json's content (plus the timing)."""
    settings = Settings.from_params(params)  # every param checked before anything is read or written
    batch_rows = read_section(DataParams, params.get("data"), "data").batch_rows  # rows read at a time
    source = data_source(params)
    record = {section: dataclasses.asdict(getattr(settings, section)) for section in SECTIONS}
    record["model"]["linear_c"] = list(settings.model.linear_c)
    started = time.perf_counter()
    device = choose_device(settings.train.device, "params.yaml: 'train.device'")
    configure_torch(device, threads)
    device = distributed.setup(device, threads)  # [ddp] joins torchrun's group, if any
    verbose = verbose and distributed.is_main()
    seed_everything(settings.train.seed)
    prepared = prepare(settings, batch_rows)
    prepared.data_source = source
    if settings.model.family == LINEAR:  # [ddp] nothing to share: rank 0 fits it alone
        return run_linear(prepared, settings, record, started) if distributed.is_main() else {"family": LINEAR}
    wide = (
        fit_wide_path(prepared, settings) if settings.model.family == "mimn" and settings.model.word_evidence else None
    )
    runs = [train_seed(prepared, settings, seed, device, verbose) for seed in settings.train.seeds]
    metrics = neural_metrics(prepared, settings, runs, wide, device)
    if distributed.is_main():  # [ddp] rank 0 writes
        write_neural(prepared, settings, record, runs, metrics, started)
    return {
        **metrics,
        "seconds": round(time.perf_counter() - started, 2),
        "train_pairs_per_second": round(runs[0][1].train_pairs_per_second, 1),
    }


def summary(metrics: dict) -> str:
    if metrics["family"] == LINEAR:
        return (
            f"train (linear): C {metrics['c']} chosen on dev, dev macro-F1 {metrics['dev']['macro_f1']:.4f} "
            f"acc {metrics['dev']['accuracy']:.4f} -> {MODEL_PATH}"
        )
    return (
        f"train: {metrics['train_pairs']} train / {metrics['dev_pairs']} dev pairs, vocab {metrics['vocab_size']} "
        f"(embedding coverage {metrics['embedding_coverage']:.1%}), seeds {metrics['seeds']}, {metrics['epochs_run']} "
        f"epochs, best epoch {metrics['best_epoch']} dev macro-F1 {metrics['dev']['macro_f1']:.4f} acc "
        f"{metrics['dev']['accuracy']:.4f}, {metrics['train_pairs_per_second']:.0f} pairs/s -> {MODEL_PATH}"
    )


def run_args(args: argparse.Namespace) -> str:
    whole = load_params(None, args.params)  # read once: the sections and where the raw reviews came from
    params = {s: section_of(whole, s, args.params) for s in SECTIONS}
    params.update({s: whole[s] for s in ("data", "crawl", "sample") if isinstance(whole.get(s), dict)})
    threads = torch_threads(args.threads)
    nproc = Settings.from_params(params, args.params).train.nproc
    if nproc > 1 and not distributed.launched():  # [ddp] train.nproc: this command again, as nproc processes
        argv = ["--params", args.params, *(["--threads", str(args.threads)] if args.threads is not None else [])]
        code = distributed.relaunch(nproc, "model.train", argv)
        if code != 0:
            raise UserError(f"train: the {nproc} torchrun processes failed (exit status {code}; their output is above)")
        return f"train: {nproc} processes under torchrun done"
    try:
        metrics = run(params, threads=threads)
        rank = distributed.rank()
    finally:
        distributed.teardown()
    return summary(metrics) if rank == 0 else f"train: rank {rank} done"  # [ddp] rank 0 alone reports


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("python -m model.train", __doc__)
    add_threads_option(parser)
    return run_stage(parser, run_args, argv)


if __name__ == "__main__":
    raise SystemExit(main())
