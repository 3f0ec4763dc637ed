"""Report figures (matplotlib, Agg backend), written atomically with no timestamp so re-runs match."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common.atomic import atomic_path  # noqa: E402


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def confusion_png(matrix: np.ndarray, class_names: list[str], path: str | Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted score")
    ax.set_ylabel("true score")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), value in np.ndenumerate(matrix):
        ax.text(
            col, row, str(value), ha="center", va="center", fontsize=7, color="white" if value > threshold else "black"
        )
    fig.colorbar(image, ax=ax)
    _save(fig, path)


def learning_curve_png(history: list[dict], path: str | Path, best_epoch: int) -> None:
    epochs = [row["epoch"] for row in history]
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "dev"):
        loss_ax.plot(epochs, [row[f"{split}_loss"] for row in history], marker="o", label=f"{split} loss")
        score_ax.plot(epochs, [row[f"{split}_macro_f1"] for row in history], marker="o", label=f"{split} macro-F1")
        score_ax.plot(epochs, [row[f"{split}_accuracy"] for row in history], linestyle="--", label=f"{split} accuracy")
    for ax in (loss_ax, score_ax):
        ax.axvline(best_epoch, color="grey", linestyle=":", label="best epoch")
        ax.set_xlabel("epoch")
        ax.legend()
    loss_ax.set_title("cross-entropy loss")
    score_ax.set_title("accuracy and macro-F1 (best epoch: highest dev macro-F1)")
    _save(fig, path)
