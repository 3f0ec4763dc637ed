"""model.train and model.evaluate end to end on tiny synthetic Parquet files; labels, embeddings, data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from test_model_synthetic import write_dataset

from model import evaluate, train
from model.data import read_features
from model.embeddings import build_word_vectors
from model.labels import LabelMap
from model.settings import Settings
from model.vocab import Vocab

TINY_PARAMS = {
    "model": {
        "variant": "mimn",
        "hops": 2,
        "embed_dim": 16,
        "hidden_dim": 8,
        "max_text_len": 320,
        "max_aspect_len": 4,
        "max_images": 5,
        "dropout": 0.5,
    },
    "embeddings": {"source": "sgns", "epochs": 1, "window": 3, "negative": 3, "min_count": 1},
    "train": {
        "seed": 3,
        "classes": 10,
        "lr": 0.01,
        "batch_size": 32,
        "max_epochs": 3,
        "patience": 2,
        "min_word_count": 1,
        "device": "cpu",
    },
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Synthetic inputs and params in a temporary cwd; torch's global settings restored afterwards."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    yield from _workdir(tmp_path, monkeypatch)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    torch.utils.deterministic.fill_uninitialized_memory = fill


def _workdir(tmp_path, monkeypatch):
    write_dataset(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS, allow_unicode=True), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOL_TORCH_THREADS", "1")  # how the stages run torch (model/runtime.py)
    yield tmp_path


def test_train_then_evaluate_write_every_output(workdir, capsys):
    assert train.main(["--params", "params.yaml"]) == 0
    metrics = json.loads((workdir / "reports/train_detail.json").read_text())
    assert json.loads((workdir / "metrics/train.json").read_text()) == {
        "train_pairs": 120,
        "dev_pairs": 30,
        "best_epoch": metrics["best_epoch"],
        "dev_macro_f1": metrics["dev"]["macro_f1"],
    }
    assert set(metrics) == {
        "best_epoch",
        "dev",
        "epochs_run",
        "stopped_early",
        "train_pairs",
        "dev_pairs",
        "vocab_size",
        "embedding_source",
        "embedding_coverage",
        "num_classes",
        "parameters",
        "device",
        "family",
        "embedding_vectors_skipped_nonfinite",
        "trainable_parameters",
        "seeds",
        "dev_by_seed",
        "visual_memory",
        "train_pairs_with_image",
        "dev_pairs_with_image",
        "wide_path",
    }
    # the wide path started as the linear baseline, fitted on train with C chosen on dev
    assert metrics["wide_path"]["init"] == "linear" and metrics["wide_path"]["stacking_folds"] == 0
    assert metrics["wide_path"]["linear_c"] in (0.1, 0.3, 1.0, 3.0, 10.0) and metrics["wide_path"]["pair_features"] > 0
    # timings live in the untracked run log, never in DVC-tracked metrics
    log = json.loads((workdir / "logs/train.json").read_text())
    assert log["seconds"] > 0 and log["train_pairs_per_second"] > 0
    assert metrics["train_pairs"] == 24 * 5 and metrics["dev_pairs"] == 6 * 5
    assert 1 <= metrics["best_epoch"] <= metrics["epochs_run"] <= 3
    assert set(metrics["dev"]) == {"loss", "accuracy", "macro_f1", "weighted_f1"}
    # pad/unk + 10 filler + 10 sentiment words + 10 aspect tokens ("效果" shared by camera and screen)
    assert metrics["vocab_size"] == 2 + 10 + 10 + 10
    assert metrics["embedding_coverage"] == pytest.approx(29 / 30, abs=1e-4)  # only screen's "屏幕" is unseen
    curve = pd.read_csv(workdir / "plots/train_curve.csv")
    assert list(curve.columns) == train.CURVE_COLUMNS and len(curve) == metrics["epochs_run"]

    ckpt = torch.load(workdir / "models/mimn.pt", weights_only=True)
    assert set(ckpt) >= {"model", "config", "vocab", "labels", "epoch", "metrics", "params", "feature_norm"}
    assert ckpt["epoch"] == metrics["best_epoch"] and ckpt["config"]["hops"] == 2
    assert ckpt["config"]["wide_pairs"] == metrics["wide_path"]["pair_features"]
    assert ckpt["labels"] == {"class_scores": list(range(1, 11))}
    assert ckpt["feature_norm"]["mean"].shape == (2048,) and ckpt["params"]["train"]["seed"] == 3
    assert "屏幕" in ckpt["vocab"]  # test-only aspect token still has an id

    assert evaluate.main(["--params", "params.yaml"]) == 0
    test = json.loads((workdir / "reports/test_detail.json").read_text())
    assert json.loads((workdir / "metrics/test.json").read_text()) == {
        key: test[key] for key in ("accuracy", "weighted_f1", "macro_f1", "pairs", "pairs_without_usable_image")
    }
    assert {
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "note",
        "per_aspect",
        "per_class",
        "majority_baseline",
        "ablation_no_images",
        "pairs",
        "pairs_without_usable_image",
    } <= set(test)
    assert "average='weighted'" in test["note"]
    assert test["pairs"] == 6 * 6 and sorted(test["per_aspect"]) == sorted(
        ["price_performance", "performance", "battery", "appearance", "camera", "screen"]
    )
    assert set(test["ablation_no_images"]) == {"accuracy", "macro_f1", "per_aspect"}
    predictions = pq.read_table(workdir / "reports/predictions.parquet").to_pandas()
    assert list(predictions.columns) == [
        "review_id",
        "aspect",
        "score",
        "predicted_score",
        "label",
        "predicted_label",
        "probabilities",
    ]
    assert predictions[["review_id", "aspect"]].equals(
        predictions[["review_id", "aspect"]].sort_values(["review_id", "aspect"]).reset_index(drop=True)
    )
    assert (predictions["label"] == predictions["score"] - 1).all()
    assert (predictions["predicted_score"] == predictions["predicted_label"] + 1).all()
    assert np.allclose(np.stack(predictions["probabilities"]).sum(1), 1.0, atol=1e-5)
    accuracy = float((predictions["label"] == predictions["predicted_label"]).mean())
    assert test["accuracy"] == pytest.approx(accuracy)
    per_aspect = pd.read_csv(workdir / "reports/per_aspect.csv")
    assert len(per_aspect) == 6 and "no_image_accuracy" in per_aspect.columns
    for name in ("confusion.png", "learning_curve.png"):
        assert (workdir / "reports" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "train: 120 train / 30 dev pairs" in out and "evaluate: 36 test pairs" in out


def test_two_seeded_runs_give_identical_metrics_and_weights(workdir):
    runs = []
    for _ in range(2):
        assert train.main(["--params", "params.yaml"]) == 0
        metrics = json.loads((workdir / "reports/train_detail.json").read_text())
        runs.append(
            (
                metrics,
                (workdir / "plots/train_curve.csv").read_text(),
                torch.load(workdir / "models/mimn.pt", weights_only=True)["model"],
                (workdir / "models/mimn.pt").read_bytes(),
            )
        )
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    assert all(torch.equal(runs[0][2][k], runs[1][2][k]) for k in runs[0][2])
    assert runs[0][3] == runs[1][3], "the checkpoint file's bytes differ between two seeded runs"


def test_missing_input_is_one_clear_error(workdir, capsys):
    (workdir / "data/segmented/train.parquet").unlink()
    assert train.main(["--params", "params.yaml"]) == 2
    assert "data/segmented/train.parquet not found" in capsys.readouterr().err
    assert evaluate.main(["--params", "params.yaml"]) == 2
    assert "models/mimn.pt not found" in capsys.readouterr().err


def test_stale_features_are_refused(workdir, capsys):
    table = pq.read_table(workdir / "data/features/images.parquet")
    pq.write_table(table.slice(0, 5), workdir / "data/features/images.parquet")
    assert train.main(["--params", "params.yaml"]) == 2
    assert "re-run dvc repro features" in capsys.readouterr().err


def test_unusable_images_are_dropped_and_features_standardised(workdir):
    features = read_features("data/features/images.parquet")
    assert "data/raw/images/full/img003.jpg" in features.unusable and len(features.index) == 11
    prepared = train.prepare(Settings.from_params({**TINY_PARAMS, "embeddings": {"source": "random"}}))
    dataset = prepared.datasets["train"]
    frame = pd.read_parquet("data/segmented/train.parquet").sort_values(["review_id", "aspect"]).reset_index(drop=True)
    for paths, rows in zip(frame["image_paths"], dataset.image_rows, strict=False):
        usable = [p for p in paths if p != "data/raw/images/full/img003.jpg"][:5]
        assert rows.tolist() == [features.index[p] for p in usable]
    used = sorted({int(r) for rows in dataset.image_rows for r in rows})
    standardised = dataset.images[used]
    assert torch.allclose(standardised.mean(0), torch.zeros(2048), atol=1e-4)
    assert torch.allclose(standardised.std(0, unbiased=False), torch.ones(2048), atol=1e-3)


def test_label_maps():
    ten = LabelMap.for_classes(10)
    assert ten.scores_to_classes([1, 7, 10]).tolist() == [0, 6, 9]
    eight = LabelMap.for_classes(8)
    assert eight.scores_to_classes([1, 6, 7, 8, 9, 10]).tolist() == [0, 5, 6, 6, 7, 7]
    assert eight.classes_to_scores([6, 7]).tolist() == [8, 10]
    assert LabelMap.from_dict(eight.to_dict()) == eight
    with pytest.raises(ValueError):
        LabelMap.for_classes(5)


def test_word2vec_text_file_vectors_are_loaded_and_coverage_reported(tmp_path):
    vocab = Vocab(("<pad>", "<unk>", "好", "差", "屏幕"))
    path = tmp_path / "vectors.txt"
    path.write_text("3 4\n好 1 2 3 4\n差 -1 -2 -3 -4\n无关 9 9 9 9\n", encoding="utf-8")
    vectors = build_word_vectors(vocab, str(path), 4, seed=0, train_sentences=[], sgns_params={})
    assert vectors.weights[2].tolist() == [1, 2, 3, 4] and vectors.weights[3].tolist() == [-1, -2, -3, -4]
    assert vectors.coverage() == pytest.approx(2 / 3)
    assert torch.equal(vectors.weights[0], torch.zeros(4))
    sgns = build_word_vectors(vocab, "sgns", 4, seed=0, train_sentences=[["好", "差"]] * 5, sgns_params={"epochs": 1})
    again = build_word_vectors(vocab, "sgns", 4, seed=0, train_sentences=[["好", "差"]] * 5, sgns_params={"epochs": 1})
    assert sgns.found == 2 and torch.equal(sgns.weights, again.weights)


def test_null_tokens_are_refused_with_the_file_named(workdir, capsys):
    table = pq.read_table(workdir / "data/segmented/dev.parquet")
    tokens = table.column("tokens").to_pylist()
    tokens[0] = None
    table = table.set_column(table.schema.get_field_index("tokens"), "tokens", pa.array(tokens, pa.list_(pa.string())))
    pq.write_table(table, workdir / "data/segmented/dev.parquet")
    assert train.main(["--params", "params.yaml"]) == 2
    assert "data/segmented/dev.parquet: column tokens is null in 1 rows" in capsys.readouterr().err
