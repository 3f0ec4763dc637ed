"""The training-speed rewrites compute the same functions: the attention's memory term computed once per memory,
the dropout mask from uniform floats, and the benchmark's reference form of the model (the reference code's way)."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_model_mimn import SMALL, make_batch, one_thread  # noqa: F401  (one_thread: autouse, tiny tensors)

from model.config import MIMNConfig
from model.layers import Dropout, MemoryAttention, memory_keys
from model.mimn import MIMN

_spec = importlib.util.spec_from_file_location(
    "bench_train_lengths", Path(__file__).resolve().parents[1] / "bench" / "bench_train_lengths.py"
)
bench_train_lengths = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_train_lengths)  # bench/ is scripts, not an installed package


@settings(max_examples=30, deadline=None)
@given(
    score=st.sampled_from(["mlp", "linear"]),
    batch=st.integers(1, 4),
    steps=st.integers(1, 9),
    memory_dim=st.integers(1, 6),
    query_dim=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_split_scores_equal_the_joint_layer_on_the_concatenation(score, batch, steps, memory_dim, query_dim, seed):
    torch.manual_seed(seed)
    attention = MemoryAttention(memory_dim, query_dim, score)
    memory, query = torch.randn(batch, steps, memory_dim), torch.randn(batch, query_dim)
    literal = bench_train_lengths.concatenated_scores(attention, memory, query)
    torch.testing.assert_close(attention.scores(memory, query), literal, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attention.scores(memory, query, attention.keys(memory)), literal, atol=1e-5, rtol=1e-5)


def test_one_product_gives_every_attentions_own_keys_and_gradients():
    torch.manual_seed(0)
    attentions = [MemoryAttention(6, 6, "mlp"), MemoryAttention(6, 6, "linear"), MemoryAttention(6, 4, "mlp")]
    memory = torch.randn(3, 7, 6, requires_grad=True)
    together = memory_keys(attentions, memory)
    assert [k.shape for k in together] == [(3, 7, 6), (3, 7, 1), (3, 7, 6)]
    for attention, keys in zip(attentions, together, strict=True):
        torch.testing.assert_close(keys, attention.keys(memory))
    (grad_together,) = torch.autograd.grad(sum(k.square().sum() for k in together), memory)
    (grad_each,) = torch.autograd.grad(sum(a.keys(memory).square().sum() for a in attentions), memory)
    torch.testing.assert_close(grad_together, grad_each)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keeps_one_minus_p_of_the_elements_scaled_and_routes_the_gradient_through_them(p):
    torch.manual_seed(0)
    layer = Dropout(p).train()
    x = torch.rand(200_000) + 0.5  # never 0: a dropped element is exactly the zeros
    x.requires_grad_(True)
    out = layer(x)
    kept = out != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005  # binomial sd at 200 k: <= 0.0012
    torch.testing.assert_close(out[kept], x.detach()[kept] / (1 - p))
    out.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / (1 - p))
    assert layer(x).ne(0).ne(kept).any()  # a fresh mask each call


def test_dropout_keeps_a_bf16_inputs_dtype_and_its_keep_probability():
    torch.manual_seed(0)
    out = Dropout(0.3).train()(torch.ones(200_000, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16
    assert abs(out.ne(0).float().mean().item() - 0.7) < 0.005


def test_dropout_is_the_identity_in_evaluation_and_at_p_zero_and_zero_at_p_one():
    x = torch.randn(50)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros(50))


@pytest.mark.parametrize("variant", ["mimn", "self", "text2img", "img2text"])
def test_the_benchmarks_reference_form_computes_the_same_function(variant):
    """bench_train_lengths times the model 'as the reference code computes it' against ours: the comparison is
    only fair if both are one function of the same parameters."""
    torch.manual_seed(0)
    ours = MIMN(MIMNConfig(**SMALL, hops=3, variant=variant)).eval()
    reference = copy.deepcopy(ours)
    bench_train_lengths.reference_form(reference)
    assert all(m.packed for m in reference.modules() if hasattr(m, "packed"))
    batch = make_batch()
    torch.testing.assert_close(reference(**batch), ours(**batch), atol=1e-5, rtol=1e-5)
    # and the same gradients (training mode without dropout: the two forms draw their masks differently)
    for network in (ours, reference):
        network.dropout.p = 0.0
        network.train().zero_grad()
        network(**batch).logsumexp(-1).sum().backward()
    for (name, mine), theirs in zip(ours.named_parameters(), reference.parameters(), strict=True):
        if mine.grad is not None or theirs.grad is not None:
            torch.testing.assert_close(mine.grad, theirs.grad, atol=1e-5, rtol=1e-4, msg=name)
    # the patch is the copy's own: a fresh model and the original still take the shared path
    assert "scores" not in vars(ours.text_aspect_attention) and "_keys" not in vars(MIMN(ours.config))


def test_the_benchmarks_speed_up_is_the_median_of_each_rounds_own_ratio():
    def run(method, pairs, round_, rate):
        return {"method": method, "pairs": pairs, "round": round_, "pairs_per_second": rate}

    runs = [
        run("reference", 100, 0, 20.0),
        run("ours", 100, 0, 100.0),  # x5
        run("reference", 100, 1, 25.0),
        run("ours", 100, 1, 100.0),  # x4: a round where the machine ran the reference faster
        run("reference", 100, 2, 20.0),
        run("ours", 100, 2, 140.0),  # x7
        run("reference", 400, 0, 10.0),
        run("ours", 400, 0, 61.0),
    ]
    medians, per_round = bench_train_lengths.speedups(runs)
    assert per_round == {"100": [5.0, 4.0, 7.0], "400": [6.1]}
    assert medians == {"100": 5.0, "400": 6.1}
