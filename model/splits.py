"""The segmented splits as the train and evaluate stages read them: in batches of `data.batch_rows` rows, each pass
reading only the columns it uses, in (review_id, aspect) order, checked once when opened.

A split written by the segment stage is in that order already and is only ever streamed; what the stages keep of
it is built batch by batch (model/pairs.py). A file in another order (not written by segment) is read whole and
sorted once, as every split was before the reads were batched, so that any file gives the same model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from common.errors import UserError
from pipeline.io import read_frame
from pipeline.schema import SEGMENTED_SCHEMA
from pipeline.stream import iter_batches, iter_frames, open_parquet

SPLIT_COLUMNS = ["review_id", "aspect", "score", "tokens", "aspect_tokens", "image_paths"]
KEY = ["review_id", "aspect"]
NOT_NULL = ("tokens", "aspect_tokens", "image_paths")


class SplitFile:
    """One segmented split: its row count, and its rows in batches of any of SPLIT_COLUMNS, in key order."""

    def __init__(self, path: str | Path, batch_rows: int) -> None:
        self.path, self.batch_rows = Path(path), batch_rows
        self.rows = 0
        self._whole: pd.DataFrame | None = None  # only for a file not in key order
        if not self._check():
            self._whole = read_frame(self.path, SPLIT_COLUMNS).sort_values(KEY, kind="stable").reset_index(drop=True)

    def _check(self) -> bool:
        """One pass: a one-line error for a missing column, a null list or a score outside 1..10 (counted over the
        whole file, the first named in file order); whether the keys come in order."""
        names = open_parquet(self.path).schema_arrow.names
        missing = [c for c in SPLIT_COLUMNS if c not in names]
        if missing:
            raise UserError(
                f"{self.path} lacks columns {missing} (expected {SEGMENTED_SCHEMA.names}); re-run dvc repro segment"
            )
        faults = {name: [0, None] for name in (*NOT_NULL, "score")}  # rows at fault, the first one's review id
        order = KeyOrder()
        for batch in iter_batches(self.path, self.batch_rows, SPLIT_COLUMNS):
            ids = batch.column("review_id").to_pylist()
            score = batch.column("score")
            in_range = pc.and_(pc.greater_equal(score, 1), pc.less_equal(score, 10))
            at_fault = {name: batch.column(name).is_null() for name in NOT_NULL}
            at_fault["score"] = pc.invert(pc.fill_null(in_range, False))
            for name, rows in at_fault.items():
                found = np.flatnonzero(rows.to_numpy(zero_copy_only=False))
                if len(found) and not faults[name][0]:
                    faults[name][1] = ids[found[0]]
                faults[name][0] += len(found)
            order.add(ids, batch.column("aspect").to_pylist())
            self.rows += batch.num_rows
        for name in NOT_NULL:
            count, first = faults[name]
            if count:
                raise UserError(
                    f"{self.path}: column {name} is null in {count} rows (first: review {first}); "
                    "re-run dvc repro segment"
                )
        count, first = faults["score"]
        if count:
            raise UserError(
                f"{self.path}: {count} rows have a score outside 1..10 (first: review {first}); re-run dvc repro clean"
            )
        return order.in_order

    def batches(self, columns: list[str]) -> Iterator[pd.DataFrame]:
        """The rows in key order, `columns` only, at most batch_rows at a time."""
        if self._whole is None:
            yield from iter_frames(self.path, self.batch_rows, columns)
            return
        for start in range(0, len(self._whole), self.batch_rows):
            yield self._whole.iloc[start : start + self.batch_rows][columns].reset_index(drop=True)

    def reader(self, columns: list[str]) -> Batches:
        """The batches of `columns`, read again on every pass (for code that reads its input more than once)."""
        return Batches(self, columns)

    def scores(self) -> np.ndarray:
        """Every pair's score (int8, 1..10), in key order."""
        parts = [frame["score"].to_numpy(np.int8) for frame in self.batches(["score"])]
        return np.concatenate(parts) if parts else np.zeros(0, np.int8)

    def image_paths(self) -> set[str]:
        """The distinct image paths the split's pairs reference."""
        paths: set[str] = set()
        for frame in self.batches(["image_paths"]):
            for entry in frame["image_paths"]:
                paths.update(entry)
        return paths

    def first_pairs(self, review_ids: set[str], columns: list[str]) -> dict[str, dict]:
        """review id -> `columns` of its first pair (in key order), for these reviews only."""
        found: dict[str, dict] = {}
        for frame in self.batches(["review_id", *columns]):
            for row in frame[frame["review_id"].isin(review_ids)].itertuples(index=False):
                found.setdefault(row.review_id, {c: getattr(row, c) for c in columns})
        return found


class KeyOrder:
    """Whether (review_id, aspect) keys seen batch after batch never go down."""

    def __init__(self) -> None:
        self.in_order = True
        self._last: tuple | None = None

    def add(self, review_ids: list, aspects: list) -> None:
        if not self.in_order or not review_ids:
            return
        keys = list(zip(review_ids, aspects, strict=True))
        try:  # a null key cannot be compared: the sort decides where it goes
            self.in_order = (self._last is None or self._last <= keys[0]) and all(
                a <= b for a, b in zip(keys, keys[1:], strict=False)
            )
        except TypeError:
            self.in_order = False
        self._last = keys[-1]


class Batches:
    """A split's batches of some columns, as an iterable that reads the split again each time it is iterated."""

    def __init__(self, split: SplitFile, columns: list[str]) -> None:
        self.split, self.columns = split, columns

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return self.split.batches(self.columns)


class TrainCorpus:
    """What the vocabulary counts and the word vectors train on, read again on every pass (gensim makes one per
    epoch): each training review's tokens once (its first pair's), then every training pair's aspect tokens."""

    def __init__(self, train: SplitFile) -> None:
        self.train = train

    def __iter__(self) -> Iterator:
        last = object()
        for frame in self.train.batches(["review_id", "tokens"]):
            for review_id, tokens in zip(frame["review_id"], frame["tokens"], strict=True):
                if review_id != last:  # a review's pairs are adjacent in key order
                    yield tokens
                last = review_id
        for frame in self.train.batches(["aspect_tokens"]):
            yield from frame["aspect_tokens"]


def aspect_tokens(splits: Iterable[SplitFile]) -> tuple[set[str], dict[str, list[str]]]:
    """Every aspect token of the splits, and each aspect's tokens (its last pair's, in split then key order)."""
    tokens: set[str] = set()
    by_aspect: dict[str, list[str]] = {}
    for split in splits:
        for frame in split.batches(["aspect", "aspect_tokens"]):
            for aspect, words in zip(frame["aspect"], frame["aspect_tokens"], strict=True):
                tokens.update(words)
                by_aspect[aspect] = list(words)
    return tokens, by_aspect
