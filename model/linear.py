"""The linear baseline every neural model is held to: TF-IDF over the tokens with aspect-conjoined features,
class-weighted logistic regression, its C chosen on dev.

Each pair's features are its tokens, the same tokens prefixed by the aspect (`camera|清晰`: the word's
evidence for this aspect alone) and an aspect bias feature; TF-IDF with sublinear term frequency and L2
normalisation. The fitted model is stored as plain tensors and lists (no pickled sklearn object), so its
checkpoint loads with torch.load(weights_only=True) like MIMN's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import normalize

from model.metrics import classification_metrics

ABSENT_CLASS_LOGIT = -20.0  # a class never seen in training: probability ~0, as predict_proba gives it


def pair_features(tokens, aspect: str) -> list[str]:
    tokens = [str(t) for t in tokens]
    return tokens + [f"{aspect}|{t}" for t in tokens] + [f"{aspect}|<aspect>"]


def _documents(frame: pd.DataFrame) -> list[list[str]]:
    return [pair_features(t, a) for t, a in zip(frame["tokens"], frame["aspect"], strict=False)]


Pairs = pd.DataFrame | Iterable[pd.DataFrame]  # a frame of pairs, or batches of them read again on each pass


def _frames(pairs: Pairs) -> Iterable[pd.DataFrame]:
    return [pairs] if isinstance(pairs, pd.DataFrame) else pairs


def documents(pairs: Pairs) -> Iterator[list[str]]:
    """Each pair's features (tokens and aspect columns), batch after batch."""
    for frame in _frames(pairs):
        yield from _documents(frame)


class _Rows:
    """The pairs at these positions (ascending) of `pairs`, batch after batch, read again on each pass."""

    def __init__(self, pairs: Iterable[pd.DataFrame], rows: np.ndarray) -> None:
        self.pairs, self.rows = pairs, np.sort(rows)

    def __iter__(self) -> Iterator[pd.DataFrame]:
        start = 0
        for frame in self.pairs:
            low, high = np.searchsorted(self.rows, [start, start + len(frame)])
            if high > low:
                yield frame.iloc[self.rows[low:high] - start]
            start += len(frame)


def _rows(pairs: Pairs, rows: np.ndarray) -> Pairs:
    return pairs.iloc[rows] if isinstance(pairs, pd.DataFrame) else _Rows(pairs, rows)


@dataclass
class LinearModel:
    features: list[str]  # feature name per column
    idf: np.ndarray  # (F,)
    coef: np.ndarray  # (C_present, F)
    intercept: np.ndarray  # (C_present,)
    classes: np.ndarray  # class index of each row of coef
    num_classes: int
    c: float

    @cached_property
    def _feature_index(self) -> dict[str, int]:
        return {f: i for i, f in enumerate(self.features)}

    def transform(self, frame: pd.DataFrame) -> sparse.csr_matrix:
        index = self._feature_index  # built once, not once per batch
        rows, cols, vals = [], [], []
        for r, doc in enumerate(_documents(frame)):
            counts: dict[int, int] = {}
            for f in doc:
                if f in index:
                    counts[index[f]] = counts.get(index[f], 0) + 1
            for c, n in counts.items():
                rows.append(r)
                cols.append(c)
                vals.append((1.0 + np.log(n)) * self.idf[c])
        matrix = sparse.csr_matrix((vals, (rows, cols)), shape=(len(frame), len(self.features)), dtype=np.float64)
        return normalize(matrix)

    def _present_logits(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, classes seen in training) logits; one class seen: all 0."""
        logits = self.transform(frame) @ self.coef.T + self.intercept
        return np.zeros_like(logits) if logits.shape[1] == 1 else logits

    def logits(self, pairs: Pairs) -> np.ndarray:
        """(n, num_classes) float32 logits, batch by batch; classes absent from training get ABSENT_CLASS_LOGIT."""
        return self._stacked([self._frame_logits(frame) for frame in _frames(pairs)])

    def predict_proba(self, pairs: Pairs) -> np.ndarray:
        """(n, num_classes) probabilities, batch by batch; classes absent from training get 0."""
        return self._stacked([self._frame_proba(frame) for frame in _frames(pairs)])

    def _frame_logits(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.full((len(frame), self.num_classes), ABSENT_CLASS_LOGIT, np.float32)
        out[:, self.classes] = self._present_logits(frame)
        return out

    def _frame_proba(self, frame: pd.DataFrame) -> np.ndarray:
        logits = self._present_logits(frame)
        present = np.exp(logits - logits.max(axis=1, keepdims=True))
        present /= present.sum(axis=1, keepdims=True)
        probs = np.zeros((len(frame), self.num_classes), np.float32)
        probs[:, self.classes] = present
        return probs

    def _stacked(self, parts: list[np.ndarray]) -> np.ndarray:
        """Rows are scored each on its own, so batches stack to the whole input's numbers."""
        return np.concatenate(parts) if parts else np.zeros((0, self.num_classes), np.float32)

    def to_checkpoint(self) -> dict:
        return {
            "features": list(self.features),
            "idf": torch.from_numpy(self.idf.astype(np.float64)),
            "coef": torch.from_numpy(self.coef.astype(np.float64)),
            "intercept": torch.from_numpy(self.intercept.astype(np.float64)),
            "classes": self.classes.tolist(),
            "num_classes": int(self.num_classes),
            "c": float(self.c),
        }

    @classmethod
    def from_checkpoint(cls, data: dict) -> LinearModel:
        return cls(
            list(data["features"]),
            data["idf"].numpy(),
            data["coef"].numpy(),
            data["intercept"].numpy(),
            np.asarray(data["classes"], dtype=np.int64),
            int(data["num_classes"]),
            float(data["c"]),
        )


