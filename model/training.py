"""One seeded training run of a neural family: word vectors, model, optimiser, loss, and the fit on train with
the epoch chosen on dev (model/loop.py); with torchrun, in DistributedDataParallel (model/distributed.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from model import distributed
from model.data import eval_loader, make_loader
from model.embeddings import WordVectors, build_word_vectors
from model.families import build_model
from model.loop import FitResult, fit
from model.losses import class_weights, make_loss
from model.prepare import Prepared
from model.runtime import seed_everything
from model.settings import Settings


def make_optimizer(model: nn.Module, settings: Settings) -> torch.optim.Optimizer:
    """AdamW (fused); the word vectors move at train.lr * embeddings.lr_scale (0: frozen) and are never decayed; the
    wide path (model.word_evidence) has its own weight decay, train.wide_weight_decay."""
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
    # fused: one kernel per step instead of several per parameter (on CPU the step took 4 % of MIMN's training)
    return torch.optim.AdamW(groups, lr=lr, fused=True)


def model_section(prepared: Prepared, settings: Settings) -> dict:
    """params.yaml's model section plus the wide path's table sizes (known once its tables are built)."""
    return {
        **dataclasses.asdict(settings.model),
        "wide_pairs": prepared.config.wide_pairs,
        "wide_aspects": prepared.config.wide_aspects,
    }


def seeded_model(prepared: Prepared, settings: Settings, seed: int) -> tuple[nn.Module, WordVectors]:
    """The word vectors and a fresh model of model.family, both seeded; MIMN's wide path loaded from the tables."""
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
    return model, vectors


def loss_for(prepared: Prepared, settings: Settings, device: torch.device) -> nn.Module:
    tp = settings.train
    weights = class_weights(prepared.class_counts, tp.class_weights)
    return make_loss(
        tp.loss,
        prepared.labels.class_scores,
        tp.ordinal_weight,
        None if weights is None else weights.to(device),
        tp.label_smoothing,
    ).to(device)


def epoch_printer(seed: int) -> Callable[[dict], None]:
    def show(row: dict) -> None:
        print(
            f"seed {seed} epoch {row['epoch']}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | "
            f"dev loss {row['dev_loss']:.4f} acc {row['dev_accuracy']:.4f} macro-F1 {row['dev_macro_f1']:.4f} "
            f"weighted-F1 {row['dev_weighted_f1']:.4f}",
            flush=True,
        )

    return show


def train_seed(
    prepared: Prepared, settings: Settings, seed: int, device: torch.device, verbose: bool = True
) -> tuple[nn.Module, FitResult, WordVectors]:
    """One seeded run: word vectors, model, fit. Returns (model with the best weights on CPU, FitResult, vectors)."""
    tp = settings.train
    model, vectors = seeded_model(prepared, settings, seed)
    optimizer = make_optimizer(model, settings)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=tp.max_epochs)
        if tp.lr_schedule == "cosine"
        else None
    )
    # [ddp] with torchrun: the model in DDP and this rank's share of each batch; both unchanged in one process
    result = fit(
        distributed.wrap_model(model, device, seed),
        loss_for(prepared, settings, device),
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
        on_epoch_end=epoch_printer(seed) if verbose else None,
    )
    model.load_state_dict(distributed.unwrap_state(result.best_state))  # [ddp] DDP's keys are module.*
    return model.cpu(), result, vectors
