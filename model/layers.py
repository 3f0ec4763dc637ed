"""Building blocks: length masks, masked attention, and a packed Bi-LSTM encoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

ATTENTION_SCORES: tuple[str, ...] = ("mlp", "linear")


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) bool: True where position < length."""
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim ignoring masked positions; a fully masked row gives all zeros (no NaN)."""
    scores = scores.float().masked_fill(~mask, float("-inf"))
    scores = scores.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return torch.softmax(scores, dim=-1) * mask.to(scores.dtype)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of (B, T, D) values where mask is True; zeros when nothing is unmasked."""
    weights = mask.to(values.dtype).unsqueeze(-1)
    return (values * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class Dropout(nn.Dropout):
    """nn.Dropout whose mask comes from uniform floats (`torch.rand`) on CPU: each element is kept with
    probability 1 - p and scaled by 1 / (1 - p), as nn.Dropout does, but the mask is drawn about three times
    faster (on CPU, nn.Dropout's Bernoulli draws were 8 % of a MIMN training step on real review lengths). On a
    GPU, in evaluation and at p = 0 or 1 it is nn.Dropout itself."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p in (0.0, 1.0) or inputs.is_cuda or self.inplace:
            return super().forward(inputs)
        # drawn in float32 whatever the input's dtype: a bf16 draw would round p to a multiple of 1/256
        keep = torch.rand(inputs.shape, device=inputs.device).ge_(self.p).to(inputs.dtype)
        return inputs * keep.mul_(1.0 / (1.0 - self.p))


class MemoryAttention(nn.Module):
    """The paper's attention layer (Eqs. 16-18): h_i = score([m_i, q]), a = softmax(h), v = sum a_i m_i.

    score `linear` is the equation read literally, h_i = tanh(w [m_i, q] + b) with w a vector: the query's term
    w_q q is the same at every position and tanh is monotonic, so the ranking of the positions can never depend
    on the query (the aspect); only the sharpness can. score `mlp` (the default) reads w as an MLP,
    h_i = u tanh(W [m_i, q] + b): the query shifts each hidden unit differently, so the aspect decides which
    words are read (the "MLP score" of the attention literature); on the sample the linear reading plateaus at
    about 62 % training accuracy.
    """

    def __init__(self, memory_dim: int, query_dim: int, score: str = "mlp") -> None:
        super().__init__()
        if score not in ATTENTION_SCORES:
            raise ValueError(f"attention score must be one of {', '.join(ATTENTION_SCORES)}, got {score!r}")
        self.score_kind = score
        self.memory_dim = memory_dim
        if score == "linear":
            self.score = nn.Linear(memory_dim + query_dim, 1)
        else:
            self.hidden = nn.Linear(memory_dim + query_dim, memory_dim)
            self.score = nn.Linear(memory_dim, 1, bias=False)

    @property
    def joint(self) -> nn.Linear:
        """The layer applied to [m_i, q]: its first memory_dim input columns read m_i, the rest q."""
        return self.score if self.score_kind == "linear" else self.hidden

    @property
    def memory_weight(self) -> torch.Tensor:
        """W_m: the joint layer's columns that read m_i (the rest, W_q, read q)."""
        return self.joint.weight[:, : self.memory_dim]

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """The memory's share of the joint layer, W_m m_i for every position (B, T, units): the same for every
        query, so a caller attending to one memory several times computes it once (`memory_keys`)."""
        return F.linear(memory, self.memory_weight)

    def scores(self, memory: torch.Tensor, query: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """Unnormalised attention scores h_i, (B, T).

        W [m_i, q] + b is computed as W_m m_i + (W_q q + b): the query's term once per row instead of once per
        position, and no (B, T, memory + query) concatenation; the same function, with the same parameters."""
        if keys is None:
            keys = self.keys(memory)
        query_term = F.linear(query, self.joint.weight[:, self.memory_dim :], self.joint.bias)
        activations = (keys + query_term.unsqueeze(1)).tanh_()
        if self.score_kind == "linear":
            return activations.squeeze(-1)
        return self.score(activations).squeeze(-1)

    def attend(
        self, memory: torch.Tensor, query: torch.Tensor, mask: torch.Tensor, keys: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(read vector v (B, D), attention weights a (B, T)); masked positions weigh 0. `keys`: this layer's
        `keys(memory)` when already computed."""
        weights = masked_softmax(self.scores(memory, query, keys), mask).to(memory.dtype)
        return torch.bmm(weights.unsqueeze(1), memory).squeeze(1), weights

    def forward(self, memory: torch.Tensor, query: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.attend(memory, query, mask)[0]


def memory_keys(attentions: list[MemoryAttention], memory: torch.Tensor) -> list[torch.Tensor]:
    """Every attention's `keys(memory)` from one matrix product: on long texts these products are most of an
    attention's work, and one wide product runs faster than several narrow ones."""
    weights = [attention.memory_weight for attention in attentions]
    keys = F.linear(memory, torch.cat(weights))
    return list(keys.split([w.size(0) for w in weights], dim=-1))


def reverse_within_lengths(inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence's first `length` steps, leaving its padding at the end (an involution)."""
    steps = torch.arange(inputs.size(1), device=inputs.device).unsqueeze(0)
    limits = lengths.to(inputs.device).unsqueeze(1)
    index = torch.where(steps < limits, limits - 1 - steps, steps)
    return torch.gather(inputs, 1, index.view(*index.shape, *([1] * (inputs.dim() - 2))).expand_as(inputs))


class BiLSTMEncoder(nn.Module):
    """Bi-LSTM whose states never see padding; padded outputs are zeros.

    The backward direction runs a second LSTM on each sequence reversed within its own length, so
    padding only ever trails the real steps of either direction. `packed=True` also packs the
    sequences (pack_padded_sequence); on CPU that is several times slower to train (the per-step
    backward of packed data), and since trailing padding cannot reach earlier states the unpacked
    run gives the same outputs (tested), so by default packing is used only on GPU.
    """

    def __init__(self, input_dim: int, hidden_dim: int, packed: bool | None = None) -> None:
        super().__init__()
        self.forward_lstm = nn.LSTM(input_dim, hidden_dim, batch_first=True)
        self.backward_lstm = nn.LSTM(input_dim, hidden_dim, batch_first=True)
        self.output_dim = 2 * hidden_dim
        self.packed = packed  # None: packed on GPU, unpacked on CPU

    def _run(self, lstm: nn.LSTM, inputs: torch.Tensor, lengths: torch.Tensor, packed: bool) -> torch.Tensor:
        if not packed:
            return lstm(inputs)[0]
        # empty sequences are run with length 1 (their output is masked below)
        sequence = pack_padded_sequence(inputs, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(lstm(sequence)[0], batch_first=True, total_length=inputs.size(1))[0]

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = inputs.is_cuda if self.packed is None else self.packed
        forward_states = self._run(self.forward_lstm, inputs, lengths, packed)
        backward_states = reverse_within_lengths(
            self._run(self.backward_lstm, reverse_within_lengths(inputs, lengths), lengths, packed), lengths
        )
        outputs = torch.cat([forward_states, backward_states], dim=-1)
        return outputs * length_mask(lengths, inputs.size(1)).unsqueeze(-1).to(outputs.dtype)


class LSTMEncoder(nn.Module):
    """A one-direction LSTM whose padded outputs are zeros (padding trails the real steps, so it never reaches
    them); packed on GPU like BiLSTMEncoder. The single-LSTM baselines (LSTM, ATAE-LSTM, IAN) use it."""

    def __init__(self, input_dim: int, hidden_dim: int, packed: bool | None = None) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_dim, hidden_dim, batch_first=True)
        self.output_dim = hidden_dim
        self.packed = packed

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = inputs.is_cuda if self.packed is None else self.packed
        if packed:
            sequence = pack_padded_sequence(inputs, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
            outputs = pad_packed_sequence(self.lstm(sequence)[0], batch_first=True, total_length=inputs.size(1))[0]
        else:
            outputs = self.lstm(inputs)[0]
        return outputs * length_mask(lengths, inputs.size(1)).unsqueeze(-1).to(outputs.dtype)


def last_state(states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, D): each sequence's state at its last real step (zeros for an empty sequence)."""
    index = (lengths.clamp(min=1) - 1).to(states.device).view(-1, 1, 1).expand(-1, 1, states.size(-1))
    return states.gather(1, index).squeeze(1) * (lengths > 0).to(states.device, states.dtype).unsqueeze(-1)


def aspect_location_weights(
    text_ids: torch.Tensor,
    text_lengths: torch.Tensor,
    aspect_ids: torch.Tensor,
    aspect_lengths: torch.Tensor,
    ignore_ids: tuple[int, ...] = (0, 1),
) -> torch.Tensor:
    """(B, T) location weights w_i = 1 - d_i / n (MemNet's and RAM's), zeros on padding.

    d_i is the distance from word i to the nearest occurrence in the text of one of the aspect's words and n the
    text's length. Multi-ZOL's aspects are categories that the text need not mention: where no aspect word
    occurs there is no position to weight from, and every word gets weight 1. `ignore_ids` (<pad>, <unk>)
    never count as an occurrence.
    """
    steps = text_ids.size(1)
    text_mask = length_mask(text_lengths, steps)
    aspect_mask = length_mask(aspect_lengths, aspect_ids.size(1))
    for ignored in ignore_ids:
        aspect_mask = aspect_mask & (aspect_ids != ignored)
    hits = ((text_ids.unsqueeze(2) == aspect_ids.unsqueeze(1)) & aspect_mask.unsqueeze(1)).any(dim=2) & text_mask
    positions = torch.arange(steps, device=text_ids.device).expand_as(text_ids)
    far = 2 * steps + 1
    previous = torch.where(hits, positions, -far).cummax(dim=1).values
    following = torch.where(hits, positions, 2 * far).flip(1).cummin(dim=1).values.flip(1)
    distance = torch.minimum(positions - previous, following - positions).float()
    weights = 1.0 - distance / text_lengths.clamp(min=1).to(distance.device).unsqueeze(1).float()
    weights = torch.where(hits.any(dim=1, keepdim=True), weights, torch.ones_like(weights))
    return weights * text_mask.float()
