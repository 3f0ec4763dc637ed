"""What the model keeps of a split's pairs, built batch by batch (model/splits.py): token ids, aspect token ids, the
rows of the image features each pair reads, the score, and which review and aspect the pair is; never the text.

Variable-length id lists are held as one flat int64 array and offsets (`Ragged`), not one tensor per pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain

import numpy as np
import pandas as pd
import torch

from model.splits import SplitFile
from model.vocab import Vocab


@dataclass
class Ragged:
    """Rows of int64 ids of any length: row i is values[offsets[i]:offsets[i + 1]]."""

    values: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.values[self.offsets[i] : self.offsets[i + 1]])

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self[i] for i in range(len(self)))

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


class RaggedBuilder:
    """Ragged rows added a batch at a time; each batch becomes two arrays at once."""

    def __init__(self) -> None:
        self._values: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []

    def add(self, rows: list[list[int]]) -> None:
        self._lengths.append(np.fromiter(map(len, rows), np.int64, len(rows)))
        self._values.append(np.fromiter(chain.from_iterable(rows), np.int64))

    def build(self) -> Ragged:
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        offsets = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.concatenate(self._values) if self._values else np.zeros(0, np.int64)
        return Ragged(values, offsets)


@dataclass
class PairKeys:
    """Which pair each row is and its score: review and aspect as indices into the names, each name held once."""

    review: np.ndarray  # int64, per pair: index into review_ids (pairs of a review are adjacent in key order)
    review_ids: list[str]
    aspect: np.ndarray  # int64, per pair: index into aspect_names
    aspect_names: list[str]
    scores: np.ndarray  # int8, per pair: 1..10

    def __len__(self) -> int:
        return len(self.scores)

    def frame(self) -> pd.DataFrame:
        """review_id, aspect and score per pair (the names shared, not copied)."""
        return pd.DataFrame(
            {
                "review_id": np.asarray(self.review_ids, dtype=object)[self.review],
                "aspect": np.asarray(self.aspect_names, dtype=object)[self.aspect],
                "score": self.scores,
            }
        )


class KeysBuilder:
    def __init__(self) -> None:
        self.review_ids: list[str] = []
        self.aspect_codes: dict[str, int] = {}
        self._review: list[np.ndarray] = []
        self._aspect: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []
        self._last = object()

    def add(self, frame: pd.DataFrame) -> None:
        review = np.empty(len(frame), np.int64)
        for row, review_id in enumerate(frame["review_id"]):
            if review_id != self._last:
                self.review_ids.append(review_id)
                self._last = review_id
            review[row] = len(self.review_ids) - 1
        codes = self.aspect_codes
        self._review.append(review)
        self._aspect.append(np.fromiter((codes.setdefault(a, len(codes)) for a in frame["aspect"]), np.int64))
        self._scores.append(frame["score"].to_numpy(np.int8))

    def build(self) -> PairKeys:
        def joined(parts: list[np.ndarray], dtype) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype)

        review, aspect = joined(self._review, np.int64), joined(self._aspect, np.int64)
        return PairKeys(review, self.review_ids, aspect, list(self.aspect_codes), joined(self._scores, np.int8))


def read_keys(split: SplitFile) -> PairKeys:
    """The split's pair keys and scores alone (what the reports of a text-only model need)."""
    keys = KeysBuilder()
    for frame in split.batches(["review_id", "aspect", "score"]):
        keys.add(frame)
    return keys.build()


@dataclass
class EncodedPairs:
    """A split as the model reads it."""

    keys: PairKeys
    text: Ragged  # token ids of the first max_text_len tokens
    aspect: Ragged  # aspect token ids, the first max_aspect_len
    image_rows: Ragged  # rows of the features' matrix: the pair's usable images in page order, the first max_images

    def __len__(self) -> int:
        return len(self.keys)


def encode_pairs(
    split: SplitFile, vocab: Vocab, image_index: dict[str, int], max_text_len: int, max_aspect_len: int, max_images: int
) -> EncodedPairs:
    """The split's pairs encoded batch by batch; `image_index` maps a usable image path to its features row."""
    keys, text, aspect, images = KeysBuilder(), RaggedBuilder(), RaggedBuilder(), RaggedBuilder()
    for frame in split.batches(["review_id", "aspect", "score", "tokens", "aspect_tokens", "image_paths"]):
        keys.add(frame)
        text.add([vocab.ids(tokens, max_text_len) for tokens in frame["tokens"]])
        aspect.add([vocab.ids(tokens, max_aspect_len) for tokens in frame["aspect_tokens"]])
        images.add([usable_rows(paths, image_index)[:max_images] for paths in frame["image_paths"]])
    return EncodedPairs(keys.build(), text.build(), aspect.build(), images.build())


def usable_rows(paths: Iterable[str], image_index: dict[str, int]) -> list[int]:
    return [image_index[p] for p in paths if p in image_index]
