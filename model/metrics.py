"""Classification metrics, each named exactly."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

PAPER_F1_NOTE = (
    "The paper's 'macro-F1' (60.51 on Multi-ZOL) is computed in its public code with "
    "sklearn f1_score(average='weighted'): compare it with weighted_f1, not macro_f1."
)


def present_labels(y_true, y_pred) -> list[int]:
    return sorted(set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist()))


def classification_metrics(y_true, y_pred) -> dict[str, float]:
    """accuracy, macro_f1 and weighted_f1 over the classes present in truth or prediction."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        return {"accuracy": 0.0, "macro_f1": 0.0, "weighted_f1": 0.0}
    labels = present_labels(y_true, y_pred)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
    }


def per_class_report(y_true, y_pred, names: dict[int, str]) -> dict[str, dict[str, float]]:
    """precision/recall/f1/support per class present, keyed by the class's name (its score)."""
    labels = present_labels(y_true, y_pred)
    report = classification_report(y_true, y_pred, labels=labels, output_dict=True, zero_division=0)
    return {names[c]: {k: float(v) for k, v in report[str(c)].items()} for c in labels}


def confusion(y_true, y_pred, num_classes: int) -> np.ndarray:
    return confusion_matrix(y_true, y_pred, labels=list(range(num_classes)))
