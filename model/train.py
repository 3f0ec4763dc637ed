"""Stage `train`: fit MIMN on data/segmented/train.parquet, early-stop on dev macro-F1, write models/mimn.pt.

    python -m model.train [--params params.yaml]
"""
from __future__ import annotations

import argparse
import csv
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

from model.config import MIMNConfig
from model.data import PairDataset, check_feature_coverage, feature_norm, read_features, read_split
from model.embeddings import build_word_vectors
from model.labels import LabelMap
from model.loop import fit
from model.families import build_model, checkpoint_fields
from model.vocab import Vocab, build_vocab
from common.errors import UserError, cli_entry
from common.atomic import atomic_path, write_json
from common.params import load_params

SEGMENTED_DIR = Path("data/segmented")
FEATURES_PATH = Path("data/features/images.parquet")
MODEL_PATH = Path("models/mimn.pt")
METRICS_PATH = Path("metrics/train.json")
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


def make_loader(dataset: PairDataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      collate_fn=dataset.collate, num_workers=0)


@dataclass
class Prepared:
    vocab: Vocab
    labels: LabelMap
    config: MIMNConfig
    mean: np.ndarray
    std: np.ndarray
    datasets: dict[str, PairDataset]
    word_vectors: torch.Tensor
    embedding_coverage: float
    class_counts: list[int]


def prepare(model_params: dict, embedding_params: dict, train_params: dict) -> Prepared:
    """Read the splits and features; build vocabulary, label map, feature normalisation, datasets, word vectors."""
    split_paths = {s: SEGMENTED_DIR / f"{s}.parquet" for s in ("train", "dev", "test")}
    frames = {s: read_split(p) for s, p in split_paths.items() if s != "test" or p.is_file()}
    if frames["train"].empty or frames["dev"].empty:
        raise UserError(f"{split_paths['train']} or {split_paths['dev']} has no rows; check the split stage's output")
    features = read_features(FEATURES_PATH)
    for split, frame in frames.items():
        check_feature_coverage(frame, features, split_paths[split])
    train = frames["train"]
    # a review's text repeats once per scored aspect: count words and train word vectors on each text once
    corpus = list(train.drop_duplicates("review_id")["tokens"]) + list(train["aspect_tokens"])
    vocab = build_vocab(corpus,
                        [t for f in frames.values() for t in f["aspect_tokens"]],
                        min_count=int(train_params.get("min_word_count", 1)))
    try:
        labels = LabelMap.for_classes(int(train_params.get("classes", 10)))
        config = MIMNConfig.from_params(model_params, vocab_size=len(vocab), num_classes=labels.num_classes)
    except ValueError as exc:
        raise UserError(f"params.yaml: {exc}") from exc
    if features.dim != config.image_dim:
        raise UserError(f"{FEATURES_PATH} holds {features.dim}-d features but model.image_dim is {config.image_dim}; "
                        "set model.image_dim to match or re-run dvc repro features")
    mean, std = feature_norm(train, features)
    datasets = {s: PairDataset(f, vocab, labels, features, mean, std, config.max_text_len, config.max_aspect_len,
                               config.max_images) for s, f in frames.items() if s != "test"}
    vectors = build_word_vectors(vocab, str(embedding_params.get("source", "sgns")), config.embed_dim,
                                 int(train_params["seed"]),
                                 corpus, embedding_params)
    counts = np.bincount(datasets["train"].targets.numpy(), minlength=labels.num_classes).tolist()
    return Prepared(vocab, labels, config, mean, std, datasets, vectors.weights, vectors.coverage(), counts)


