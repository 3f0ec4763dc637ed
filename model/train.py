"""Stage `train`: fit MIMN (or the linear baseline) on data/segmented/train.parquet, select on dev, write
models/mimn.pt.

python -m model.train [--params params.yaml]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from common.atomic import atomic_path
from common.errors import UserError, cli_entry
from common.metrics import detail_path, write_metrics
from common.params import load_params
from common.runlog import write_run_log
from model import distributed
from model.config import MIMNConfig, Settings
from model.data import (
    ImageFeatures,
    PairDataset,
    check_feature_coverage,
    feature_norm,
    features_record,
    read_features,
    read_split,
)
from model.embeddings import build_word_vectors
from model.families import build_model, checkpoint_fields
from model.labels import LabelMap
from model.linear import fit_linear, out_of_fold_logits
from model.loop import fit
from model.losses import make_loss
from model.provenance import aspect_pair_counts, data_source
from model.sampler import LengthBucketSampler, ordered_batches
from model.vocab import Vocab, build_vocab
from model.word_evidence import linear_tables

SEGMENTED_DIR = Path("data/segmented")
FEATURES_PATH = Path("data/features/images.parquet")
MODEL_PATH = Path("models/mimn.pt")
METRICS_PATH = Path("metrics/train.json")  # the headline (write_train_metrics); every figure in DETAIL_PATH
DETAIL_PATH = detail_path("train")
CURVE_PATH = Path("plots/train_curve.csv")
CURVE_COLUMNS = ["epoch", "train_loss", "train_accuracy", "train_macro_f1", "dev_loss", "dev_accuracy", "dev_macro_f1"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def choose_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise UserError(f"params.yaml: 'train.device' must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("params.yaml: 'train.device' is cuda but no GPU is visible; use auto or cpu")
    return torch.device(name)


def configure_torch(device: torch.device, num_threads: int) -> None:
    """All cores by default; deterministic kernels on CPU (the same run twice gives the same numbers)."""
    torch.set_num_threads(num_threads if num_threads > 0 else (os.cpu_count() or 1))
    torch.use_deterministic_algorithms(device.type == "cpu")
    # deterministic mode would also NaN-fill every new tensor: a large cost (LSTM workspaces) and no effect on results
    torch.utils.deterministic.fill_uninitialized_memory = False


def make_loader(dataset: PairDataset, batch_size: int, shuffle: bool, seed: int, bucket: bool = True) -> DataLoader:
    """Training (shuffle=True): length-bucketed batches in a seeded order, or plain seeded shuffling.
    Evaluation (shuffle=False): batches in the data's order (see sampler.ordered_batches for sorted ones)."""
    if shuffle and bucket:
        sampler = LengthBucketSampler([len(t) for t in dataset.text], batch_size, seed)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=dataset.collate, num_workers=0)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=dataset.collate, num_workers=0
    )


def eval_loader(dataset: PairDataset, batch_size: int, bucket: bool = True) -> tuple[DataLoader, list[list[int]]]:
    """Batches sorted by length when `bucket` (predictions come back in batch order: use restore_order)."""
    lengths = [len(t) for t in dataset.text] if bucket else [0] * len(dataset)
    batches = ordered_batches(lengths, batch_size)
    return DataLoader(dataset, batch_sampler=batches, collate_fn=dataset.collate, num_workers=0), batches


def class_weights(counts: list[int], kind: str) -> torch.Tensor | None:
    """none | balanced: n / (C * count) | sqrt: its square root; classes never seen get weight 0."""
    if kind == "none":
        return None
    counts_t = torch.tensor(counts, dtype=torch.float32)
    present = counts_t > 0
    weights = torch.zeros_like(counts_t)
    weights[present] = counts_t.sum() / (int(present.sum()) * counts_t[present])
    return weights.sqrt() if kind == "sqrt" else weights


@dataclass
class Prepared:
    vocab: Vocab
    labels: LabelMap
    config: MIMNConfig
    mean: np.ndarray
    std: np.ndarray
    frames: dict[str, pd.DataFrame]
    datasets: dict[str, PairDataset]
    corpus: list[list[str]]
    class_counts: list[int]
    wide: dict | None = None  # the wide path's tables from the fitted linear baseline (model.word_evidence)
    linear: dict | None = None  # that baseline (LinearModel.to_checkpoint): evaluate reports it without refitting
    data_source: str = "unknown"  # sample | crawl | multizol | unknown (model.provenance)