@dataclass
class Tfidf:
    """The training pairs' TF-IDF matrix and the vectorizer's features: the same for every C."""

    features: list[str]
    idf: np.ndarray
    x: sparse.csr_matrix


def fit_tfidf(train: Pairs) -> Tfidf:
    """TF-IDF fitted on the training pairs, read once (the matrix is what the logistic regression needs whole)."""
    vectorizer = TfidfVectorizer(analyzer=lambda doc: doc, sublinear_tf=True, lowercase=False)
    x = vectorizer.fit_transform(documents(train))
    return Tfidf(list(vectorizer.get_feature_names_out()), vectorizer.idf_, x)


def fit_one(train: Pairs, y: np.ndarray, num_classes: int, c: float, seed: int) -> LinearModel:
    return fit_classifier(fit_tfidf(train), y, num_classes, c, seed)


def fit_classifier(tfidf: Tfidf, y: np.ndarray, num_classes: int, c: float, seed: int) -> LinearModel:
    x = tfidf.x
    classifier = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=seed)
    classifier.fit(x, y)
    coef, intercept = classifier.coef_, classifier.intercept_
    if len(classifier.classes_) == 2:  # sklearn keeps one row for two classes: expand to a softmax pair
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    return LinearModel(
        tfidf.features,
        tfidf.idf,
        coef,
        intercept,
        classifier.classes_.astype(np.int64),
        num_classes,
        c,
    )


def out_of_fold_logits(
    train: Pairs, y: np.ndarray, num_classes: int, c: float, folds: int, seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """(n, num_classes) logits of each training pair from a model fitted on the other folds (folds by review, so a
    review's text is never both fitted and scored): what the model says of text it has not seen. `groups`: each
    pair's review (any values that sort as the review ids do; default: a frame's review_id column)."""
    out = np.zeros((len(y), num_classes), np.float32)
    groups = train["review_id"].to_numpy() if groups is None else groups
    for fitted, held_out in GroupKFold(n_splits=folds).split(np.zeros(len(y)), y, groups):
        part = fit_one(_rows(train, fitted), y[fitted], num_classes, c, seed)
        out[held_out] = part.logits(_rows(train, held_out))
    return out


def fit_linear(
    train: Pairs,
    y_train: np.ndarray,
    dev: Pairs,
    y_dev: np.ndarray,
    num_classes: int,
    c_grid,
    select_metric: str = "macro_f1",
    seed: int = 0,
) -> tuple[LinearModel, list[dict]]:
    """The model whose C is best on dev by `select_metric` (loss: lowest dev cross-entropy), and every C's dev row.
    The training pairs are read once; dev is scored batch by batch for each C."""
    best, best_score, rows = None, -np.inf, []
    tfidf = fit_tfidf(train)
    for c in c_grid:
        model = fit_classifier(tfidf, y_train, num_classes, float(c), seed)
        probs = model.predict_proba(dev)
        loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y_dev)), y_dev], 1e-12, None))))
        row = {"c": float(c), "loss": loss, **classification_metrics(y_dev, probs.argmax(1))}
        rows.append(row)
        score = -loss if select_metric == "loss" else row[select_metric]
        if score > best_score:
            best, best_score = model, score
    return best, rows
