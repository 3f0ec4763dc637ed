"""MIMN's wide path (model.word_evidence): the linear baseline's scorer inside the model. It reproduces the fitted
baseline's probabilities exactly, ignores padding, tells aspects apart, has its own optimiser settings, trains
beside out-of-fold linear logits (stacking) and survives a checkpoint round trip."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pandas as pd
import pytest
import torch
from test_model_mimn import SMALL, make_batch, one_thread, pad_with_garbage  # noqa: F401  (fixture)
from test_model_train import TINY_PARAMS

from common.errors import UserError
from model.config import MIMNConfig
from model.data import batch_inputs
from model.families import rebuild_model
from model.linear import ABSENT_CLASS_LOGIT, fit_one, out_of_fold_logits
from model.mimn import MIMN
from model.settings import Settings
from model.training import make_optimizer
from model.vocab import build_vocab
from model.word_evidence import WordEvidence, aspect_keys, linear_tables

WIDE = dict(SMALL, word_evidence=True, wide_pairs=30, wide_aspects=3)
PLAIN = dict(SMALL, word_evidence=False)
WIDE_KEYS = {"words", "pairs", "aspects", "bias", "word_idf", "pair_keys", "pair_idf", "aspect_keys", "aspect_idf"}

WORDS = ["好", "差", "清晰", "模糊", "流畅", "卡顿", "很", "还行", "一般", "屏幕", "拍照", "电池"]
ASPECTS = {"screen": ["屏幕"], "camera": ["拍照"], "battery": ["电池", "续航"]}


def review_frame(n_reviews: int = 60, seed: int = 0) -> pd.DataFrame:
    """Pairs of random reviews; the score follows the words (好 up, 差 down) so the linear model learns something."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_reviews):
        tokens = [str(w) for w in rng.choice(WORDS, size=int(rng.integers(3, 12)))]
        for aspect in rng.choice(list(ASPECTS), size=int(rng.integers(1, 4)), replace=False):
            score = int(np.clip(5 + 3 * tokens.count("好") - 3 * tokens.count("差") + rng.integers(-1, 2), 1, 10))
            rows.append(
                {
                    "review_id": f"r{r:03d}",
                    "aspect": str(aspect),
                    "tokens": tokens,
                    "aspect_tokens": ASPECTS[str(aspect)],
                    "score": score,
                }
            )
    return pd.DataFrame(rows)


def fitted_wide_path(frame: pd.DataFrame, num_classes: int = 10, c: float = 1.0):
    """(vocab, fitted LinearModel, WordEvidence loaded with its tables) on the frame's pairs."""
    vocab = build_vocab(frame["tokens"], frame["aspect_tokens"])
    y = frame["score"].to_numpy() - 1
    linear = fit_one(frame, y, num_classes, c, seed=0)
    aspects = {a: vocab.encode(t, 4).tolist() for a, t in zip(frame["aspect"], frame["aspect_tokens"], strict=False)}
    tables = linear_tables(linear, list(vocab.tokens), aspects)
    wide = WordEvidence(len(vocab), num_classes, len(tables["pair_keys"]), len(tables["aspect_keys"])).eval()
    wide.load_linear(tables)
    return vocab, linear, wide


def wide_inputs(frame: pd.DataFrame, vocab, max_len: int = 320) -> dict[str, torch.Tensor]:
    text = [torch.from_numpy(vocab.encode(t, max_len)) for t in frame["tokens"]]
    aspect = [torch.from_numpy(vocab.encode(t, 4)) for t in frame["aspect_tokens"]]
    inputs = batch_inputs(text, aspect, [torch.zeros(0, 4)] * len(frame), image_dim=4)
    return {k: inputs[k] for k in ("text_ids", "text_lengths", "aspect_ids", "aspect_lengths")}