def prepare(settings: Settings) -> Prepared:
    """Read the splits and features; build vocabulary, label map, feature normalisation and datasets."""
    split_paths = {s: SEGMENTED_DIR / f"{s}.parquet" for s in ("train", "dev", "test")}
    frames = {s: read_split(p) for s, p in split_paths.items() if s != "test" or p.is_file()}
    if frames["train"].empty or frames["dev"].empty:
        raise UserError(f"{split_paths['train']} or {split_paths['dev']} has no rows; check the split stage's output")
    features = read_features(FEATURES_PATH)
    for split, frame in frames.items():
        check_feature_coverage(frame, features, split_paths[split])
    train = frames["train"]
    # a review's text repeats once per scored aspect: count words and train word vectors on each text once.
    # Only training text: dev and test text never shapes the vocabulary or the vectors.
    corpus = list(train.drop_duplicates("review_id")["tokens"]) + list(train["aspect_tokens"])
    vocab = build_vocab(
        corpus, [t for f in frames.values() for t in f["aspect_tokens"]], min_count=settings.train.min_word_count
    )
    labels = LabelMap.for_classes(settings.train.classes)
    config = MIMNConfig.from_params(
        settings.model.mimn_section(), vocab_size=len(vocab), num_classes=labels.num_classes
    )
    if features.dim != config.image_dim and len(features.matrix):
        raise UserError(
            f"{FEATURES_PATH} holds {features.dim}-d features but model.image_dim is {config.image_dim}; "
            "set model.image_dim to match or re-run dvc repro features"
        )
    if not len(features.matrix):  # text-only data: an empty features file; every visual memory is masked
        features = ImageFeatures(features.index, np.zeros((0, config.image_dim), np.float32), features.unusable)
    mean, std = feature_norm(train, features)
    datasets = {
        s: PairDataset(
            f, vocab, labels, features, mean, std, config.max_text_len, config.max_aspect_len, config.max_images
        )
        for s, f in frames.items()
        if s != "test"
    }
    counts = np.bincount(datasets["train"].targets.numpy(), minlength=labels.num_classes).tolist()
    return Prepared(vocab, labels, config, mean, std, frames, datasets, corpus, counts)


def fit_wide_path(prepared: Prepared, settings: Settings) -> dict:
    """The linear baseline fitted on train (C chosen on dev), as the wide path's tables; sets prepared.wide and the
    table sizes in prepared.config. Returns what metrics/train.json records of it."""
    frames, datasets = prepared.frames, prepared.datasets
    linear, rows = fit_linear(
        frames["train"],
        datasets["train"].targets.numpy(),
        frames["dev"],
        datasets["dev"].targets.numpy(),
        prepared.labels.num_classes,
        settings.model.linear_c,
        settings.train.select_metric,
        settings.train.seed,
    )
    aspects = {
        name: prepared.vocab.encode(tokens, prepared.config.max_aspect_len).tolist()
        for frame in frames.values()
        for name, tokens in zip(frame["aspect"], frame["aspect_tokens"], strict=False)
    }
    prepared.wide = linear_tables(linear, list(prepared.vocab.tokens), aspects)
    prepared.linear = linear.to_checkpoint()
    prepared.config = dataclasses.replace(
        prepared.config, wide_pairs=len(prepared.wide["pair_keys"]), wide_aspects=len(prepared.wide["aspect_keys"])
    )
    folds = settings.train.wide_folds if settings.model.wide_init == "linear" else 0
    if folds:
        datasets["train"].wide_logits = torch.from_numpy(
            out_of_fold_logits(
                frames["train"],
                datasets["train"].targets.numpy(),
                prepared.labels.num_classes,
                linear.c,
                folds,
                settings.train.seed,
            )
        )
    best = next(r for r in rows if r["c"] == linear.c)
    return {
        "init": settings.model.wide_init,
        "linear_c": linear.c,
        "stacking_folds": folds,
        "linear_dev": {k: v for k, v in best.items() if k != "c"},
        "pair_features": prepared.config.wide_pairs,
    }


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


def provenance(prepared: Prepared) -> dict:
    """The training data's source and each aspect's training pairs: predict marks what they cannot support."""
    return {
        "data_source": prepared.data_source,
        "aspect_train_pairs": aspect_pair_counts(prepared.frames["train"]["aspect"]),
    }


def write_curve(history: list[dict], path: Path) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CURVE_COLUMNS)
        for row in history:
            writer.writerow([row["epoch"], *(f"{row[c]:.6f}" for c in CURVE_COLUMNS[1:])])


def save_checkpoint(ckpt: dict) -> None:
    # serialise in memory: torch.save names the zip's root folder after the file, and the temporary file's
    # name is random, so saving to it directly would make every run's bytes differ
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    with atomic_path(MODEL_PATH) as tmp:
        tmp.write_bytes(buffer.getvalue())


