"""Training losses: cross-entropy, optionally with an ordinal term (`train.loss: ce+ordinal`).

Scores are ordered: predicting 9 for a 10 is a smaller error than predicting 2, but cross-entropy treats both
alike. The ordinal term adds `weight` times the squared error between the expected score under the predicted
distribution, sum_c p_c * score_c, and the true score, both divided by 10 (so the term lies in [0, 0.81]).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

LOSSES: tuple[str, ...] = ("ce", "ce+ordinal")


def class_weights(counts: list[int], kind: str) -> torch.Tensor | None:
    """none | balanced: n / (C * count) | sqrt: its square root; classes never seen get weight 0."""
    if kind == "none":
        return None
    counts_t = torch.tensor(counts, dtype=torch.float32)
    present = counts_t > 0
    weights = torch.zeros_like(counts_t)
    weights[present] = counts_t.sum() / (int(present.sum()) * counts_t[present])
    return weights.sqrt() if kind == "sqrt" else weights


class OrdinalCrossEntropy(nn.Module):
    def __init__(
        self,
        class_scores: tuple[int, ...],
        weight: float,
        class_weights: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.cross_entropy = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)
        self.register_buffer("scores", torch.tensor(class_scores, dtype=torch.float32) / 10.0)
        self.weight = weight

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        expected = F.softmax(logits.float(), dim=-1) @ self.scores
        return self.cross_entropy(logits, targets) + self.weight * F.mse_loss(expected, self.scores[targets])


def make_loss(
    kind: str,
    class_scores: tuple[int, ...],
    ordinal_weight: float,
    class_weights: torch.Tensor | None,
    label_smoothing: float,
) -> nn.Module:
    if kind == "ce":
        return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)
    if kind == "ce+ordinal":
        return OrdinalCrossEntropy(class_scores, ordinal_weight, class_weights, label_smoothing)
    raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {kind!r}")
