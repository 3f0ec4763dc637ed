"""MIMN's wide path (model.word_evidence): shapes, padding invariance, per-aspect evidence, IDF weights from the
training split, its own weight decay, and a checkpoint round trip."""
from __future__ import annotations

import dataclasses
import io

import pytest
import torch

from model.config import MIMNConfig, Settings
from model.families import rebuild_model
from model.mimn import MIMN
from model.train import inverse_document_frequency, make_optimizer
from model.word_evidence import WordEvidence, aspect_keys, pair_buckets
from test_model_mimn import SMALL, make_batch, one_thread, pad_with_garbage  # noqa: F401  (fixture)
from test_model_train import TINY_PARAMS

WIDE = dict(SMALL, word_evidence=True, wide_buckets=997)
PLAIN = dict(SMALL, word_evidence=False)


def test_plain_mimn_has_no_wide_path_and_its_weights_keep_their_names():
    plain, wide = MIMN(MIMNConfig(**PLAIN)), MIMN(MIMNConfig(**WIDE))
    assert plain.word_evidence is None
    assert set(plain.state_dict()) < set(wide.state_dict())
    assert {k for k in wide.state_dict() if k not in plain.state_dict()} == {
        "word_evidence.words.weight", "word_evidence.aspect_words.weight", "word_evidence.word_weights"}


def test_a_fresh_wide_path_adds_nothing_so_logits_equal_plain_mimn():
    torch.manual_seed(0)
    plain = MIMN(MIMNConfig(**PLAIN)).eval()
    wide = MIMN(MIMNConfig(**WIDE)).eval()
    wide.load_state_dict(plain.state_dict(), strict=False)
    inputs = make_batch()
    with torch.no_grad():
        torch.testing.assert_close(wide(**inputs), plain(**inputs))


def trained_wide_model(seed: int = 0) -> MIMN:
    torch.manual_seed(seed)
    model = MIMN(MIMNConfig(**WIDE)).eval()
    with torch.no_grad():
        for p in model.word_evidence.parameters():
            p.normal_()
        model.word_evidence.words.weight[0] = 0   # <pad>
        model.word_evidence.set_word_weights(torch.rand(50) + 0.5)
    return model


def test_shapes_and_padding_never_change_the_logits():
    model = trained_wide_model()
    inputs = make_batch()
    with torch.no_grad():
        reference = model(**inputs)
        padded = model(**pad_with_garbage(inputs, extra=7))
    assert reference.shape == (6, 10) and torch.isfinite(reference).all()
    torch.testing.assert_close(padded, reference, atol=1e-5, rtol=0)


def test_the_same_words_give_different_evidence_for_different_aspects():
    wide = WordEvidence(vocab_size=50, num_classes=3, buckets=997)
    with torch.no_grad():
        wide.aspect_words.weight.normal_()
    text = torch.tensor([[5, 6, 7], [5, 6, 7]])
    lengths = torch.tensor([3, 3])
    aspects = torch.tensor([[10, 11], [12, 11]])   # two aspects sharing their second word
    logits = wide(text, lengths, aspects, torch.tensor([2, 2]))
    assert not torch.allclose(logits[0], logits[1])
    # aspect keys ignore padding, and differ with word order
    keys = aspect_keys(torch.tensor([[10, 11, 0], [10, 11, 33], [11, 10, 0]]), torch.tensor([2, 2, 2]))
    assert keys[0] == keys[1] and keys[0] != keys[2]
    rows = pair_buckets(keys[:1], torch.arange(2, 50).unsqueeze(0), 997)
    assert rows.min() >= 0 and rows.max() < 997 and len(set(rows[0].tolist())) > 40


