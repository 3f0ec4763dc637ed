"""Stage split: ratios, disjoint groups, seeds, label balance, predefined, params errors, byte-identical re-run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from common.errors import UserError
from common.params import read_section
from pipeline import clean, split, stream
from pipeline.io import write_frame
from pipeline.schema import PAIRS_SCHEMA, SPLITS
from pipeline.split import SplitParams, assign_groups, split_pairs

ASPECTS = ["appearance", "battery", "camera", "performance", "price_performance", "screen"]


def realistic_pairs(n_reviews: int = 600, seed: int = 0, products: int = 40) -> pd.DataFrame:
    """Reviews of 2..6 aspects, user-like scores (mostly 2/4/6/8/10, skewed high, correlated within a review)."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_reviews):
        mood = rng.choice([10, 8, 6, 4, 2], p=[0.45, 0.3, 0.13, 0.07, 0.05])
        for aspect in sorted(rng.choice(ASPECTS, size=rng.integers(2, 7), replace=False)):
            score = int(np.clip(mood + rng.choice([-2, 0, 0, 0, 2]) - (rng.random() < 0.05), 1, 10))
            rows.append(
                dict(
                    review_id=f"r{r:04d}",
                    product_id=f"p{r % products:02d}",
                    product_name="",
                    brand="",
                    aspect=aspect,
                    aspect_zh=aspect,
                    score=score,
                    label=score - 1,
                    text="文本",
                    image_paths=[],
                    n_images=0,
                    release_split=None,
                    presegmented=r in (1, 49),
                )
            )
    return pd.DataFrame(rows)


def params(**overrides) -> SplitParams:
    values = dict(method="random", group_by="review", train=0.8, dev=0.1, test=0.1, seed=42)
    values.update(overrides)
    return SplitParams(**values)


def test_ratios_groups_disjoint_and_labels_balanced():
    pairs = realistic_pairs()
    parts = split_pairs(pairs, params())
    assert sum(len(p) for p in parts.values()) == len(pairs)
    for name, ratio in zip(SPLITS, (0.8, 0.1, 0.1), strict=False):
        assert abs(len(parts[name]) / len(pairs) - ratio) < 0.005, name
    ids = [set(parts[name]["review_id"]) for name in SPLITS]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    whole = pairs["label"].value_counts(normalize=True)
    for name in SPLITS:
        share = parts[name]["label"].value_counts(normalize=True).reindex(whole.index, fill_value=0)
        assert (share - whole).abs().max() < 0.01, (name, (share - whole).abs().max())
    for frame in parts.values():
        assert list(frame.columns) == PAIRS_SCHEMA.names
        assert frame[["review_id", "aspect"]].apply(tuple, axis=1).is_monotonic_increasing


def test_group_by_product_keeps_products_whole():
    pairs = realistic_pairs(n_reviews=300)
    parts = split_pairs(pairs, params(group_by="product"))
    products = [set(parts[name]["product_id"]) for name in SPLITS]
    assert sum(len(p) for p in products) == 40 and len(set.union(*products)) == 40


def test_same_seed_same_split_other_seed_other_split():
    pairs = realistic_pairs(n_reviews=200)
    first = split_pairs(pairs, params(seed=1))
    again = split_pairs(pairs, params(seed=1))
    other = split_pairs(pairs, params(seed=2))
    assert all(first[n].equals(again[n]) for n in SPLITS)
    assert set(first["test"]["review_id"]) != set(other["test"]["review_id"])


def test_few_groups_sizes_near_ratios_and_no_split_empty():
    one_label = np.array([[1] + [0] * 9])
    assert np.bincount(assign_groups(np.repeat(one_label, 10, axis=0), (0.8, 0.1, 0.1), 0), minlength=3).tolist() == [
        8,
        1,
        1,
    ]
    assert np.bincount(assign_groups(np.repeat(one_label, 3, axis=0), (0.8, 0.1, 0.1), 0), minlength=3).tolist() == [
        1,
        1,
        1,
    ]
    assert np.bincount(assign_groups(np.repeat(one_label, 5, axis=0), (0.6, 0.2, 0.2), 3), minlength=3).tolist() == [
        3,
        1,
        1,
    ]
    assert np.bincount(assign_groups(np.repeat(one_label, 4, axis=0), (1.0, 0.0, 0.0), 0), minlength=3).tolist() == [
        4,
        0,
        0,
    ]
    assert assign_groups(np.repeat(one_label, 2, axis=0), (0.8, 0.1, 0.1), 0).tolist() == [0, 1]


