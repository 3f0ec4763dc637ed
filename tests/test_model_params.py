"""The model/embeddings/train params: one source of defaults, one-line errors for bad values, nothing written
before the params are known to be good; non-finite vectors and losses are caught."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml
from test_model_train import TINY_PARAMS, workdir  # noqa: F401  (fixture)

from common.errors import UserError
from model import train
from model.embeddings import build_word_vectors
from model.settings import EmbeddingParams, ModelParams, Settings, TrainParams
from model.vocab import Vocab

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "cls, section", [(ModelParams, "model"), (EmbeddingParams, "embeddings"), (TrainParams, "train")]
)
def test_code_defaults_equal_params_yaml(cls, section):
    shipped = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))[section]
    defaults = dataclasses.asdict(cls())
    defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}
    assert shipped == defaults  # every key present in both, with the same value


def test_shipped_params_parse():
    shipped = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    settings = Settings.from_params(shipped)
    assert settings.train.seeds[0] == shipped["train"]["seed"]


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("train", "batch_size", 0, "'train.batch_size' must be >= 1"),
        ("train", "lr", -0.01, "'train.lr' must be > 0"),
        ("train", "seed", "forty-two", "'train.seed' must be a whole number"),
        ("train", "max_epochs", 0, "'train.max_epochs' must be >= 1"),
        ("train", "select_metric", "f1", "'train.select_metric' must be one of loss, accuracy, macro_f1, weighted_f1"),
        ("model", "hopps", 3, "unknown key(s) model.hopps; valid keys: attention_score, dropout, embed_dim, family"),
        ("model", "hops", 9, "'model.hops' must be in 1..5"),
        ("model", "dropout", 1.0, "'model.dropout' must be in [0, 1)"),
        ("train", "wide_folds", 1, "'train.wide_folds' must be 0 (off) or >= 2"),
        ("train", "num_threads", 1, "unknown key(s) train.num_threads"),  # how to run: --threads, $ZOL_TORCH_THREADS
        ("model", "family", "svm", "'model.family' must be one of mimn, lstm"),
        ("embeddings", "lr_scale", -1, "'embeddings.lr_scale' must be >= 0.0"),
        ("train", "bucket_by_length", "yes", "'train.bucket_by_length' must be true or false"),
    ],
)
def test_bad_params_are_one_line_errors(section, key, value, message):
    params = {s: dict(v) for s, v in TINY_PARAMS.items()}
    params[section][key] = value
    with pytest.raises(UserError) as error:
        Settings.from_params(params)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_float_written_without_a_dot_is_read_as_a_number():
    params = {s: dict(v) for s, v in TINY_PARAMS.items()}
    params["train"]["lr"] = "5e-3"  # YAML 1.1 reads this as a string
    assert Settings.from_params(params).train.lr == 0.005


def test_zero_epochs_fail_before_anything_is_written(workdir, capsys):  # noqa: F811
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["train"]["max_epochs"] = 0
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    assert train.main(["--params", "params.yaml"]) == 2
    assert "'train.max_epochs' must be >= 1" in capsys.readouterr().err
    assert not (workdir / "models").exists() and not (workdir / "metrics").exists()


def test_non_finite_loss_stops_training_with_a_clear_error(workdir, capsys):  # noqa: F811
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["train"]["lr"] = 1e30
    params["embeddings"]["lr_scale"] = 1.0
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    assert train.main(["--params", "params.yaml"]) == 2
    err = capsys.readouterr().err
    assert "not finite" in err and "lower train.lr" in err
    assert not (workdir / "models/mimn.pt").exists()


def test_nan_and_inf_vectors_are_skipped_and_counted(tmp_path):
    vocab = Vocab(("<pad>", "<unk>", "好", "差", "快"))
    path = tmp_path / "vectors.txt"
    path.write_text("好 1 2\n差 nan 1\n快 inf 0\n", encoding="utf-8")
    vectors = build_word_vectors(vocab, str(path), 2, seed=0, train_sentences=[], sgns_params={})
    assert vectors.found == 1 and vectors.skipped_nonfinite == 2
    assert torch.isfinite(vectors.weights).all()


def test_torch_threads_come_from_the_option_else_the_environment_else_all_cores(monkeypatch):
    from model.runtime import THREADS_ENV, torch_threads

    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert torch_threads(None) == 0 and torch_threads(3) == 3
    monkeypatch.setenv(THREADS_ENV, "2")
    assert torch_threads(None) == 2 and torch_threads(1) == 1
    for bad, where in (("two", "$ZOL_TORCH_THREADS"), ("-1", "$ZOL_TORCH_THREADS")):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(UserError, match=rf"^\{where} must be a whole number of threads >= 0"):
            torch_threads(None)
    with pytest.raises(UserError, match="^--threads must be"):
        torch_threads(-2)


def test_every_family_config_shares_the_model_sections_defaults():
    from model.config import BaselineConfig, ModelShape

    shape = {f.name: f.default for f in dataclasses.fields(ModelShape)}
    baseline = BaselineConfig(vocab_size=3, num_classes=2)
    assert {k: getattr(baseline, k) for k in shape} == shape
    assert {k: getattr(ModelParams(), k) for k in shape} == shape


def test_mimn_config_defaults_equal_the_model_params():
    from model.config import MIMNConfig

    sizes = ("vocab_size", "num_classes", "wide_pairs", "wide_aspects")  # known from the data, not params
    mimn = {f.name: f.default for f in dataclasses.fields(MIMNConfig) if f.name not in sizes}
    assert mimn == {k: v for k, v in dataclasses.asdict(ModelParams()).items() if k in mimn}


def _set(workdir, section, **values):  # noqa: F811  (the fixture's name, passed on as a plain value)
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params[section].update(values)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))


def test_linear_family_runs_through_the_same_stages(workdir):  # noqa: F811
    import json

    from model import evaluate

    _set(workdir, "model", family="linear", linear_c=[0.5, 5.0])
    assert train.main(["--params", "params.yaml"]) == 0
    assert json.loads((workdir / "reports/train_detail.json").read_text())["c"] in (0.5, 5.0)
    assert set(json.loads((workdir / "metrics/train.json").read_text())) == {"train_pairs", "dev_pairs", "dev_macro_f1"}
    assert evaluate.main(["--params", "params.yaml"]) == 0
    test = json.loads((workdir / "reports/test_detail.json").read_text())
    assert test["family"] == "linear"
    assert test["accuracy"] == pytest.approx(test["linear_baseline"]["accuracy"])  # same data, same fit
    assert test["majority_baseline"]["accuracy"] > 0


def test_repeats_report_mean_and_std_over_seeds(workdir):  # noqa: F811
    import json

    from model import evaluate

    _set(workdir, "train", repeats=2, max_epochs=1)
    assert train.main(["--params", "params.yaml"]) == 0
    assert evaluate.main(["--params", "params.yaml"]) == 0
    test = json.loads((workdir / "reports/test_detail.json").read_text())
    assert test["seeds"] == [3, 4]
    accuracy = test["over_seeds"]["accuracy"]
    assert len(accuracy["values"]) == 2 and accuracy["values"][0] == pytest.approx(test["accuracy"])
    assert accuracy["mean"] == pytest.approx(sum(accuracy["values"]) / 2)
