"""Scoring for `python -m tools.predict`: each (review, aspect) pair -> class probabilities (and MIMN's attention)
with the model any model.family trained, from the same inputs as training."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from common.aspects import CANONICAL_ASPECTS, aspect_zh
from model.data import batch_inputs
from model.explain import AspectView, ReviewView, attention_lists, forward_with_attention
from model.labels import LabelMap
from model.linear import LinearModel
from model.loop import autocast_for, to_device
from model.mimn import MIMN
from model.provenance import DEFAULT_MIN_ASPECT_PAIRS, few_pairs
from model.vocab import UNK_ID, Vocab
from pipeline.segment import Segmenter
from tools.predict_images import ImageFeaturizer
from tools.predict_inputs import Review


@dataclass
class Pair:
    tokens: list[str]
    aspect: str
    images: torch.Tensor  # (k, image_dim) standardised features of the images the model reads


class NeuralScorer:
    """Any neural family (MIMN and the baselines): the same inputs as training; only MIMN returns its attention."""

    def __init__(self, model: torch.nn.Module, vocab: Vocab, segmenter: Segmenter, device: torch.device) -> None:
        self.model, self.vocab, self.device = model, vocab, device
        self.config = model.config
        self.attention = isinstance(model, MIMN)
        self.max_text_len, self.max_images = self.config.max_text_len, self.config.max_images
        self._aspects = {
            a: torch.from_numpy(vocab.encode(segmenter.aspect_tokens(aspect_zh(a)), self.config.max_aspect_len))
            for a in CANONICAL_ASPECTS
        }

    def unknown(self, word: str) -> bool:
        return self.vocab.id(word) == UNK_ID

    @torch.no_grad()
    def __call__(self, pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        inputs = batch_inputs(
            [torch.from_numpy(self.vocab.encode(p.tokens, self.max_text_len)) for p in pairs],
            [self._aspects[p.aspect] for p in pairs],
            [p.images for p in pairs],
            self.config.image_dim,
        )
        if self.attention:
            return forward_with_attention(self.model, inputs, self.device)
        self.model.eval()
        with autocast_for(self.device):
            logits = self.model(**to_device(inputs, self.device))
        return torch.softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float32), None, None


class LinearScorer:
    """The linear baseline: TF-IDF over the words and (aspect, word) pairs; it reads no image and has no attention."""

    attention = False
    max_text_len = None
    max_images = 0

    def __init__(self, model: LinearModel) -> None:
        self.model = model
        self._features = set(model.features)

    def unknown(self, word: str) -> bool:
        return word not in self._features

    def __call__(self, pairs: list[Pair]) -> tuple[np.ndarray, None, None]:
        frame = pd.DataFrame({"tokens": [p.tokens for p in pairs], "aspect": [p.aspect for p in pairs]})
        return self.model.predict_proba(frame), None, None


@dataclass
class Predictor:
    scorer: NeuralScorer | LinearScorer
    labels: LabelMap
    featurizer: ImageFeaturizer | None  # None: the model reads no image (trained without, or linear)
    image_dim: int
    aspect_pairs: dict[str, int] | None  # the model's training pairs per aspect (None: not recorded)
    min_aspect_pairs: int = DEFAULT_MIN_ASPECT_PAIRS
    batch_size: int = 64
    no_images_reason: str = "the model was trained without images"
    features: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # the current chunk's images

    def read_images(self, reviews: list[Review]) -> dict[int, list[str]]:
        """Per predictable review, the images the model reads; every other image goes to its images_not_read."""
        files = [f for r in reviews if not r.error for f in r.images]
        self.features, errors = self.featurizer(files) if self.featurizer else ({}, {})
        image_rows: dict[int, list[str]] = {}
        for index, review in enumerate(reviews):
            if review.error:
                continue
            usable = [f for f in review.images if f in self.features]
            review.images_not_read += [(f, errors[f]) for f in review.images if f in errors]
            if self.featurizer is None and review.images:
                review.images_not_read += [(f, self.no_images_reason) for f in review.images]
            review.images_not_read += [
                (f, f"past the model's {self.scorer.max_images} images") for f in usable[self.scorer.max_images :]
            ]
            image_rows[index] = usable[: self.scorer.max_images]
        return image_rows

    def score(self, reviews: list[Review], image_rows: dict[int, list[str]], aspects: list[str]):
        """(pair -> row, probabilities, text attention, image attention) of every (review, aspect) pair; attention
        rows are None for a family without attention."""
        pairs = [(i, a) for i in image_rows for a in aspects]
        probs, text_att, image_att = [], [], []
        for start in range(0, len(pairs), self.batch_size):
            batch = [
                Pair(reviews[i].tokens, a, self.image_matrix(image_rows[i]))
                for i, a in pairs[start : start + self.batch_size]
            ]
            p, t, m = self.scorer(batch)
            probs.extend(p)
            text_att.extend(t if t is not None else [None] * len(batch))
            image_att.extend(m if m is not None else [None] * len(batch))
        return {pair: n for n, pair in enumerate(pairs)}, probs, text_att, image_att

    def image_matrix(self, files: list[str]) -> torch.Tensor:
        if not files:
            return torch.zeros((0, self.image_dim))
        return torch.from_numpy(np.stack([self.features[f] for f in files]).astype(np.float32))

    def run(self, reviews: list[Review], aspects: list[str], explain: bool) -> list[tuple[dict, ReviewView | None]]:
        """(output object, explanation or None) per review, in input order."""
        image_rows = self.read_images(reviews)
        scored = self.score(reviews, image_rows, aspects)
        return [
            ({"review_id": review.review_id, "error": review.error}, None)
            if review.error
            else self.review_result(index, review, image_rows[index], scored, aspects, explain)
            for index, review in enumerate(reviews)
        ]

    def review_result(
        self, index: int, review: Review, images: list[str], scored: tuple, aspects: list[str], explain: bool
    ) -> tuple[dict, ReviewView | None]:
        """One predictable review's output object and (explain) its attention page's view."""
        by_pair, probs, text_att, image_att = scored
        out = {"review_id": review.review_id, "words": len(review.tokens), "images": len(images), "aspects": {}}
        if review.images_not_read:
            out["images_not_read"] = [{"image": f, "reason": why} for f, why in review.images_not_read]
        words = review.tokens[: self.scorer.max_text_len]
        views = []
        for aspect in aspects:
            n = by_pair[(index, aspect)]
            class_probs = {s: float(p) for s, p in zip(self.labels.class_scores, probs[n], strict=False)}
            predicted = int(self.labels.class_scores[int(np.argmax(probs[n]))])
            few = few_pairs(self.aspect_pairs, aspect, self.min_aspect_pairs)
            out["aspects"][aspect] = {
                "aspect_zh": aspect_zh(aspect),
                "predicted_score": predicted,
                "probabilities": {str(s): round(p, 6) for s, p in class_probs.items()},
                "training_pairs": None if self.aspect_pairs is None else self.aspect_pairs.get(aspect, 0),
                "few_training_pairs": few,
                **({"score": review.true_scores[aspect]} if aspect in review.true_scores else {}),
            }
            if explain:
                views.append(
                    AspectView(
                        aspect,
                        aspect_zh(aspect),
                        predicted,
                        class_probs,
                        review.true_scores.get(aspect),
                        attention_lists(text_att[n], len(words)),
                        attention_lists(image_att[n], len(images)),
                        out["aspects"][aspect]["training_pairs"],
                        few,
                    )
                )
        if not explain:
            return out, None
        unknown = [self.scorer.unknown(w) for w in words]
        view = ReviewView(
            review.review_id,
            words,
            unknown,
            len(review.tokens) - len(words),
            images,
            [Path(f) for f in images],
            review.images_not_read,
            views,
        )
        return out, view
