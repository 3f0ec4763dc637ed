"""Batched reads (issue 21): the features plan and the train and evaluate stages read their Parquet inputs a batch of
data.batch_rows rows at a time and get what a whole read gives; a segmented split comes out in key order whatever
its file order; the stages' outputs are the bytes of one batch."""

from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from test_model_synthetic import write_dataset
from test_model_train import TINY_PARAMS

from common.errors import UserError
from model import data as data_module
from model import evaluate, train
from model.data import ImageFeatures, read_features
from model.linear import fit_linear
from model.prepare import PAIR_TEXT, fit_linear_baseline, prepare
from model.settings import Settings
from model.splits import SplitFile, TrainCorpus
from model.vocab import build_vocab
from pipeline.features.plan import collect_image_paths
from pipeline.io import write_frame
from pipeline.schema import SEGMENTED_SCHEMA, SPLITS

WHOLE = 10_000  # a batch larger than any file here: one batch, a whole read


def _tmp():
    import tempfile

    return tempfile.TemporaryDirectory()


def _sort_splits(root: pathlib.Path) -> None:
    """The synthetic splits in (review_id, aspect) order, as the segment stage writes them (they come unsorted)."""
    for name in SPLITS:
        path = root / "data/segmented" / f"{name}.parquet"
        pq.write_table(pq.read_table(path).sort_by([("review_id", "ascending"), ("aspect", "ascending")]), path)