def test_the_wide_path_alone_learns_which_words_carry_which_class():
    """Word 5 means class 2 for aspect A and class 0 for aspect B: only the aspect-conjoined table can tell."""
    torch.manual_seed(0)
    wide = WordEvidence(vocab_size=50, num_classes=3, buckets=997)
    text = torch.tensor([[5, 9], [5, 8], [5, 9], [5, 8]])
    aspects = torch.tensor([[20], [20], [30], [30]])
    targets = torch.tensor([2, 2, 0, 0])
    optimizer = torch.optim.Adam(wide.parameters(), lr=0.1)
    for _ in range(100):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(wide(text, torch.tensor([2] * 4), aspects, torch.tensor([1] * 4)), targets)
        loss.backward()
        optimizer.step()
    assert torch.equal(wide(text, torch.tensor([2] * 4), aspects, torch.tensor([1] * 4)).argmax(-1), targets)


def test_word_dropout_acts_only_in_training():
    wide = WordEvidence(vocab_size=50, num_classes=3, buckets=997, word_dropout=0.5)
    with torch.no_grad():
        wide.words.weight.normal_()
    text, lengths = torch.randint(2, 50, (4, 30)), torch.tensor([30] * 4)
    aspects, aspect_lengths = torch.tensor([[3]] * 4), torch.tensor([1] * 4)
    wide.eval()
    assert torch.equal(wide(text, lengths, aspects, aspect_lengths), wide(text, lengths, aspects, aspect_lengths))
    wide.train()
    torch.manual_seed(0)
    assert not torch.equal(wide(text, lengths, aspects, aspect_lengths), wide(text, lengths, aspects, aspect_lengths))


def test_idf_is_sklearns_smoothed_idf_and_zero_for_padding():
    texts = [torch.tensor([2, 3, 3]), torch.tensor([2, 4])]
    idf = inverse_document_frequency(texts, 6)
    assert idf[0] == 0
    torch.testing.assert_close(idf[2], torch.tensor(1.0))                          # in every text
    torch.testing.assert_close(idf[3], torch.log(torch.tensor(3 / 2)) + 1)        # in one of two
    torch.testing.assert_close(idf[5], torch.log(torch.tensor(3.0)) + 1)          # never seen


def test_the_wide_path_gets_its_own_weight_decay():
    params = {s: dict(v) for s, v in TINY_PARAMS.items()}
    params["model"].update(word_evidence=True, wide_buckets=997)
    params["train"].update(weight_decay=0.01, wide_weight_decay=0.5)
    settings = Settings.from_params(params)
    model = MIMN(MIMNConfig.from_params(settings.model.mimn_section(), vocab_size=50, num_classes=10))
    optimizer = make_optimizer(model, settings)
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decay[id(model.word_evidence.aspect_words.weight)] == 0.5
    assert decay[id(model.classifier.weight)] == 0.01
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == sum(
        p.numel() for p in model.parameters())


def test_a_checkpoint_from_before_the_flag_rebuilds_as_plain_mimn():
    torch.manual_seed(0)
    model = MIMN(MIMNConfig(**PLAIN)).eval()
    config = {k: v for k, v in dataclasses.asdict(model.config).items()
              if k not in ("word_evidence", "wide_buckets", "wide_dropout")}
    restored = rebuild_model({"family": "mimn", "config": config, "model": model.state_dict()})
    assert restored.word_evidence is None


def test_checkpoint_round_trip_keeps_the_wide_path_and_its_idf():
    model = trained_wide_model(seed=3)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "config": dataclasses.asdict(model.config)}, buffer)
    buffer.seek(0)
    ckpt = torch.load(buffer, weights_only=True)
    restored = MIMN(MIMNConfig(**ckpt["config"])).eval()
    restored.load_state_dict(ckpt["model"])
    assert torch.equal(restored.word_evidence.word_weights, model.word_evidence.word_weights)
    inputs = make_batch()
    with torch.no_grad():
        assert torch.equal(restored(**inputs), model(**inputs))


def test_bad_wide_settings_are_refused():
    with pytest.raises(ValueError, match="wide_dropout"):
        MIMNConfig(**WIDE | {"wide_dropout": 1.0})
    with pytest.raises(ValueError, match="wide_buckets"):
        MIMNConfig(**WIDE | {"wide_buckets": 0})