def test_plain_mimn_has_no_wide_path_and_its_weights_keep_their_names():
    plain, wide = MIMN(MIMNConfig(**PLAIN)), MIMN(MIMNConfig(**WIDE))
    assert plain.word_evidence is None
    assert set(plain.state_dict()) < set(wide.state_dict())
    assert {k for k in wide.state_dict() if k not in plain.state_dict()} == {f"word_evidence.{k}" for k in WIDE_KEYS}


def test_a_fresh_wide_path_adds_nothing_so_logits_equal_plain_mimn():
    torch.manual_seed(0)
    plain = MIMN(MIMNConfig(**PLAIN)).eval()
    wide = MIMN(MIMNConfig(**WIDE)).eval()
    wide.load_state_dict(plain.state_dict(), strict=False)
    inputs = make_batch()
    with torch.no_grad():
        torch.testing.assert_close(wide(**inputs), plain(**inputs))


@pytest.mark.parametrize("c", [0.3, 3.0])
def test_the_wide_path_gives_exactly_the_linear_baselines_probabilities(c):
    """Same TF-IDF (sublinear tf, smoothed IDF, L2 norm over word, (aspect, word) and aspect features) and the same
    coefficients: on pairs it never saw, and with words it does not know, the probabilities agree to 1e-5."""
    train, unseen = review_frame(60, seed=0), review_frame(25, seed=1)
    unseen.loc[0, "tokens"] = ["好", "从没见过", "好", "好"]  # an unknown word and a repeated one
    vocab, linear, wide = fitted_wide_path(train, c=c)
    for frame in (train, unseen):
        with torch.no_grad():
            probs = torch.softmax(wide(**wide_inputs(frame, vocab)).double(), -1).numpy()
        np.testing.assert_allclose(probs, linear.predict_proba(frame), atol=1e-5)
    assert (linear.predict_proba(unseen)[:, linear.classes].max(1) < 0.99).any()  # a model, not a lookup


def test_classes_absent_from_training_get_no_probability():
    frame = review_frame(40)
    frame = frame[frame["score"] != 5].reset_index(drop=True)
    vocab, linear, wide = fitted_wide_path(frame)
    assert 4 not in linear.classes
    with torch.no_grad():
        probs = torch.softmax(wide(**wide_inputs(frame, vocab)), -1)
    assert wide.bias[4] == ABSENT_CLASS_LOGIT and probs[:, 4].max() < 1e-6


def test_padding_never_changes_the_wide_paths_logits():
    frame = review_frame(30)
    vocab, _, wide = fitted_wide_path(frame)
    inputs = wide_inputs(frame, vocab)
    padded = dict(inputs, text_ids=torch.cat([inputs["text_ids"], torch.randint(2, len(vocab), (len(frame), 9))], 1))
    with torch.no_grad():
        torch.testing.assert_close(wide(**padded), wide(**inputs), atol=1e-6, rtol=0)


def trained_wide_model(seed: int = 0) -> MIMN:
    torch.manual_seed(seed)
    model = MIMN(MIMNConfig(**WIDE)).eval()
    with torch.no_grad():
        for name in ("words", "pairs", "aspects", "bias"):
            getattr(model.word_evidence, name).normal_()
        model.word_evidence.word_idf.uniform_(0.5, 2.0)
        model.word_evidence.word_idf[0] = 0  # <pad>
        model.word_evidence.pair_keys.copy_(torch.arange(30) * 7)
        model.word_evidence.pair_idf.uniform_(0.5, 2.0)
    return model


def test_shapes_and_padding_never_change_the_logits_of_mimn_with_its_wide_path():
    model = trained_wide_model()
    inputs = make_batch()
    with torch.no_grad():
        reference = model(**inputs)
        padded = model(**pad_with_garbage(inputs, extra=7))
    assert reference.shape == (6, 10) and torch.isfinite(reference).all()
    torch.testing.assert_close(padded, reference, atol=1e-5, rtol=0)


