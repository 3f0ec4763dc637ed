"""The baselines of Table 2 and MIMN through the family registry: shapes, padding, overfitting, checkpoints,
which inputs each family reads, location weights; and the train/evaluate stages with a baseline."""

from __future__ import annotations

import io
import json

import pytest
import torch
from test_model_mimn import make_batch, one_thread, pad_with_garbage  # noqa: F401  (one_thread: autouse fixture)

from common.errors import UserError
from model.families import FAMILIES, build_model, checkpoint_fields, family_of, rebuild_model
from model.layers import LSTMEncoder, aspect_location_weights, last_state

SIZES = {
    "embed_dim": 16,
    "hidden_dim": 8,
    "image_dim": 12,
    "max_text_len": 40,
    "hops": 3,
    "dropout": 0.0,
    "variant": "mimn",
    "attention_score": "mlp",
    "family": "ignored by the configs",
}
TEXT_ONLY = ["lstm", "atae_lstm", "memnet", "ian", "ram"]
READS_ASPECT = [f for f in FAMILIES if f != "lstm"]


def make(family: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(family, {**SIZES, **overrides}, vocab_size=50, num_classes=10)


def test_the_registry_holds_the_papers_seven_methods():
    assert set(FAMILIES) == {"mimn", "lstm", "atae_lstm", "memnet", "ian", "ram", "co_memory"}
    with pytest.raises(UserError, match="model.family"):
        make("tree_lstm")
    with pytest.raises(UserError, match="hops"):
        make("memnet", hops=0)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("hops", [1, 3])
def test_logits_have_the_right_shape_and_are_finite(family, hops):
    model = make(family, hops=hops).eval()
    assert family_of(model) == family
    logits = model(**make_batch())
    assert logits.shape == (6, 10) and torch.isfinite(logits).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_more_padding_never_changes_the_logits(family):
    model = make(family).eval()
    inputs = make_batch()
    with torch.no_grad():
        reference = model(**inputs)
        padded = model(**pad_with_garbage(inputs, extra=7))
    torch.testing.assert_close(padded, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_no_image_at_all_gives_finite_logits_and_gradients(family):
    model = make(family)
    logits = model(**make_batch(image_counts=(0, 0, 0, 0, 0, 0)))
    logits.sum().backward()
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("family", FAMILIES)
def test_which_inputs_each_family_reads(family):
    """Text-only baselines ignore the images (as in the paper); LSTM alone ignores the aspect."""
    model = make(family).eval()
    inputs = make_batch()
    other_images = {**inputs, "images": torch.randn_like(inputs["images"])}
    other_aspect = {**inputs, "aspect_ids": (inputs["aspect_ids"] + 7) % 48 + 2}
    with torch.no_grad():
        reference = model(**inputs)
        images_matter = not torch.allclose(model(**other_images), reference, atol=1e-6)
        aspect_matters = not torch.allclose(model(**other_aspect), reference, atol=1e-6)
    assert images_matter == (family not in TEXT_ONLY)
    assert aspect_matters == (family in READS_ASPECT)


@pytest.mark.parametrize("family", FAMILIES)
def test_overfits_a_tiny_batch(family):
    model = make(family)
    inputs, targets = make_batch(), torch.tensor([0, 3, 5, 7, 9, 2])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(**inputs), targets).backward()
        optimizer.step()
    with torch.no_grad():
        assert torch.equal(model.eval()(**inputs).argmax(-1), targets)


@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoint_round_trip_with_weights_only(family):
    model = make(family, hops=2).eval()
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), **checkpoint_fields(model)}, buffer)
    buffer.seek(0)
    ckpt = torch.load(buffer, weights_only=True)
    assert ckpt["family"] == family and ckpt["config"]["hops"] == 2
    restored = rebuild_model(ckpt).eval()
    assert type(restored) is type(model)
    inputs = make_batch()
    with torch.no_grad():
        assert torch.equal(restored(**inputs), model(**inputs))