def make_optimizer(model: nn.Module, settings: Settings) -> torch.optim.Optimizer:
    """AdamW; the word vectors move at train.lr * embeddings.lr_scale (0: frozen) and are never decayed; the wide
    path (model.word_evidence) has its own weight decay, train.wide_weight_decay."""
    lr, scale, wide_scale = settings.train.lr, settings.embeddings.lr_scale, settings.train.wide_lr_scale
    if settings.train.wide_folds and settings.model.wide_init == "linear":
        wide_scale = 0.0  # stacking: the wide path stays the fitted linear baseline
    model.embedding.weight.requires_grad_(scale > 0)
    wide = [p for n, p in model.named_parameters() if n.startswith("word_evidence.")]
    rest = [p for n, p in model.named_parameters() if n != "embedding.weight" and not n.startswith("word_evidence.")]
    groups = [{"params": rest, "weight_decay": settings.train.weight_decay}]
    for p in wide:
        p.requires_grad_(wide_scale > 0)
    if wide and wide_scale > 0:
        groups.append({"params": wide, "lr": lr * wide_scale, "weight_decay": settings.train.wide_weight_decay})
    if scale > 0:
        groups.append({"params": [model.embedding.weight], "lr": lr * scale, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=lr)


def model_section(prepared: Prepared, settings: Settings) -> dict:
    """params.yaml's model section plus the wide path's table sizes (known once its tables are built)."""
    return {
        **settings.model.mimn_section(),
        "wide_pairs": prepared.config.wide_pairs,
        "wide_aspects": prepared.config.wide_aspects,
    }


def train_mimn(prepared: Prepared, settings: Settings, seed: int, device: torch.device, verbose: bool = True):
    """One seeded MIMN run: word vectors, model, fit. Returns (model with the best weights, FitResult, coverage)."""
    tp = settings.train
    seed_everything(seed)
    vectors = build_word_vectors(
        prepared.vocab,
        settings.embeddings.source,
        prepared.config.embed_dim,
        seed,
        prepared.corpus,
        dataclasses.asdict(settings.embeddings),
    )
    seed_everything(seed)
    model = build_model(
        settings.model.family,
        model_section(prepared, settings),
        prepared.config.vocab_size,
        prepared.config.num_classes,
        vectors.weights,
    )
    if getattr(model, "word_evidence", None) is not None:
        model.word_evidence.load_linear(prepared.wide, with_coefficients=settings.model.wide_init == "linear")
    optimizer = make_optimizer(model, settings)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=tp.max_epochs)
        if tp.lr_schedule == "cosine"
        else None
    )
    weights = class_weights(prepared.class_counts, tp.class_weights)
    loss_fn = make_loss(
        tp.loss,
        prepared.labels.class_scores,
        tp.ordinal_weight,
        None if weights is None else weights.to(device),
        tp.label_smoothing,
    ).to(device)
    # [ddp] with torchrun: the model in DDP and this rank's share of each batch; both unchanged in one process
    result = fit(
        distributed.wrap_model(model, device, seed),
        loss_fn,
        optimizer,
        distributed.shard_loader(
            make_loader(prepared.datasets["train"], tp.batch_size, shuffle=True, seed=seed, bucket=tp.bucket_by_length)
        ),
        eval_loader(prepared.datasets["dev"], tp.batch_size, bucket=tp.bucket_by_length)[0],
        max_epochs=tp.max_epochs,
        patience=tp.patience,
        device=device,
        monitor=tp.select_metric,
        scheduler=scheduler,
        show_progress=verbose,
        on_epoch_end=(
            lambda row: print(
                f"seed {seed} epoch {row['epoch']}: train loss {row['train_loss']:.4f} "
                f"acc {row['train_accuracy']:.4f} | "
                f"dev loss {row['dev_loss']:.4f} acc {row['dev_accuracy']:.4f} macro-F1 {row['dev_macro_f1']:.4f} "
                f"weighted-F1 {row['dev_weighted_f1']:.4f}",
                flush=True,
            )
        )
        if verbose
        else None,
    )
    model.load_state_dict(distributed.unwrap_state(result.best_state))  # [ddp] DDP's keys are module.*
    return model.cpu(), result, vectors


