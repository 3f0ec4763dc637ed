"""A model-agnostic training loop: epochs, early stopping on a dev metric, best weights kept in memory.

Batches are `(inputs: dict of tensors, targets: tensor)`; the model is called as `model(**inputs)`.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from common.errors import UserError
from model import distributed
from model.metrics import classification_metrics

Batch = tuple[dict[str, torch.Tensor], torch.Tensor]


@dataclass
class FitResult:
    best_epoch: int
    best_state: dict[str, torch.Tensor]
    best_dev: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch: epoch, train_*, dev_*
    seconds: float = 0.0
    train_pairs_per_second: float = 0.0
    stopped_early: bool = False


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU that supports it; nothing on CPU."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(inputs: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in inputs.items()}


@torch.no_grad()
def predict(
    model: nn.Module, batches: Iterable[Batch], device: torch.device, loss_fn: Callable | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """(probabilities (n, C) float32, targets (n,), mean loss) in the loader's order, model in eval mode."""
    model.eval()
    probs, targets, loss_sum = [], [], 0.0
    for inputs, target in batches:
        with autocast_for(device):
            logits = model(**to_device(inputs, device)).float()
        if loss_fn is not None:
            loss_sum += float(loss_fn(logits, target.to(device))) * len(target)
        probs.append(torch.softmax(logits, dim=-1).cpu())
        targets.append(target)
    if not probs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), 0.0
    p, t = torch.cat(probs).numpy().astype(np.float32), torch.cat(targets).numpy()
    return p, t, loss_sum / max(len(t), 1)


def train_epoch(
    model: nn.Module,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Batch],
    device: torch.device,
    progress: tqdm,
) -> tuple[dict[str, float], int]:
    model.train()
    loss_sum, preds, targets = 0.0, [], []
    for inputs, target in batches:
        target = target.to(device)
        optimizer.zero_grad(set_to_none=True)
        with autocast_for(device):
            logits = model(**to_device(inputs, device)).float()
        loss = loss_fn(logits, target)
        if not torch.isfinite(loss):
            raise UserError(
                f"training loss became {float(loss.detach())} (not finite) after {progress.n} pairs of this epoch; "
                "lower train.lr or check the word vectors and image features for NaN/Inf"
            )
        loss.backward()
        optimizer.step()
        loss_sum += float(loss.detach()) * len(target)
        preds.append(logits.argmax(-1).cpu())
        targets.append(target.cpu())
        progress.update(len(target))
    y_pred, y_true = torch.cat(preds).numpy(), torch.cat(targets).numpy()
    loss_sum, y_pred, y_true = distributed.gather_epoch(loss_sum, y_pred, y_true)  # [ddp] every rank's pairs
    return {"loss": loss_sum / len(y_true), **classification_metrics(y_true, y_pred)}, len(y_true)


def fit(
    model: nn.Module,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    train_batches: Iterable[Batch],
    dev_batches: Iterable[Batch],
    *,
    max_epochs: int,
    patience: int,
    device: torch.device,
    monitor: str = "macro_f1",
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
    show_progress: bool = True,
) -> FitResult:
    """Train up to `max_epochs`, stop after `patience` epochs without a better dev `monitor` (`loss`: lower is
    better; any other metric: higher), keep the best weights. `scheduler` steps once per epoch."""
    model.to(device)
    result = FitResult(best_epoch=0, best_state=copy.deepcopy(model.state_dict()), best_dev={})
    best_score, waited, trained_pairs, train_seconds = -float("inf"), 0, 0, 0.0
    started = time.perf_counter()
    for epoch in range(1, max_epochs + 1):
        total = len(train_batches.dataset) if hasattr(train_batches, "dataset") else None
        with tqdm(
            total=total, desc=f"epoch {epoch}/{max_epochs}", unit="pair", disable=not show_progress, leave=False
        ) as bar:
            tick = time.perf_counter()
            train_metrics, n = train_epoch(model, loss_fn, optimizer, train_batches, device, bar)
            train_seconds += time.perf_counter() - tick
            trained_pairs += n
        if scheduler is not None:
            scheduler.step()
        probs, targets, dev_loss = predict(model, dev_batches, device, loss_fn)
        dev_metrics = {"loss": dev_loss, **classification_metrics(targets, probs.argmax(-1) if len(probs) else targets)}
        row = {
            "epoch": epoch,
            **{f"train_{k}": v for k, v in train_metrics.items()},
            **{f"dev_{k}": v for k, v in dev_metrics.items()},
        }
        result.history.append(row)
        if on_epoch_end is not None:
            on_epoch_end(row)
        score = -dev_metrics["loss"] if monitor == "loss" else dev_metrics[monitor]
        score = distributed.agree(score)  # [ddp] rank 0's score: best epoch and early stop decided alike everywhere
        if score > best_score:
            best_score, waited = score, 0
            result.best_epoch, result.best_dev = epoch, dev_metrics
            result.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= patience:
                result.stopped_early = True
                break
    result.seconds = time.perf_counter() - started
    result.train_pairs_per_second = trained_pairs / train_seconds if train_seconds > 0 else 0.0
    return result