def test_predefined_keeps_release_split_per_pair():
    pairs = realistic_pairs(n_reviews=4)
    pairs["release_split"] = [SPLITS[i % 3] for i in range(len(pairs))]
    parts = split_pairs(pairs, params(method="predefined"))
    for name in SPLITS:
        assert (parts[name]["release_split"] == name).all()
        assert len(parts[name]) == (pairs["release_split"] == name).sum()
    metrics = split.split_metrics(parts, params(method="predefined"))
    assert metrics["overlap"]["reviews_in_several_splits"] == 4


def test_predefined_without_release_split_is_a_clear_error():
    pairs = realistic_pairs(n_reviews=3)
    with pytest.raises(UserError, match="no release_split.*import_multizol"):
        split_pairs(pairs, params(method="predefined"))


@pytest.mark.parametrize(
    "section, message",
    [
        ({"method": "random", "group_by": "review", "train": 0.8, "dev": 0.1, "test": 0.2, "seed": 1}, "sum to 1"),
        ({"method": "kfold", "group_by": "review", "train": 0.8, "dev": 0.1, "test": 0.1, "seed": 1}, "split.method"),
        ({"method": "random", "group_by": "user", "train": 0.8, "dev": 0.1, "test": 0.1, "seed": 1}, "split.group_by"),
        ({"method": "random", "group_by": "review", "train": 0.8, "dev": 0.1, "test": -0.1}, "'split.test' must be in"),
        ({"method": "random", "group_by": "review", "train": 0.8, "dev": 0.2, "sede": 1}, "unknown key.*split.sede"),
    ],
)
def test_bad_params(section, message):
    with pytest.raises(UserError, match=message):
        read_section(SplitParams, section, "split")


def test_main_metrics_and_identical_bytes_on_rerun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "data:\n  batch_rows: 8192\n"
        "split:\n  method: random\n  group_by: review\n  train: 0.8\n  dev: 0.1\n  test: 0.1\n  seed: 42\n"
    )
    pairs = realistic_pairs(n_reviews=50)
    assert split.PAIRS_PATH == clean.PAIRS_PATH
    write_frame(pairs, split.PAIRS_PATH, PAIRS_SCHEMA)
    assert split.main([]) == 0
    outputs = [split.SPLITS_DIR / f"{n}.parquet" for n in SPLITS] + [split.METRICS_PATH, split.DETAIL_PATH]
    first = [p.read_bytes() for p in outputs]
    assert split.main([]) == 0
    assert [p.read_bytes() for p in outputs] == first
    metrics = json.loads(split.DETAIL_PATH.read_text())
    assert sum(m["pairs"] for m in metrics["splits"].values()) == len(pairs)
    assert json.loads(split.METRICS_PATH.read_text()) == {f"{n}_pairs": metrics["splits"][n]["pairs"] for n in SPLITS}
    assert sum(m["reviews"] for m in metrics["splits"].values()) == 50
    assert metrics["overlap"]["reviews_in_several_splits"] == 0
    carried = pd.concat([pd.read_parquet(split.SPLITS_DIR / f"{n}.parquet") for n in SPLITS])
    assert set(carried.loc[carried["presegmented"], "review_id"]) == {"r0001", "r0049"}
    assert not [p.name for p in tmp_path.rglob("*.tmp")]


def test_a_failed_write_leaves_the_old_split_files(tmp_path, monkeypatch):
    """The three files change together: a failure while writing the second leaves all three old ones."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "data:\n  batch_rows: 8192\n"
        "split:\n  method: random\n  group_by: review\n  train: 0.8\n  dev: 0.1\n  test: 0.1\n  seed: 42\n"
    )
    write_frame(realistic_pairs(n_reviews=50), split.PAIRS_PATH, PAIRS_SCHEMA)
    assert split.main([]) == 0
    outputs = [split.SPLITS_DIR / f"{n}.parquet" for n in SPLITS]
    old = [p.read_bytes() for p in outputs]
    write_frame(realistic_pairs(n_reviews=50, seed=1), split.PAIRS_PATH, PAIRS_SCHEMA)
    real_finish, written = stream.FrameWriter.finish, []

    def failing_finish(writer, empty):
        if written:
            raise OSError(28, "No space left on device")
        written.append(writer.path)
        real_finish(writer, empty)

    monkeypatch.setattr(stream.FrameWriter, "finish", failing_finish)
    with pytest.raises(OSError):
        split.main([])
    assert [p.read_bytes() for p in outputs] == old
    assert sorted(p.name for p in split.SPLITS_DIR.iterdir()) == sorted(f"{n}.parquet" for n in SPLITS)
    assert not list(split.SPLITS_DIR.parent.glob(".*.tmp"))