def run_linear(prepared: Prepared, settings: Settings, params: dict, started: float) -> dict:
    frames, labels = prepared.frames, prepared.labels
    model, rows = fit_linear(
        frames["train"],
        prepared.datasets["train"].targets.numpy(),
        frames["dev"],
        prepared.datasets["dev"].targets.numpy(),
        labels.num_classes,
        settings.model.linear_c,
        settings.train.select_metric,
        settings.train.seed,
    )
    best = next(r for r in rows if r["c"] == model.c)
    save_checkpoint(
        {
            "family": "linear",
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
        "family": "linear",
        "c": model.c,
        "dev": {k: v for k, v in best.items() if k != "c"},
        "dev_by_c": rows,
        "train_pairs": len(frames["train"]),
        "dev_pairs": len(frames["dev"]),
        "features": len(model.features),
        "num_classes": labels.num_classes,
    }
    write_train_metrics(metrics)
    write_run_log("train", {"seconds": round(time.perf_counter() - started, 2)})
    return metrics


def write_train_metrics(metrics: dict) -> None:
    """metrics/train.json: the split sizes, the kept epoch and its dev macro-F1; the rest in DETAIL_PATH."""
    headline = {key: metrics[key] for key in ("train_pairs", "dev_pairs", "best_epoch") if key in metrics}
    headline["dev_macro_f1"] = metrics["dev"]["macro_f1"]
    write_metrics(headline, metrics, METRICS_PATH, DETAIL_PATH)


def visual_memory(datasets: dict[str, PairDataset]) -> dict:
    """How many train and dev pairs have a usable image; with none, every visual memory is masked (text only)."""
    with_image = {split: sum(1 for rows in datasets[split].image_rows if len(rows)) for split in ("train", "dev")}
    note = (
        "masked: no train or dev pair has a usable image, the model reads the text only"
        if not any(with_image.values())
        else "used where a pair has a usable image, masked elsewhere"
    )
    return {
        "visual_memory": note,
        "train_pairs_with_image": with_image["train"],
        "dev_pairs_with_image": with_image["dev"],
    }


def run(params: dict, verbose: bool = True) -> dict:
    """Train and write the model, curve and metrics; returns metrics/train.json's content."""
    settings = Settings.from_params(params)  # every param checked before anything is read or written
    source = data_source(params)
    params = {
        "model": dataclasses.asdict(settings.model),
        "embeddings": dataclasses.asdict(settings.embeddings),
        "train": dataclasses.asdict(settings.train),
    }
    params["model"]["linear_c"] = list(settings.model.linear_c)
    started = time.perf_counter()
    device = choose_device(settings.train.device)
    configure_torch(device, settings.train.num_threads)
    device = distributed.setup(device, settings.train.num_threads)  # [ddp] joins torchrun's group, if any
    verbose = verbose and distributed.is_main()
    seed_everything(settings.train.seed)
    prepared = prepare(settings)
    prepared.data_source = source
    if settings.model.family == "linear":  # [ddp] nothing to share: rank 0 fits it alone
        return run_linear(prepared, settings, params, started) if distributed.is_main() else {"family": "linear"}
    wide = (
        fit_wide_path(prepared, settings) if settings.model.family == "mimn" and settings.model.word_evidence else None
    )
    runs = [train_mimn(prepared, settings, seed, device, verbose) for seed in settings.train.seeds]
    model, result, vectors = runs[0]
    repeats = [
        {
            "seed": seed,
            "model": m.state_dict(),
            "epoch": int(r.best_epoch),
            "metrics": {k: float(v) for k, v in r.best_dev.items()},
        }
        for seed, (m, r, _) in zip(settings.train.seeds[1:], runs[1:], strict=False)
    ]
    metrics = {
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
    if distributed.is_main():  # [ddp] rank 0 writes
        save_checkpoint(
            checkpoint(model, prepared, result.best_epoch, result.best_dev, params, result.history, repeats)
        )
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
    return {
        **metrics,
        "seconds": round(time.perf_counter() - started, 2),
        "train_pairs_per_second": round(result.train_pairs_per_second, 1),
    }


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.train", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="parameter file (sections model, embeddings, train)")
    args = parser.parse_args(argv)
    params = {s: load_params(s, args.params) for s in ("model", "embeddings", "train")}
    whole = load_params(None, args.params)  # where the raw reviews came from (model.provenance.data_source)
    params.update({s: whole[s] for s in ("data", "crawl", "sample") if isinstance(whole.get(s), dict)})
    nproc = Settings.from_params(params).train.nproc
    if nproc > 1 and not distributed.launched():  # [ddp] train.nproc: this command again, as nproc processes
        return distributed.relaunch(nproc, "model.train", ["--params", args.params])
    try:
        metrics = run(params)
        prints = distributed.is_main()
    finally:
        distributed.teardown()
    if not prints:
        return 0
    if metrics["family"] == "linear":
        print(
            f"train (linear): C {metrics['c']} chosen on dev, dev macro-F1 {metrics['dev']['macro_f1']:.4f} "
            f"acc {metrics['dev']['accuracy']:.4f} -> {MODEL_PATH}"
        )
        return 0
    print(
        f"train: {metrics['train_pairs']} train / {metrics['dev_pairs']} dev pairs, vocab {metrics['vocab_size']} "
        f"(embedding coverage {metrics['embedding_coverage']:.1%}), seeds {metrics['seeds']}, {metrics['epochs_run']} "
        f"epochs, best epoch {metrics['best_epoch']} dev macro-F1 {metrics['dev']['macro_f1']:.4f} acc "
        f"{metrics['dev']['accuracy']:.4f}, {metrics['train_pairs_per_second']:.0f} pairs/s, "
        f"{metrics['seconds']:.1f}s -> {MODEL_PATH}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
