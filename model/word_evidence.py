"""The "wide" path added to MIMN's logits (wide & deep): every word's evidence, on its own and per aspect.

With ~4 k labelled pairs a linear model over TF-IDF word features and aspect-conjoined features
(`camera|清晰`) beats the memory network, because each word's evidence reaches the classifier directly,
whatever the LSTMs and attention make of it. This module gives MIMN the same inputs: class logits summed over
the text's words, each weighted by its IDF (training split) and the row L2-normalised as TF-IDF would be,
from two tables: one per word, and one per (aspect, word) pair hashed into `buckets` rows (the aspect is
known only by its token ids, so the pair is hashed rather than enumerated), plus a per-aspect bias. Tables
start at zero: a word or pair never seen in training adds nothing. It is an extension of the paper's MIMN,
switched on by `model.word_evidence`.
"""
from __future__ import annotations

import torch
from torch import nn

from model.layers import length_mask
from model.vocab import PAD_ID

_ASPECT_MIX = 1_000_003
_TOKEN_MIX = 2_654_435_761
_MOD = 2_147_483_647          # aspect keys are reduced modulo this prime (keeps every product inside int64)
BIAS_TOKEN = -1               # the (aspect, bias) pair: a per-aspect bias row in the hashed table


def aspect_keys(aspect_ids: torch.Tensor, aspect_lengths: torch.Tensor) -> torch.Tensor:
    """(B,) int64: one key per aspect, from its token ids (padding ignored)."""
    mask = length_mask(aspect_lengths, aspect_ids.size(1))
    key = torch.zeros(aspect_ids.size(0), dtype=torch.long, device=aspect_ids.device)
    for position in range(aspect_ids.size(1)):
        key = torch.where(mask[:, position], (key * 31 + aspect_ids[:, position] + 1) % _MOD, key)
    return key


def pair_buckets(keys: torch.Tensor, token_ids: torch.Tensor, buckets: int) -> torch.Tensor:
    """(B, T) rows of the hashed (aspect, word) table."""
    return torch.bitwise_xor(keys.unsqueeze(1) * _ASPECT_MIX, (token_ids + 2) * _TOKEN_MIX) % buckets


class WordEvidence(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int, buckets: int, word_dropout: float = 0.0) -> None:
        super().__init__()
        self.buckets = buckets
        self.word_dropout = word_dropout
        self.words = nn.EmbeddingBag(vocab_size, num_classes, mode="sum", padding_idx=PAD_ID)
        self.aspect_words = nn.EmbeddingBag(buckets, num_classes, mode="sum")
        nn.init.zeros_(self.words.weight)
        nn.init.zeros_(self.aspect_words.weight)
        # IDF per word id (set from the training split by set_word_weights; saved in the state dict)
        self.register_buffer("word_weights", torch.ones(vocab_size))

    @torch.no_grad()
    def set_word_weights(self, weights: torch.Tensor) -> None:
        if tuple(weights.shape) != tuple(self.word_weights.shape):
            raise ValueError(f"word weights {tuple(weights.shape)} != {tuple(self.word_weights.shape)}")
        self.word_weights.copy_(weights)

    def forward(self, text_ids: torch.Tensor, text_lengths: torch.Tensor, aspect_ids: torch.Tensor,
                aspect_lengths: torch.Tensor) -> torch.Tensor:
        """(B, num_classes) logits."""
        mask = length_mask(text_lengths, text_ids.size(1)) & (text_ids != PAD_ID)
        if self.training and self.word_dropout > 0:
            mask = mask & (torch.rand(mask.shape, device=mask.device) >= self.word_dropout)
        weights = self.word_weights[text_ids] * mask.to(self.word_weights.dtype)
        weights = weights / weights.norm(dim=1, keepdim=True).clamp(min=1e-6)
        keys = aspect_keys(aspect_ids, aspect_lengths)
        rows = pair_buckets(keys, text_ids, self.buckets)
        bias_rows = pair_buckets(keys, torch.full_like(keys, BIAS_TOKEN).unsqueeze(1), self.buckets)
        logits = self.words(text_ids, per_sample_weights=weights)
        logits = logits + self.aspect_words(rows, per_sample_weights=weights)
        return logits + self.aspect_words(bias_rows)
