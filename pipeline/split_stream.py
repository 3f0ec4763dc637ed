"""The split stage's two passes over pairs.parquet, batch by batch: first each group's key and label counts (and the
checks of a release's splits), then each batch's rows written to the split of their group."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from common.errors import UserError
from pipeline.paths import PAIRS_PATH
from pipeline.schema import PAIR_SORT_KEY, PAIRS_SCHEMA, SPLITS
from pipeline.stream import RowSorter, empty_frame, frame_writer, iter_frames

N_LABELS = 10
SCAN_COLUMNS = ["review_id", "product_id", "aspect", "label", "release_split"]


def group_keys(pairs: pd.DataFrame, group_by: str) -> pd.Series:
    """The group of each pair: its review, or its product (a pair without product_id is its review's own group)."""
    if group_by == "review":
        return pairs["review_id"].astype(str)
    return (
        pairs["product_id"].where(pairs["product_id"].notna(), "review:" + pairs["review_id"].astype(str)).astype(str)
    )


def pair_key(pair: dict) -> tuple:
    return tuple(pair[column] for column in PAIR_SORT_KEY)


class GroupScan:
    """The first pass: what the assignment needs of the whole input, and no row. `params` is the split section."""

    def __init__(self, params) -> None:
        self.params = params
        self.index: dict[str, int] = {}  # group key -> row of `counts` (first-seen order); later its split
        self.counts = np.zeros((1024, N_LABELS), dtype=np.int64)
        self.rows = 0
        self.sorted = True  # rows already in PAIR_SORT_KEY order (clean writes them so)
        self._last_key: tuple | None = None
        self.missing, self.first_missing, self.release_values = 0, None, set()

    def scan_file(self, path: Path, batch_rows: int) -> GroupScan:
        return self.scan(iter_frames(path, batch_rows, SCAN_COLUMNS))

    def scan(self, frames: Iterable[pd.DataFrame]) -> GroupScan:
        for frame in frames:
            self.rows += len(frame)
            self._check_order(frame)
            if self.params.method == "predefined":
                self._add_release_splits(frame)
            else:
                self._add_groups(frame)
        return self

    def _check_order(self, frame: pd.DataFrame) -> None:
        if not self.sorted:
            return
        keys = list(zip(*(frame[column] for column in PAIR_SORT_KEY), strict=True))
        try:
            previous = [self._last_key, *keys[:-1]] if self._last_key is not None else keys[:-1]
            current = keys if self._last_key is not None else keys[1:]
            self.sorted = all(a <= b for a, b in zip(previous, current, strict=True))
        except TypeError:  # a null key: the sort below decides
            self.sorted = False
        if keys:
            self._last_key = keys[-1]

    def _add_release_splits(self, frame: pd.DataFrame) -> None:
        missing = frame["release_split"].isna()
        if missing.any() and self.first_missing is None:
            self.first_missing = frame.loc[missing, "review_id"].iloc[0]
        self.missing += int(missing.sum())
        self.release_values.update(frame["release_split"].dropna())

    def _add_groups(self, frame: pd.DataFrame) -> None:
        keys = group_keys(frame, self.params.group_by).tolist()
        rows = np.fromiter((self.index.setdefault(k, len(self.index)) for k in keys), dtype=np.int64, count=len(keys))
        if len(self.index) > len(self.counts):
            grown = np.zeros((max(len(self.index), 2 * len(self.counts)), N_LABELS), dtype=np.int64)
            grown[: len(self.counts)] = self.counts
            self.counts = grown
        np.add.at(self.counts, (rows, frame["label"].to_numpy(dtype=np.int64)), 1)

    def check_release_splits(self) -> None:
        if self.missing:
            raise UserError(
                f"{PAIRS_PATH}: {self.missing} pairs have no release_split (first: review {self.first_missing}); "
                f"split.method: predefined needs data from the Multi-ZOL importer "
                f"(python -m pipeline.import_multizol) - or set split.method: random"
            )
        unknown = sorted(self.release_values - set(SPLITS))
        if unknown:
            raise UserError(
                f"{PAIRS_PATH}: release_split values {unknown} are not {'/'.join(SPLITS)}; "
                f"re-run python -m pipeline.import_multizol"
            )

    def split_of_group(self, assign: Callable) -> dict[str, int] | None:
        """{group key: split index} by `assign` (groups in sorted key order, as np.unique gives them); None for
        predefined splits, whose values are checked here."""
        if self.params.method == "predefined":
            self.check_release_splits()
            return None
        uniques = sorted(self.index)
        label_counts = self.counts[[self.index[key] for key in uniques]]
        assignment = assign(label_counts, self.params.ratios, self.params.seed)
        for key, split in zip(uniques, assignment.tolist(), strict=True):
            self.index[key] = split
        return self.index

    def splits_of(self, frame: pd.DataFrame, split_of_group: dict[str, int] | None) -> np.ndarray:
        """The split name of each row of a batch."""
        if split_of_group is None:
            return frame["release_split"].to_numpy()
        keys = group_keys(frame, self.params.group_by).tolist()
        return np.asarray(SPLITS, dtype=object)[[split_of_group[key] for key in keys]]


def write_splits(
    path: Path,
    folder: Path,
    batch_rows: int,
    scan: GroupScan,
    split_of_group: dict[str, int] | None,
    on_part: Callable[[str, pd.DataFrame], None],
) -> None:
    """The second pass: `<folder>/<split>.parquet` for every split, rows in PAIR_SORT_KEY order."""
    template = empty_frame(path)
    with ExitStack() as stack:
        writers = {
            name: stack.enter_context(
                frame_writer(folder / f"{name}.parquet", PAIRS_SCHEMA, batch_rows, lambda: template)
            )
            for name in SPLITS
        }
        sorters = {}
        if not scan.sorted:
            sorters = {name: RowSorter(PAIRS_SCHEMA, pair_key, batch_rows, folder / name) for name in SPLITS}
            for sorter in sorters.values():
                stack.callback(sorter.close)
        for frame in iter_frames(path, batch_rows):
            split_of_pair = scan.splits_of(frame, split_of_group)
            for name in SPLITS:
                part = frame.loc[split_of_pair == name]
                on_part(name, part)
                if sorters:
                    for row in pa.Table.from_pandas(part, schema=PAIRS_SCHEMA, preserve_index=False).to_pylist():
                        sorters[name].add(row)
                else:
                    writers[name].write(part)
        for name, sorter in sorters.items():
            writers[name].dtypes = template.dtypes.to_dict()  # as read from the file, not as pandas infers them
            for row in sorter.sorted_rows():
                writers[name].add_row(row)