def test_the_same_words_give_different_evidence_for_different_aspects():
    frame = review_frame(60)
    vocab, _, wide = fitted_wide_path(frame)
    same_text = frame.iloc[[0, 0, 0]].reset_index(drop=True)
    same_text["aspect"], same_text["aspect_tokens"] = list(ASPECTS), list(ASPECTS.values())
    with torch.no_grad():
        logits = wide(**wide_inputs(same_text, vocab))
    assert not torch.allclose(logits[0], logits[1]) and not torch.allclose(logits[1], logits[2])
    # aspect keys ignore padding, and differ with word order
    keys = aspect_keys(torch.tensor([[10, 11, 0], [10, 11, 33], [11, 10, 0]]), torch.tensor([2, 2, 2]))
    assert keys[0] == keys[1] and keys[0] != keys[2]


def test_the_wide_path_alone_learns_which_words_carry_which_class_per_aspect():
    """Word 5 means class 2 for aspect A and class 0 for aspect B: only the (aspect, word) table can tell."""
    torch.manual_seed(0)
    key_a, key_b = (int(k) for k in aspect_keys(torch.tensor([[20], [30]]), torch.tensor([1, 1])))
    wide = WordEvidence(vocab_size=50, num_classes=3, pairs=2, aspects=0)
    with torch.no_grad():
        wide.word_idf.fill_(1.0)
        wide.pair_keys.copy_(torch.tensor(sorted([key_a * 50 + 5, key_b * 50 + 5])))
        wide.pair_idf.fill_(1.0)
    text = torch.tensor([[5, 9], [5, 8], [5, 9], [5, 8]])
    aspects = torch.tensor([[20], [20], [30], [30]])
    targets = torch.tensor([2, 2, 0, 0])
    optimizer = torch.optim.Adam(wide.parameters(), lr=0.1)
    for _ in range(100):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(
            wide(text, torch.tensor([2] * 4), aspects, torch.tensor([1] * 4)), targets
        )
        loss.backward()
        optimizer.step()
    assert torch.equal(wide(text, torch.tensor([2] * 4), aspects, torch.tensor([1] * 4)).argmax(-1), targets)


def test_word_dropout_acts_only_in_training():
    wide = WordEvidence(vocab_size=50, num_classes=3, word_dropout=0.5)
    with torch.no_grad():
        wide.words.normal_()
        wide.word_idf.fill_(1.0)
    text, lengths = torch.randint(2, 50, (4, 30)), torch.tensor([30] * 4)
    aspects, aspect_lengths = torch.tensor([[3]] * 4), torch.tensor([1] * 4)
    wide.eval()
    assert torch.equal(wide(text, lengths, aspects, aspect_lengths), wide(text, lengths, aspects, aspect_lengths))
    wide.train()
    torch.manual_seed(0)
    assert not torch.equal(wide(text, lengths, aspects, aspect_lengths), wide(text, lengths, aspects, aspect_lengths))


def test_out_of_fold_logits_come_from_models_that_never_saw_the_review():
    frame = review_frame(50)
    y = frame["score"].to_numpy() - 1
    oof = out_of_fold_logits(frame, y, 10, c=1.0, folds=5, seed=0)
    assert oof.shape == (len(frame), 10) and np.isfinite(oof).all()
    # refit without the first pair's review (and its fold mates): the same logits for that review's pairs
    from sklearn.model_selection import GroupKFold

    for fitted, held_out in GroupKFold(n_splits=5).split(np.zeros(len(frame)), y, frame["review_id"]):
        assert not set(frame["review_id"].iloc[fitted]) & set(frame["review_id"].iloc[held_out])
        if 0 in held_out:
            alone = fit_one(frame.iloc[fitted], y[fitted], 10, 1.0, seed=0).logits(frame.iloc[held_out])
            np.testing.assert_allclose(oof[held_out], alone, rtol=1e-5, atol=1e-5)
    in_sample = fit_one(frame, y, 10, 1.0, seed=0).logits(frame)
    assert (in_sample.argmax(1) == y).mean() > (oof.argmax(1) == y).mean()  # in-sample logits flatter the model