def checkpoint(model: nn.Module, prepared: Prepared, epoch: int, dev_metrics: dict, params: dict,
               history: list[dict]) -> dict:
    """Only tensors, lists, dicts, str, int, float: loads with torch.load(weights_only=True)."""
    return {
        "model": model.state_dict(),
        **checkpoint_fields(model),   # family and config
        "vocab": list(prepared.vocab.tokens),
        "labels": prepared.labels.to_dict(),
        "epoch": int(epoch),
        "metrics": {k: float(v) for k, v in dev_metrics.items()},
        "params": params,
        "feature_norm": {"mean": torch.from_numpy(prepared.mean), "std": torch.from_numpy(prepared.std)},
        "train_class_counts": prepared.class_counts,
        "history": history,
    }


def write_curve(history: list[dict], path: Path) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CURVE_COLUMNS)
        for row in history:
            writer.writerow([row["epoch"], *(f"{row[c]:.6f}" for c in CURVE_COLUMNS[1:])])


def run(params: dict) -> dict:
    """Train and write the model, curve and metrics; returns metrics/train.json's content."""
    model_params, embedding_params, train_params = params["model"], params["embeddings"], params["train"]
    started = time.perf_counter()
    seed = int(train_params["seed"])
    device = choose_device(str(train_params.get("device", "auto")))
    configure_torch(device, int(train_params.get("num_threads", 0)))
    seed_everything(seed)
    prepared = prepare(model_params, embedding_params, train_params)
    seed_everything(seed)
    model = build_model(str(model_params.get("family", "mimn")), model_params, len(prepared.vocab),
                        prepared.labels.num_classes, prepared.word_vectors)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(train_params["lr"]))
    batch_size = int(train_params["batch_size"])
    result = fit(model, nn.CrossEntropyLoss(), optimizer,
                 make_loader(prepared.datasets["train"], batch_size, shuffle=True, seed=seed),
                 make_loader(prepared.datasets["dev"], batch_size, shuffle=False, seed=seed),
                 max_epochs=int(train_params["max_epochs"]), patience=int(train_params["patience"]), device=device,
                 on_epoch_end=lambda row: print(
                     f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | "
                     f"dev loss {row['dev_loss']:.4f} acc {row['dev_accuracy']:.4f} macro-F1 {row['dev_macro_f1']:.4f}",
                     flush=True))
    model.load_state_dict(result.best_state)
    model.cpu()
    ckpt = checkpoint(model, prepared, result.best_epoch, result.best_dev, params, result.history)
    # serialise in memory: torch.save names the zip's root folder after the file, and the temporary file's
    # name is random, so saving to it directly would make every run's bytes differ
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    with atomic_path(MODEL_PATH) as tmp:
        tmp.write_bytes(buffer.getvalue())
    write_curve(result.history, CURVE_PATH)
    metrics = {
        "best_epoch": result.best_epoch,
        "dev": result.best_dev,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "seconds": round(time.perf_counter() - started, 2),
        "train_seconds": round(result.seconds, 2),
        "train_pairs_per_second": round(result.train_pairs_per_second, 1),
        "train_pairs": len(prepared.datasets["train"]),
        "dev_pairs": len(prepared.datasets["dev"]),
        "vocab_size": len(prepared.vocab),
        "embedding_source": str(embedding_params.get("source", "sgns")),
        "embedding_coverage": round(prepared.embedding_coverage, 4),
        "num_classes": prepared.labels.num_classes,
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": device.type,
    }
    write_json(metrics, METRICS_PATH)
    return metrics


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.train", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="parameter file (sections model, embeddings, train)")
    args = parser.parse_args(argv)
    params = {s: load_params(s, args.params) for s in ("model", "embeddings", "train")}
    metrics = run(params)
    print(f"train: {metrics['train_pairs']} train / {metrics['dev_pairs']} dev pairs, vocab {metrics['vocab_size']} "
          f"(embedding coverage {metrics['embedding_coverage']:.1%}), {metrics['epochs_run']} epochs, best epoch "
          f"{metrics['best_epoch']} dev macro-F1 {metrics['dev']['macro_f1']:.4f} acc {metrics['dev']['accuracy']:.4f}, "
          f"{metrics['train_pairs_per_second']:.0f} pairs/s, {metrics['seconds']:.1f}s -> {MODEL_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
