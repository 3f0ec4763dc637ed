"""MIMN: shapes of every variant and hop count, padding masks, overfitting, embeddings, vocabulary."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch
from test_model_synthetic import ASPECT_TOKENS

from model.config import VARIANTS, MIMNConfig
from model.data import batch_inputs
from model.layers import MemoryAttention, masked_softmax
from model.mimn import MIMN
from model.vocab import PAD_ID, UNK_ID, build_vocab


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is fastest, and immune to other processes holding the second core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SMALL = dict(vocab_size=50, num_classes=10, embed_dim=16, hidden_dim=8, image_dim=12, max_text_len=40)


def make_batch(seed: int = 0, batch: int = 6, image_counts=(0, 1, 2, 5, 3, 0)) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    text = [torch.randint(2, 50, (int(n),), generator=g) for n in torch.randint(1, 20, (batch,), generator=g)]
    aspect = [torch.randint(2, 50, (int(n),), generator=g) for n in torch.randint(1, 5, (batch,), generator=g)]
    images = [torch.randn(k, 12, generator=g) for k in image_counts[:batch]]
    return batch_inputs(text, aspect, images, image_dim=12)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("hops", [1, 2, 3, 4, 5])
def test_every_variant_and_hop_count_gives_finite_logits_of_the_right_shape(variant, hops):
    torch.manual_seed(0)
    model = MIMN(MIMNConfig(**SMALL, hops=hops, variant=variant)).eval()
    logits = model(**make_batch())
    assert logits.shape == (6, 10)
    assert torch.isfinite(logits).all()
    assert len(model.text_hops) == hops - 1


def test_variants_attend_with_the_papers_queries():
    def queries(variant):
        m = MIMN(MIMNConfig(**SMALL, hops=3, variant=variant))
        return [sorted(h.keys()) for h in m.text_hops][0], [sorted(h.keys()) for h in m.image_hops][0]

    assert queries("mimn") == (["img", "text"], ["img", "text"])
    assert queries("self") == (["text"], ["img"])
    assert queries("text2img") == (["text"], ["img", "text"])
    assert queries("img2text") == (["img", "text"], ["img"])


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="variant"):
        MIMNConfig(**SMALL, variant="co-memory")
    with pytest.raises(ValueError, match="hops"):
        MIMNConfig(**SMALL, hops=6)


def pad_with_garbage(inputs: dict[str, torch.Tensor], extra: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """The same batch, padded `extra` positions wider, with random ids / features in every padded slot."""
    g = torch.Generator().manual_seed(seed)
    out = dict(inputs)
    for key, length_key in (
        ("text_ids", "text_lengths"),
        ("aspect_ids", "aspect_lengths"),
        ("images", "image_lengths"),
    ):
        x = inputs[key]
        wide_shape = (x.shape[0], x.shape[1] + extra, *x.shape[2:])
        garbage = (
            torch.randint(2, 50, wide_shape, generator=g)
            if x.dtype == torch.long
            else torch.randn(wide_shape, generator=g) * 100
        )
        keep = torch.arange(wide_shape[1]).unsqueeze(0) < inputs[length_key].unsqueeze(1)
        keep = keep.view(*keep.shape, *([1] * (x.dim() - 2)))
        wide = torch.zeros(wide_shape, dtype=x.dtype)
        wide[:, : x.shape[1]] = x
        out[key] = torch.where(keep, wide, garbage)
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_padding_never_changes_the_logits(variant):
    torch.manual_seed(0)
    model = MIMN(MIMNConfig(**SMALL, variant=variant)).eval()
    inputs = make_batch()
    with torch.no_grad():
        reference = model(**inputs)
        padded = model(**pad_with_garbage(inputs, extra=7))
    assert padded.shape == reference.shape
    torch.testing.assert_close(padded, reference, atol=1e-6, rtol=0)


def test_a_pair_alone_or_in_a_batch_gets_the_same_logits():
    torch.manual_seed(0)
    model = MIMN(MIMNConfig(**SMALL)).eval()
    inputs = make_batch()
    with torch.no_grad():
        together = model(**inputs)
        single = {k: v[2:3] for k, v in inputs.items()}
        single["text_ids"] = single["text_ids"][:, : int(inputs["text_lengths"][2])]
        alone = model(**single)
    torch.testing.assert_close(alone[0], together[2], atol=1e-6, rtol=0)


def test_no_image_means_zero_visual_reading_and_finite_gradients():
    torch.manual_seed(0)
    model = MIMN(MIMNConfig(**SMALL, dropout=0.0))
    inputs = make_batch(image_counts=(0, 0, 0, 0, 0, 0))
    assert inputs["images"].shape[1] == 1 and int(inputs["image_lengths"].sum()) == 0
    memory = torch.randn(6, 1, 16)
    reading = model.image_aspect_attention(memory, torch.randn(6, 16), torch.zeros(6, 1, dtype=torch.bool))
    assert torch.equal(reading, torch.zeros(6, 16))
    logits = model(**inputs)
    logits.sum().backward()
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_masked_softmax_ignores_masked_scores_and_zeroes_empty_rows():
    scores = torch.tensor([[1.0, 2.0, 50.0], [3.0, 4.0, 5.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    weights = masked_softmax(scores, mask)
    torch.testing.assert_close(weights[0], torch.tensor([1 / (1 + torch.e), torch.e / (1 + torch.e), 0.0]))
    assert torch.equal(weights[1], torch.zeros(3))


def test_linear_attention_score_is_tanh_of_linear_on_concatenation():
    att = MemoryAttention(2, 1, score="linear")
    with torch.no_grad():
        att.score.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        att.score.bias.zero_()
    memory = torch.tensor([[[0.0, 5.0], [1.0, 7.0]]])
    out = att(memory, torch.tensor([[3.0]]), torch.tensor([[True, True]]))
    a = torch.softmax(torch.tanh(torch.tensor([0.0, 1.0])), 0)
    torch.testing.assert_close(out[0], a[0] * memory[0, 0] + a[1] * memory[0, 1])


def test_overfits_a_tiny_batch_to_full_accuracy():
    torch.manual_seed(0)
    model = MIMN(MIMNConfig(**SMALL, dropout=0.0))
    inputs, targets = make_batch(batch=6), torch.tensor([0, 3, 5, 7, 9, 2])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(**inputs), targets)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**inputs).argmax(-1), targets)


def test_loaded_word_vectors_survive_model_init():
    vectors = torch.randn(50, 16)
    vectors[PAD_ID] = 0
    model = MIMN(MIMNConfig(**SMALL), embedding_weights=vectors)
    assert torch.equal(model.embedding.weight.detach(), vectors)
    assert model.embedding.weight.requires_grad  # fine-tuned


def test_checkpoint_round_trip_with_weights_only():
    torch.manual_seed(0)
    config = MIMNConfig(**SMALL, variant="img2text", hops=2)
    model = MIMN(config).eval()
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "config": dataclasses.asdict(config)}, buffer)
    buffer.seek(0)
    ckpt = torch.load(buffer, weights_only=True)
    restored = MIMN(MIMNConfig(**ckpt["config"])).eval()
    restored.load_state_dict(ckpt["model"])
    inputs = make_batch()
    with torch.no_grad():
        assert torch.equal(restored(**inputs), model(**inputs))


def test_every_aspect_gets_distinct_known_ids():
    train_texts = [["手机", "不错"], ["性能", "很好"]]
    vocab = build_vocab(train_texts, ASPECT_TOKENS.values(), min_count=1)
    assert vocab.tokens[:2] == ("<pad>", "<unk>")
    encoded = {a: tuple(vocab.encode(t, 4).tolist()) for a, t in ASPECT_TOKENS.items()}
    assert len(set(encoded.values())) == 6
    assert all(UNK_ID not in ids and PAD_ID not in ids for ids in encoded.values())
    assert vocab.id("没见过") == UNK_ID


def test_vocab_keeps_frequent_training_words_in_a_stable_order():
    vocab = build_vocab([["b", "a", "b", "c"], ["a", "b"]], [["x"]], min_count=2)
    assert vocab.tokens == ("<pad>", "<unk>", "b", "a", "x")


def test_packed_and_unpacked_bilstm_agree_and_match_a_per_sequence_run():
    from model.layers import BiLSTMEncoder, reverse_within_lengths

    torch.manual_seed(0)
    encoder = BiLSTMEncoder(5, 4)
    x, lengths = torch.randn(3, 6, 5), torch.tensor([6, 2, 0])
    assert torch.equal(reverse_within_lengths(x, lengths)[1, :2], x[1, :2].flip(0))
    assert torch.equal(reverse_within_lengths(x, lengths)[1, 2:], x[1, 2:])
    encoder.packed = True
    packed = encoder(x, lengths)
    encoder.packed = False
    unpacked = encoder(x, lengths)
    torch.testing.assert_close(packed, unpacked, atol=1e-6, rtol=0)
    # the second sequence alone, no padding at all: forward and backward halves match
    alone = torch.cat([encoder.forward_lstm(x[1:2, :2])[0], encoder.backward_lstm(x[1:2, :2].flip(1))[0].flip(1)], -1)
    torch.testing.assert_close(unpacked[1:2, :2], alone, atol=1e-6, rtol=0)
    assert torch.equal(unpacked[1, 2:], torch.zeros(4, 8)) and torch.equal(unpacked[2], torch.zeros(6, 8))


def test_mlp_attention_ranking_depends_on_the_query_linear_cannot():
    """The reason `mlp` is the default: with the literal equation the query cannot change which position wins."""
    torch.manual_seed(0)
    memory = torch.randn(1, 6, 4)
    queries = torch.randn(64, 4)

    def winners(att: MemoryAttention) -> set[int]:
        with torch.no_grad():
            return set(att.scores(memory.expand(64, -1, -1), queries).argmax(-1).tolist())

    assert len(winners(MemoryAttention(4, 4, score="linear"))) == 1
    assert len(winners(MemoryAttention(4, 4, score="mlp"))) > 1
