"""Property-based tests (Hypothesis, the project's deterministic profile in conftest.py) at predict's two
boundaries: a checkpoint dict (what predict and evaluate load) and a raw review line (predict --input).

The promise: a loaded model that scores, or one line of error; a prediction, or a rejected row with its reason;
never a traceback, never a page outside the --explain folder."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st
from test_predict import SEGMENT

from common.errors import UserError
from model.checkpoint import HISTORY_KEYS, load_checkpoint
from model.explain import write_review
from model.families import build_model, checkpoint_fields
from model.labels import LabelMap
from model.linear import LinearModel
from model.provenance import checkpoint_aspect_pairs, model_notes
from model.vocab import Vocab
from pipeline.image_data import Preprocessing
from pipeline.segment import Segmenter, SegmentParams
from tools.predict_inputs import Review, reviews_from_jsonl
from tools.predict_scoring import LinearScorer, NeuralScorer, Predictor

REPO = Path(__file__).resolve().parents[1]
ASPECTS = ["battery", "screen"]
VOCAB = ["<pad>", "<unk>", "手机", "不错", "电池", "续航", "屏幕", "效果"]
SIZES = {"embed_dim": 8, "hidden_dim": 4, "image_dim": 6, "max_text_len": 20, "hops": 2, "dropout": 0.0}


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    params = {**SEGMENT, "user_dict": str(REPO / SEGMENT["user_dict"]), "stopwords": str(REPO / SEGMENT["stopwords"])}
    return Segmenter(SegmentParams(**params))


def neural_checkpoint(family: str) -> dict:
    torch.manual_seed(0)
    model = build_model(family, SIZES, vocab_size=len(VOCAB), num_classes=10)
    return {
        "model": model.state_dict(),
        **checkpoint_fields(model),
        "vocab": list(VOCAB),
        "labels": {"class_scores": list(range(1, 11))},
        "epoch": 1,
        "params": {"train": {"seed": 0}},
        "feature_norm": {"mean": torch.zeros(6), "std": torch.ones(6)},
        "train_class_counts": [1] * 10,
        "history": [dict.fromkeys(HISTORY_KEYS, 1.0)],
        "repeats": [],
        "data_source": "sample",
        "aspect_train_pairs": {"battery": 40, "screen": 2},
    }


def linear_checkpoint() -> dict:
    features = ["手机", "电池", "battery|电池", "battery|<aspect>", "screen|<aspect>"]
    rng = np.random.default_rng(0)
    linear = LinearModel(
        features, np.ones(len(features)), rng.normal(size=(3, len(features))), np.zeros(3), np.array([2, 5, 8]), 10, 1.0
    )
    return {
        "family": "linear",
        "linear": linear.to_checkpoint(),
        "labels": {"class_scores": list(range(1, 11))},
        "epoch": 0,
        "params": {"train": {"seed": 0}},
        "train_class_counts": [1] * 10,
        "history": [],
        "repeats": [],
    }


BASES = {"mimn": neural_checkpoint("mimn"), "lstm": neural_checkpoint("lstm"), "linear": linear_checkpoint()}
PATHS = [
    (),
    ("family",),
    ("config",),
    ("config", "vocab_size"),
    ("config", "hops"),
    ("config", "embed_dim"),
    ("config", "max_text_len"),
    ("config", "max_images"),
    ("config", "image_dim"),
    ("config", "num_classes"),
    ("config", "dropout"),
    ("config", "word_evidence"),
    ("config", "variant"),
    ("model",),
    ("model", "embedding.weight"),
    ("vocab",),
    ("labels",),
    ("labels", "class_scores"),
    ("feature_norm",),
    ("feature_norm", "mean"),
    ("feature_norm", "std"),
    ("features",),
    ("repeats",),
    ("train_class_counts",),
    ("params",),
    ("epoch",),
    ("history",),
    ("data_source",),
    ("aspect_train_pairs",),
    ("linear",),
    ("linear", "coef"),
    ("linear", "classes"),
    ("linear", "features"),
    ("linear", "idf"),
    ("linear", "num_classes"),
    ("linear", "c"),
    ("linear_baseline",),
    ("history", 0),
]


def tensor(shape: list[int], kind: str, fill: float) -> torch.Tensor:
    if kind == "bool":
        return torch.zeros(shape, dtype=torch.bool)
    if kind == "int":
        return torch.full(shape, int(fill) if np.isfinite(fill) else 0, dtype=torch.int64)
    return torch.full(shape, fill, dtype=torch.float32) + torch.randn(shape) * (fill == 0)


tensors = st.builds(
    tensor,
    st.lists(st.integers(0, 6), max_size=3),
    st.sampled_from(["float", "int", "bool"]),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(), st.text(max_size=8))
values = st.recursive(
    st.one_of(scalars, tensors),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8,
)
DELETE = object()
mutations = st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(st.just(DELETE), values)), min_size=0, max_size=3)


def child(node, key):
    if isinstance(node, dict):
        return node.get(key)
    return node[key] if isinstance(node, list) and isinstance(key, int) and key < len(node) else None


def mutated(base: dict, changes) -> object:
    """`base` with each (path, value) applied: the value put at the path (DELETE: the entry removed)."""
    ckpt: object = copy.deepcopy(base)
    for path, value in changes:
        if not path:
            ckpt = value if value is not DELETE else {}
            continue
        parent = ckpt
        for key in path[:-1]:
            parent = child(parent, key)
        if isinstance(parent, dict) and value is DELETE:
            parent.pop(path[-1], None)
        elif isinstance(parent, dict) or child(parent, path[-1]) is not None:
            if isinstance(parent, list) and value is DELETE:
                del parent[path[-1]]
            elif value is not DELETE:
                parent[path[-1]] = value
    return ckpt


def score_one(model, ckpt: dict, segmenter: Segmenter) -> list[dict]:
    """What predict does with a loaded checkpoint, on one short review."""
    if isinstance(model, LinearModel):
        scorer, image_dim = LinearScorer(model), 0
    else:
        scorer, image_dim = (
            NeuralScorer(model, Vocab(tuple(ckpt["vocab"])), segmenter, torch.device("cpu")),
            model.config.image_dim,
        )
    predictor = Predictor(scorer, LabelMap.from_dict(ckpt["labels"]), None, image_dim, checkpoint_aspect_pairs(ckpt))
    model_notes(ckpt, ASPECTS, predictor.aspect_pairs, 30)
    return [out for out, _ in predictor.run([Review("r1", ["手机", "电池", "新词"], [])], ASPECTS, explain=False)]


@given(base=st.sampled_from(sorted(BASES)), changes=mutations, for_evaluation=st.booleans())
def test_a_checkpoint_dict_loads_and_scores_or_is_one_line(tmp_path, segmenter, base, changes, for_evaluation):
    ckpt = mutated(BASES[base], changes)
    path = tmp_path / "model.pt"
    torch.save(ckpt, path)
    try:
        model, loaded = load_checkpoint(path, for_evaluation=for_evaluation)
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path))
        event("refused")
        return
    event("loaded")
    (out,) = score_one(model, loaded, segmenter)
    assert list(out["aspects"]) == ASPECTS
    for entry in out["aspects"].values():
        assert sum(entry["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert entry["predicted_score"] in range(1, 11)


@pytest.mark.parametrize("name", sorted(BASES))
def test_bases_load_and_score(tmp_path, segmenter, name):
    torch.save(BASES[name], tmp_path / "model.pt")
    model, ckpt = load_checkpoint(tmp_path / "model.pt", for_evaluation=True)
    (out,) = score_one(model, ckpt, segmenter)
    if name != "linear":
        assert out["aspects"]["screen"]["few_training_pairs"] is True
        assert out["aspects"]["battery"]["few_training_pairs"] is False


# ---- raw review lines -------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
paths = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["ok.jpg", "a\x00b.jpg", "../x.jpg", "/etc/passwd", "", "sub/../../x", "x" * 300, "nested/ok.jpg"]),
)
review_ids = st.one_of(
    st.text(min_size=1, max_size=12), st.sampled_from(["index", "INDEX", "../up", "a/b", ".hidden", "\ud800x", "c0001"])
)
bodies = st.one_of(
    st.sampled_from(["电池 续航 很好 手机 不错", "　", "<b>屏幕</b>效果 一般", "词9"]), st.text(max_size=30)
)
images = st.lists(st.fixed_dictionaries({"url": st.one_of(st.text(max_size=4), st.none()), "path": paths}), max_size=3)
# records that follow the raw contract's types (most are predicted), and records with any JSON in any field
good_records = st.fixed_dictionaries(
    {
        "review_id": review_ids,
        "scores": st.dictionaries(
            st.sampled_from(["续航", "屏幕", "battery", "x"]),
            st.one_of(st.integers(-3, 12), st.floats(), st.text(max_size=4)),
            max_size=3,
        ),
    },
    optional={
        "title": st.text(max_size=30),
        "body": bodies,
        "images": images,
        "image_urls": st.lists(st.text(max_size=4), max_size=3),
        "segmented": st.booleans(),
    },
)
any_records = st.fixed_dictionaries(
    {"review_id": st.one_of(review_ids, json_values), "scores": json_values},
    optional={
        "title": json_values,
        "body": st.one_of(bodies, json_values),
        "images": st.one_of(images, json_values),
        "image_urls": json_values,
        "segmented": json_values,
    },
)
lines = st.one_of(
    good_records.map(lambda r: json.dumps(r, ensure_ascii=False)),
    good_records.map(json.dumps),
    any_records.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=40),
    st.integers(1, 3000).map(lambda n: "[" * n * 40 + "]" * n * 40),
)


@pytest.fixture(scope="module")
def tiny_predictor(segmenter) -> Predictor:
    ckpt = neural_checkpoint("mimn")
    model = build_model("mimn", SIZES, vocab_size=len(VOCAB), num_classes=10)
    model.load_state_dict(ckpt["model"])
    scorer = NeuralScorer(model.eval(), Vocab(tuple(VOCAB)), segmenter, torch.device("cpu"))
    return Predictor(scorer, LabelMap.from_dict(ckpt["labels"]), None, 6, ckpt["aspect_train_pairs"])


@given(line=lines)
def test_a_raw_review_line_is_a_prediction_or_a_rejected_row_with_its_reason(tmp_path, segmenter, tiny_predictor, line):
    raw = tmp_path / "raw"
    (raw / "images/nested").mkdir(parents=True, exist_ok=True)
    for name in ("ok.jpg", "nested/ok.jpg"):
        (raw / "images" / name).write_bytes(b"")  # listed images that are not decodable
    text = line.replace("\n", " ").replace("\r", " ")
    (raw / "reviews.jsonl").write_bytes(text.encode("utf-8", "surrogatepass") + b"\n")
    reviews = list(reviews_from_jsonl(raw / "reviews.jsonl", segmenter, Preprocessing(32, 40_000_000)))
    assert len(reviews) == (0 if not text.strip() else 1)
    pages = tmp_path / "pages"
    for out, view in tiny_predictor.run(reviews, ASPECTS, explain=True):
        event("rejected row" if "error" in out else "predicted")
        json.dumps(out, ensure_ascii=False).encode("utf-8")  # writable as UTF-8 JSON Lines
        if "error" in out:
            assert re.fullmatch(r"[a-z_]+: .+", out["error"], flags=re.S) and view is None
        else:
            assert list(out["aspects"]) == ASPECTS and out["images"] == 0
            name = write_review(view, pages)
            assert (pages / f"{name}.html").is_file() and name != "index"
            assert all(p.parent == pages for p in pages.rglob("*"))


@pytest.mark.parametrize(
    "base, changes, message",
    [
        ("mimn", [(("history", 0), {"epoch": 1})], "history is not a list of rows of epoch"),
        ("mimn", [(("linear_baseline",), {"features": []})], "linear_baseline.idf is not a tensor"),
        ("mimn", [(("model", "embedding.weight"), torch.full((len(VOCAB), 8), float("nan")))], "holds NaN"),
        ("mimn", [(("config", "max_images"), 2.5)], "config.max_images is 2.5, not of type int"),
        (
            "mimn",
            [(("config", "vocab_size"), 10**12)],
            "model.embedding.weight is not a tensor of shape (1000000000000, 8)",
        ),
        ("lstm", [(("feature_norm", "std"), torch.zeros(6))], "feature_norm.std has values <= 0"),
        ("linear", [(("linear", "classes"), [2, 5, 12])], "linear.classes does not match"),
        ("linear", [(("labels",), {"class_scores": [3, 1]})], "labels.class_scores is not an increasing list"),
    ],
)
def test_what_is_wrong_is_named(tmp_path, base, changes, message):
    torch.save(mutated(BASES[base], changes), tmp_path / "model.pt")
    with pytest.raises(UserError, match=re.escape(message)):
        load_checkpoint(tmp_path / "model.pt", for_evaluation=True)