def _forbid_whole_file_reads(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a whole-file read")

    for target, name in ((pq, "read_table"), (pd, "read_parquet")):
        monkeypatch.setattr(target, name, refuse)


# ---- the features plan ------------------------------------------------------------------------------------------

image_lists = st.lists(
    st.none() | st.lists(st.none() | st.sampled_from(["", "a.jpg", "b.png", "c/ä.jpg", "d.jpg"]), max_size=4),
    max_size=12,
)


@settings(max_examples=30, deadline=None)
@given(st.fixed_dictionaries({name: image_lists for name in SPLITS}), st.integers(1, 4))
def test_features_plan_in_batches_is_the_whole_read(splits, batch_rows):
    """The splits' image paths, null lists, null and empty entries included: the same sorted distinct paths and
    empty-entry count for any batch, and the count a whole read gives."""
    with _tmp() as folder:
        folder = pathlib.Path(folder)
        for name, lists in splits.items():
            pq.write_table(
                pa.table({"image_paths": pa.array(lists, pa.list_(pa.string()))}), folder / f"{name}.parquet"
            )
        expected_paths = sorted({p for lists in splits.values() for e in lists if e for p in e if p})
        expected_empty = sum(1 for lists in splits.values() for e in lists if e for p in e if not p)
        assert collect_image_paths(folder, WHOLE) == (expected_paths, expected_empty)
        assert collect_image_paths(folder, batch_rows) == (expected_paths, expected_empty)


def test_features_plan_errors_are_one_line(tmp_path):
    pq.write_table(pa.table({"other": [1]}), tmp_path / "train.parquet")
    with pytest.raises(UserError, match=r"lacks columns \['image_paths'\]") as lacking:
        collect_image_paths(tmp_path, 3)
    (tmp_path / "train.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(UserError, match="not a readable Parquet file") as unreadable:
        collect_image_paths(tmp_path, 3)
    assert "\n" not in str(lacking.value) and "\n" not in str(unreadable.value)


# ---- a segmented split: key order, checks ------------------------------------------------------------------------

split_rows = st.lists(
    st.fixed_dictionaries(
        {
            "review_id": st.sampled_from(["r1", "r2", "r10", "ä", ""]),
            "aspect": st.sampled_from(["battery", "camera", "screen"]),
            "score": st.integers(1, 10),
            "tokens": st.lists(st.sampled_from(["好", "差", "屏幕", "a", ""]), max_size=5),
            "aspect_tokens": st.lists(st.sampled_from(["电池", "拍照", "屏幕"]), min_size=1, max_size=2),
            "image_paths": st.lists(st.sampled_from(["x.jpg", "y.jpg"]), max_size=3),
        }
    ),
    max_size=20,
)


def _segmented(rows: list[dict]) -> pd.DataFrame:
    extra = {"product_id": "p", "product_name": None, "brand": None, "aspect_zh": "z", "text": "t"}
    extra |= {"n_images": 0, "release_split": None, "presegmented": True}
    frame = pd.DataFrame([{**extra, **row, "label": row["score"] - 1} for row in rows], columns=SEGMENTED_SCHEMA.names)
    return frame.astype({"score": "int8", "label": "int8", "n_images": "int16"})


@settings(max_examples=40, deadline=None)
@given(split_rows, st.booleans(), st.integers(1, 4))
def test_split_batches_are_the_whole_file_in_key_order(rows, in_order, batch_rows):
    """In key order or not, batches of any size give the rows of a whole read sorted by (review_id, aspect) (a
    stable sort), and the training corpus is each review's first tokens, then every pair's aspect tokens."""
    frame = _segmented(sorted(rows, key=lambda r: (r["review_id"], r["aspect"])) if in_order else rows)
    with _tmp() as folder:
        path = pathlib.Path(folder) / "train.parquet"
        write_frame(frame, path, SEGMENTED_SCHEMA)
        expected = pq.read_table(path).to_pandas().sort_values(["review_id", "aspect"], kind="stable")
        expected = expected.reset_index(drop=True)
        split = SplitFile(path, batch_rows)
        columns = ["review_id", "aspect", "score", "tokens"]
        parts = list(split.batches(columns))
        assert all(len(part) <= batch_rows for part in parts) and split.rows == len(frame)
        got = pd.concat(parts, ignore_index=True) if parts else expected[columns].iloc[:0]
        assert _records(got) == _records(expected[columns])
        corpus = [list(t) for t in expected.drop_duplicates("review_id")["tokens"]]
        corpus += [list(t) for t in expected["aspect_tokens"]]
        corpus_again = TrainCorpus(split)
        assert [list(t) for t in corpus_again] == corpus
        assert [list(t) for t in corpus_again] == corpus  # each pass reads the file again


def _records(frame: pd.DataFrame) -> list[dict]:
    return [
        {k: list(v) if isinstance(v, np.ndarray) else v for k, v in row.items()} for row in frame.to_dict("records")
    ]


def test_split_faults_are_one_line_naming_the_first_in_file_order(tmp_path):
    def rows(null_tokens: tuple[int, ...]) -> pd.DataFrame:
        pair = {"aspect": "camera", "aspect_tokens": ["拍照"], "image_paths": []}
        return _segmented(
            [
                pair
                | {"review_id": f"r{i}", "score": 11 if i == 5 else 5, "tokens": None if i in null_tokens else ["好"]}
                for i in range(7)
            ]
        )

    path = tmp_path / "dev.parquet"
    write_frame(rows((4, 6)), path, SEGMENTED_SCHEMA)
    with pytest.raises(UserError) as null:
        SplitFile(path, 3)
    assert str(null.value) == f"{path}: column tokens is null in 2 rows (first: review r4); re-run dvc repro segment"
    write_frame(rows(()), path, SEGMENTED_SCHEMA)
    with pytest.raises(UserError, match=r"1 rows have a score outside 1\.\.10 \(first: review r5\)"):
        SplitFile(path, 2)
    path.write_bytes(b"PAR1 broken")
    with pytest.raises(UserError, match="not a readable Parquet file") as unreadable:
        SplitFile(path, 2)
    assert "\n" not in str(unreadable.value)


# ---- train and evaluate -----------------------------------------------------------------------------------------


@pytest.fixture
def data(tmp_path, monkeypatch):
    write_dataset(tmp_path)
    _sort_splits(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_training_data_in_batches_of_three_is_the_whole_read(data, monkeypatch):
    """Vocabulary, ids, image rows, classes, feature standardisation and the linear baseline: the same from batches
    of 3 rows (with no whole-file read) as from one batch, and as computed here from whole frames."""
    settings_ = Settings.from_params({**TINY_PARAMS, "embeddings": {"source": "random"}})
    whole = prepare(settings_, WHOLE)
    with monkeypatch.context() as inner:
        _forbid_whole_file_reads(inner)
        batched = prepare(settings_, 3)
        batched_linear, batched_rows = fit_linear_baseline(batched, settings_)
    assert batched.vocab == whole.vocab and batched.class_counts == whole.class_counts
    assert np.array_equal(batched.mean, whole.mean) and np.array_equal(batched.std, whole.std)
    frames = {s: pd.read_parquet(f"data/segmented/{s}.parquet") for s in SPLITS}  # sorted by the fixture
    corpus = list(frames["train"].drop_duplicates("review_id")["tokens"]) + list(frames["train"]["aspect_tokens"])
    aspect_lists = [t for f in frames.values() for t in f["aspect_tokens"]]
    assert batched.vocab == build_vocab(corpus, aspect_lists)
    features = read_features("data/features/images.parquet")
    for split in ("train", "dev"):
        frame, one, three = frames[split], whole.datasets[split], batched.datasets[split]
        assert len(three) == len(frame) and torch.equal(three.targets, one.targets)
        assert torch.equal(three.targets, torch.as_tensor(frame["score"].to_numpy(np.int64) - 1))
        assert three.keys.frame().equals(one.keys.frame())
        assert three.keys.frame()[["review_id", "aspect"]].equals(frame[["review_id", "aspect"]])
        for i, (tokens, aspect_tokens, paths) in enumerate(frame[["tokens", "aspect_tokens", "image_paths"]].values):
            assert three.text[i].tolist() == whole.vocab.encode(tokens, 320).tolist() == one.text[i].tolist()
            assert three.aspect[i].tolist() == whole.vocab.encode(aspect_tokens, 4).tolist()
            usable = [p for p in paths if p in features.index][:5]
            expected = (features.matrix[[features.index[p] for p in usable]] - whole.mean) / whole.std
            assert torch.equal(three.images[three.image_rows[i]], torch.from_numpy(expected.astype(np.float32)))
    assert [list(t) for t in batched.corpus] == [list(t) for t in corpus]
    used = sorted({features.index[p] for paths in frames["train"]["image_paths"] for p in paths if p in features.index})
    expected_mean, expected_std = _numpy_norm(features.matrix[used])
    assert np.array_equal(whole.mean, expected_mean) and np.array_equal(whole.std, expected_std)
    y = {s: batched.datasets[s].targets.numpy() for s in ("train", "dev")}
    grid, metric, seed = settings_.model.linear_c, settings_.train.select_metric, settings_.train.seed
    linear, rows = fit_linear(frames["train"], y["train"], frames["dev"], y["dev"], 10, grid, metric, seed)
    assert rows == batched_rows and linear.features == batched_linear.features
    assert np.array_equal(linear.coef, batched_linear.coef)
    test_probs = batched_linear.predict_proba(batched.splits["test"].reader(PAIR_TEXT))
    assert len(test_probs) == len(frames["test"]) and np.array_equal(linear.predict_proba(frames["test"]), test_probs)


def _numpy_norm(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std as a whole float64 copy gives them (std 1 where constant)."""
    sample = matrix.astype(np.float64)
    std = sample.std(axis=0)
    std[std < 1e-6] = 1.0
    return sample.mean(axis=0).astype(np.float32), std.astype(np.float32)


@pytest.mark.parametrize("rows, block", [(1, 1), (7, 3), (50, 1), (50, 7), (2000, 1024)])
def test_feature_norm_in_blocks_is_numpys_whole_mean_and_std(rows, block, monkeypatch):
    """The standardisation statistics, taken a block of rows at a time, are bit for bit those of one float64 copy."""
    rng = np.random.default_rng(rows)
    matrix = (rng.normal(3, 50, (rows + 3, 64)) * rng.uniform(0.01, 100, 64)).astype(np.float32)
    matrix[:, 5] = 2.5  # a constant dimension: std 1
    paths = [f"{i}.jpg" for i in range(rows + 3)]
    features = ImageFeatures({p: i for i, p in enumerate(paths)}, matrix, frozenset())
    monkeypatch.setattr(data_module, "NORM_ROWS", block)
    mean, std = data_module.feature_norm(set(paths[2:-1]), features)
    expected_mean, expected_std = _numpy_norm(matrix[2:-1])
    assert np.array_equal(mean, expected_mean) and np.array_equal(std, expected_std) and std[5] == 1.0


def _run_stages(batch_rows: int) -> dict[str, str]:
    params = {**TINY_PARAMS, "data": {"batch_rows": batch_rows}}
    pathlib.Path("params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    assert train.main(["--params", "params.yaml"]) == 0
    assert evaluate.main(["--params", "params.yaml"]) == 0
    outputs = ["models/mimn.pt", "reports/train_detail.json", "reports/test_detail.json", "plots/train_curve.csv"]
    outputs += ["reports/predictions.parquet", "reports/per_aspect.csv", "plots/confusion.csv"]
    outputs += sorted(str(p) for p in pathlib.Path("reports/explain").rglob("*") if p.is_file())
    return {name: hashlib.md5(pathlib.Path(name).read_bytes()).hexdigest() for name in outputs}


def test_train_and_evaluate_in_batches_of_three_write_the_bytes_of_one_batch(data, monkeypatch):
    monkeypatch.setenv("ZOL_TORCH_THREADS", "1")
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    try:
        one = _run_stages(WHOLE)
        three = _run_stages(3)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.utils.deterministic.fill_uninitialized_memory = fill
    assert three == one
    assert len([name for name in one if name.startswith("reports/explain/")]) > 1
    assert json.loads(pathlib.Path("reports/test_detail.json").read_text())["pairs"] == 36