@pytest.mark.parametrize("family", FAMILIES)
def test_loaded_word_vectors_survive_model_init(family):
    vectors = torch.randn(50, 16)
    model = build_model(family, SIZES, vocab_size=50, num_classes=10, embedding_weights=vectors)
    assert torch.equal(model.embedding.weight.detach(), vectors)


def test_a_checkpoint_without_family_is_mimn():
    model = make("mimn")
    ckpt = {"model": model.state_dict(), "config": checkpoint_fields(model)["config"]}
    assert family_of(rebuild_model(ckpt)) == "mimn"


def test_location_weights_fall_with_distance_to_the_nearest_aspect_word():
    # text of 6 words (+2 padding): aspect word 9 at positions 1 and 4; second text never mentions its aspect
    text = torch.tensor([[5, 9, 6, 7, 9, 8, 0, 0], [5, 6, 7, 1, 0, 0, 0, 0]])
    aspect = torch.tensor([[9, 3], [1, 2]])  # the second aspect: <unk> (never a match) and a word not in the text
    weights = aspect_location_weights(text, torch.tensor([6, 4]), aspect, torch.tensor([2, 2]))
    torch.testing.assert_close(weights[0], torch.tensor([5 / 6, 1, 5 / 6, 5 / 6, 1, 5 / 6, 0, 0]))
    torch.testing.assert_close(weights[1], torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]))


def test_lstm_encoder_masks_padding_and_last_state_picks_the_last_real_step():
    torch.manual_seed(0)
    encoder = LSTMEncoder(3, 4)
    x, lengths = torch.randn(3, 5, 3), torch.tensor([5, 2, 0])
    out = encoder(x, lengths)
    torch.testing.assert_close(out[1, :2], encoder.lstm(x[1:2, :2])[0][0])
    assert torch.equal(out[1, 2:], torch.zeros(3, 4)) and torch.equal(out[2], torch.zeros(5, 4))
    encoder.packed = True
    torch.testing.assert_close(encoder(x, lengths), out, atol=1e-6, rtol=0)
    last = last_state(out, lengths)
    assert torch.equal(last[0], out[0, 4]) and torch.equal(last[1], out[1, 1]) and torch.equal(last[2], torch.zeros(4))


def test_train_and_evaluate_stages_run_a_baseline(tmp_path, monkeypatch):
    """The same stages, another family: the checkpoint names it and evaluate rebuilds it."""
    import yaml
    from test_model_train import TINY_PARAMS, _workdir

    from model import evaluate, train

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    params = {**TINY_PARAMS, "model": {**TINY_PARAMS["model"], "family": "ram"}}
    try:
        workdir = next(_workdir(tmp_path, monkeypatch))
        (workdir / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
        assert train.main(["--params", "params.yaml"]) == 0
        ckpt = torch.load(workdir / "models/mimn.pt", weights_only=True)
        assert ckpt["family"] == "ram" and ckpt["config"]["hops"] == 2 and "variant" not in ckpt["config"]
        assert evaluate.main(["--params", "params.yaml"]) == 0
        assert 0.0 <= json.loads((workdir / "metrics/test.json").read_text())["accuracy"] <= 1.0
        (workdir / "params.yaml").write_text(
            yaml.safe_dump({**params, "model": {**params["model"], "family": "bert"}}), encoding="utf-8"
        )
        assert train.main(["--params", "params.yaml"]) == 2
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def test_params_check_knows_every_registered_family() -> None:
    from common.errors import UserError
    from common.params import read_section
    from model.settings import ModelParams

    for family in [*FAMILIES, "linear"]:
        assert read_section(ModelParams, {"family": family}, "model").family == family
    with pytest.raises(UserError, match="'model.family' must be one of mimn, lstm, .*, linear"):
        read_section(ModelParams, {"family": "bert"}, "model")