def test_mimn_uses_given_wide_logits_instead_of_its_own_path():
    model = trained_wide_model(seed=1)
    inputs = make_batch()
    given = torch.randn(6, 10)
    with torch.no_grad():
        own = model(**inputs)
        stacked = model(**inputs, wide_logits=given)
        deep_only = own - model.word_evidence(
            inputs["text_ids"], inputs["text_lengths"], inputs["aspect_ids"], inputs["aspect_lengths"]
        )
    torch.testing.assert_close(stacked, deep_only + given, atol=1e-5, rtol=0)


def settings_with(**train) -> Settings:
    params = {s: dict(v) for s, v in TINY_PARAMS.items()}
    params["model"].update(word_evidence=True)
    params["train"].update(weight_decay=0.01, wide_weight_decay=0.5, **train)
    return Settings.from_params(params)


def test_the_wide_path_gets_its_own_learning_rate_and_weight_decay():
    settings = settings_with(wide_folds=0, wide_lr_scale=0.1)
    model = MIMN(MIMNConfig(**WIDE))
    optimizer = make_optimizer(model, settings)
    group = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    assert group[id(model.word_evidence.pairs)]["weight_decay"] == 0.5
    assert group[id(model.word_evidence.pairs)]["lr"] == pytest.approx(0.1 * settings.train.lr)
    assert group[id(model.classifier.weight)]["weight_decay"] == 0.01
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == sum(
        p.numel() for p in model.parameters()
    )


@pytest.mark.parametrize("train", [dict(wide_folds=5), dict(wide_folds=0, wide_lr_scale=0.0)])
def test_stacking_or_a_zero_scale_keeps_the_wide_path_as_fitted(train):
    model = MIMN(MIMNConfig(**WIDE))
    optimizer = make_optimizer(model, settings_with(**train))
    optimised = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not any(id(p) in optimised or p.requires_grad for p in model.word_evidence.parameters())
    assert id(model.classifier.weight) in optimised


def test_a_checkpoint_from_before_the_flag_rebuilds_as_plain_mimn():
    torch.manual_seed(0)
    model = MIMN(MIMNConfig(**PLAIN)).eval()
    config = {
        k: v
        for k, v in dataclasses.asdict(model.config).items()
        if k not in ("word_evidence", "wide_dropout", "wide_pairs", "wide_aspects")
    }
    restored = rebuild_model({"family": "mimn", "config": config, "model": model.state_dict()})
    assert restored.word_evidence is None


def test_checkpoint_round_trip_keeps_the_wide_paths_tables():
    model = trained_wide_model(seed=3)
    buffer = io.BytesIO()
    torch.save({"family": "mimn", "model": model.state_dict(), "config": dataclasses.asdict(model.config)}, buffer)
    buffer.seek(0)
    restored = rebuild_model(torch.load(buffer, weights_only=True)).eval()
    assert torch.equal(restored.word_evidence.pair_keys, model.word_evidence.pair_keys)
    inputs = make_batch()
    with torch.no_grad():
        assert torch.equal(restored(**inputs), model(**inputs))


def test_bad_wide_settings_are_refused():
    with pytest.raises(ValueError, match="wide_dropout"):
        MIMNConfig(**WIDE | {"wide_dropout": 1.0})
    with pytest.raises(ValueError, match="wide_pairs"):
        MIMNConfig(**WIDE | {"wide_pairs": -1})
    with pytest.raises(UserError, match="train.wide_folds"):
        settings_with(wide_folds=1)
    with pytest.raises(UserError, match="model.wide_init"):
        Settings.from_params({"model": {"wide_init": "lineal"}})
    with pytest.raises(UserError, match="train.wide_lr_scale"):
        settings_with(wide_lr_scale=-0.1)
