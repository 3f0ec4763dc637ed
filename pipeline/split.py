"""Stage split: data/clean/pairs.parquet -> data/splits/{train,dev,test}.parquet.

    python -m pipeline.split [--params params.yaml]

`split.method: random` assigns whole groups (a review, or a product with `group_by: product`) to one split,
seeded, with each split's size and label histogram as close to the ratios as a greedy assignment gets.
`split.method: predefined` keeps the split a release put each pair in (`release_split`, Multi-ZOL).

It streams pairs.parquet twice in batches of `data.batch_rows` rows (docs/scaling.md): the first pass keeps each
group's key and label counts, the second writes each batch's rows to their split. Input sorted by
(review_id, aspect), as clean writes it, goes straight through; other input is sorted through runs on disk.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from common.atomic import atomic_dir
from common.errors import UserError
from common.metrics import detail_path, write_metrics
from common.params import bounded, load_params, read_section, section_of
from common.stage import run_stage, stage_parser
from pipeline.paths import PAIRS_PATH, SPLITS_DIR, DataParams
from pipeline.schema import PAIR_SORT_KEY, SPLITS
from pipeline.split_stream import GroupScan, group_keys, write_splits

METRICS_PATH = Path("metrics/split.json")  # pairs per split; every count in DETAIL_PATH
DETAIL_PATH = detail_path("split")
N_LABELS = 10
RATIO_TOLERANCE = 1e-6


@dataclass(frozen=True)
class SplitParams:
    """params.yaml `split`."""

    method: Literal["random", "predefined"] = "random"  # predefined: keep the split that came with the data
    group_by: Literal["review", "product"] = "review"
    train: float = bounded(0.8, 0.0, 1.0)
    dev: float = bounded(0.1, 0.0, 1.0)
    test: float = bounded(0.1, 0.0, 1.0)
    seed: int = 42

    @property
    def ratios(self) -> tuple[float, float, float]:
        """The three ratios in SPLITS order."""
        return self.train, self.dev, self.test

    def check(self) -> None:
        if abs(sum(self.ratios) - 1.0) > RATIO_TOLERANCE:
            raise UserError(
                f"params.yaml: split.train + split.dev + split.test must sum to 1, "
                f"got {' + '.join(map(str, self.ratios))} = {sum(self.ratios)}"
            )


def assign_groups(label_counts: np.ndarray, ratios: tuple[float, ...], seed: int) -> np.ndarray:
    """Split index for each group (rows of `label_counts`, groups x labels).

    Groups are visited in a seeded random order, larger groups first; each goes to the split where it
    most reduces the chi-square-like distance of (split sizes, split label counts) to their targets.
    Splits with ratio 0 get nothing; every other split gets at least one group when there are enough.
    """
    n_groups = len(label_counts)
    ratios_arr = np.asarray(ratios, dtype=float)
    active = [s for s, r in enumerate(ratios) if r > 0]
    assignment = np.full(n_groups, -1, dtype=np.int64)
    if n_groups == 0:
        return assignment
    rng = np.random.default_rng(seed)
    sizes = label_counts.sum(axis=1)
    order = rng.permutation(n_groups)
    order = order[np.argsort(-sizes[order], kind="stable")]
    label_totals = label_counts.sum(axis=0).astype(float)
    label_targets = np.outer(ratios_arr, label_totals)  # splits x labels
    size_targets = ratios_arr * float(sizes.sum())
    label_counts_now = np.zeros_like(label_targets)
    size_now = np.zeros(len(ratios))
    for g in order:
        counts, size = label_counts[g], float(sizes[g])
        present = counts > 0
        best, best_cost = -1, np.inf
        for s in active:
            # increase of sum((C - T)^2 / T) when the group joins split s (labels, then size)
            c, t = label_counts_now[s, present], label_targets[s, present]
            cost = float(np.sum(counts[present] * (2 * (c - t) + counts[present]) / t))
            cost += size * (2 * (size_now[s] - size_targets[s]) + size) / size_targets[s]
            if cost < best_cost - 1e-12:
                best, best_cost = s, cost
        assignment[g] = best
        label_counts_now[best] += counts
        size_now[best] += size
    _fill_empty_splits(assignment, sizes, active, order)
    return assignment


def _fill_empty_splits(assignment: np.ndarray, sizes: np.ndarray, active: list[int], order: np.ndarray) -> None:
    """Move the smallest group of the split with most groups into any active split left empty."""
    while True:
        counts = {s: int((assignment == s).sum()) for s in active}
        empty = [s for s in active if counts[s] == 0]
        donors = [s for s in active if counts[s] > 1]
        if not empty or not donors:
            return
        donor = max(donors, key=lambda s: (counts[s], -s))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        members = np.flatnonzero(assignment == donor)
        smallest = min(members, key=lambda g: (sizes[g], -rank[g]))
        assignment[smallest] = empty[0]


def split_pairs(pairs: pd.DataFrame, params: SplitParams) -> dict[str, pd.DataFrame]:
    """The pure core: pairs -> {split name: pairs of that split, sorted by (review_id, aspect)}."""
    if params.method == "predefined":
        GroupScan(params).scan([pairs]).check_release_splits()
        split_of_pair = pairs["release_split"].to_numpy()
    else:
        keys = group_keys(pairs, params.group_by)
        uniques, group_index = np.unique(keys.to_numpy(dtype=str), return_inverse=True)
        label_counts = np.zeros((len(uniques), N_LABELS), dtype=np.int64)
        np.add.at(label_counts, (group_index, pairs["label"].to_numpy(dtype=np.int64)), 1)
        assignment = assign_groups(label_counts, params.ratios, params.seed)
        split_of_pair = np.asarray(SPLITS, dtype=object)[assignment[group_index]]
    return {
        name: pairs.loc[split_of_pair == name].sort_values(PAIR_SORT_KEY, kind="stable").reset_index(drop=True)
        for name in SPLITS
    }


def label_histogram(frame: pd.DataFrame) -> dict[str, int]:
    return {str(label): int((frame["label"] == label).sum()) for label in range(N_LABELS)}


class SplitTally:
    """The split metrics' counts, taken batch by batch: pairs and labels per split, the review and product ids of
    each split (for the reviews and the overlaps)."""

    def __init__(self) -> None:
        self.pairs = Counter()
        self.labels = {name: Counter() for name in SPLITS}
        self.reviews: dict[str, set] = {name: set() for name in SPLITS}
        self.products: dict[str, set] = {name: set() for name in SPLITS}

    def add(self, name: str, frame: pd.DataFrame) -> None:
        self.pairs[name] += len(frame)
        self.labels[name].update(frame["label"].tolist())
        self.reviews[name].update(frame["review_id"])
        self.products[name].update(frame["product_id"].dropna())

    def metrics(self, params: SplitParams) -> dict:
        def in_several(sets: dict[str, set]) -> int:
            return sum(1 for n in Counter(m for members in sets.values() for m in members).values() if n > 1)

        return {
            "method": params.method,
            "group_by": params.group_by if params.method == "random" else None,
            "seed": params.seed,
            "splits": {
                name: {
                    "pairs": self.pairs[name],
                    "reviews": len(self.reviews[name]),
                    "label_histogram": {str(label): self.labels[name][label] for label in range(N_LABELS)},
                }
                for name in SPLITS
            },
            "overlap": {
                "reviews_in_several_splits": in_several(self.reviews),
                "products_in_several_splits": in_several(self.products),
            },
        }


def split_metrics(splits: dict[str, pd.DataFrame], params: SplitParams) -> dict:
    tally = SplitTally()
    for name, frame in splits.items():
        tally.add(name, frame)
    return tally.metrics(params)


def run(args: argparse.Namespace) -> str:
    """The stage as `python -m pipeline.split` runs it; its summary line."""
    params_file = load_params(None, args.params)
    params = read_section(SplitParams, section_of(params_file, "split", args.params), "split", args.params)
    data = read_section(DataParams, section_of(params_file, "data", args.params), "data", args.params)
    scan = GroupScan(params).scan_file(PAIRS_PATH, data.batch_rows)
    if not scan.rows:
        raise UserError(
            f"{PAIRS_PATH} holds no pairs: see data/clean/rejected.parquet and reports/clean_detail.json "
            f"for why every record was dropped"
        )
    split_of_group = scan.split_of_group(assign_groups)
    tally = SplitTally()
    with atomic_dir(SPLITS_DIR) as staging:  # the three files change together or not at all
        write_splits(PAIRS_PATH, staging, data.batch_rows, scan, split_of_group, tally.add)
    metrics = tally.metrics(params)
    write_metrics(
        {f"{name}_pairs": m["pairs"] for name, m in metrics["splits"].items()}, metrics, METRICS_PATH, DETAIL_PATH
    )
    sizes = ", ".join(f"{n} {m['pairs']} pairs/{m['reviews']} reviews" for n, m in metrics["splits"].items())
    return (
        f"split ({params.method}): {scan.rows} pairs in -> {sizes}; "
        f"reviews in several splits {metrics['overlap']['reviews_in_several_splits']}"
    )


def main(argv: list[str] | None = None) -> int:
    return run_stage(stage_parser("python -m pipeline.split", __doc__), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
