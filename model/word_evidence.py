"""The "wide" path added to MIMN's logits (wide & deep): the linear baseline's scorer inside the model.

With ~4 k labelled pairs a linear model over TF-IDF word features and aspect-conjoined features
(`camera|清晰`) beats the memory network, because each word's evidence reaches the classifier directly,
whatever the LSTMs and attention make of it. This module computes exactly the linear baseline's features
(model/linear.py: each word, each (aspect, word) pair and a per-aspect bias feature; sublinear term frequency,
sklearn's smoothed IDF from the training split, L2-normalised) from MIMN's own inputs, and scores them with
coefficient tables that `load_linear` fills from the fitted baseline (`model.wide_init: linear`) or that start
at zero. Features never seen in training add nothing. An extension of the paper's MIMN, switched on by
`model.word_evidence`; the only difference from the baseline's features is that it reads the first
`model.max_text_len` words, as the rest of MIMN does.

The aspect is known to the model only by its token ids: `aspect_keys` turns them into one int64 key, and the
(aspect, word) table is indexed by the sorted keys `aspect_key * vocab_size + word_id` (exact, no hashing).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from model.layers import length_mask
from model.linear import ABSENT_CLASS_LOGIT
from model.vocab import PAD_ID

_MOD = 2_147_483_647  # aspect keys are reduced modulo this prime (key * vocab_size stays inside int64)
ASPECT_FEATURE = "<aspect>"  # the baseline's per-aspect bias feature is named f"{aspect}|<aspect>"


def aspect_keys(aspect_ids: torch.Tensor, aspect_lengths: torch.Tensor) -> torch.Tensor:
    """(B,) int64: one key per aspect, from its token ids (padding ignored)."""
    mask = length_mask(aspect_lengths, aspect_ids.size(1))
    key = torch.zeros(aspect_ids.size(0), dtype=torch.long, device=aspect_ids.device)
    for position in range(aspect_ids.size(1)):
        key = torch.where(mask[:, position], (key * 31 + aspect_ids[:, position] + 1) % _MOD, key)
    return key


def _lookup(sorted_keys: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row of each key in sorted_keys, found) for any shape of keys; rows of missing keys are 0."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(keys), torch.zeros_like(keys, dtype=torch.bool)
    rows = torch.searchsorted(sorted_keys, keys.contiguous()).clamp(max=sorted_keys.numel() - 1)
    found = sorted_keys[rows] == keys
    return torch.where(found, rows, torch.zeros_like(rows)), found


def _gather(table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """table[rows], zeros when the table is empty (no feature of that kind was seen in training)."""
    if table.size(0) == 0:
        return torch.zeros(*rows.shape, *table.shape[1:], dtype=table.dtype, device=table.device)
    return table[rows]


class WordEvidence(nn.Module):
    def __init__(
        self, vocab_size: int, num_classes: int, pairs: int = 0, aspects: int = 0, word_dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.word_dropout = word_dropout
        self.words = nn.Parameter(torch.zeros(vocab_size, num_classes))
        self.pairs = nn.Parameter(torch.zeros(pairs, num_classes))
        self.aspects = nn.Parameter(torch.zeros(aspects, num_classes))
        self.bias = nn.Parameter(torch.zeros(num_classes))
        # the feature space (training split): IDF per word id, sorted (aspect, word) and aspect keys with their IDF
        self.register_buffer("word_idf", torch.zeros(vocab_size))
        self.register_buffer("pair_keys", torch.zeros(pairs, dtype=torch.long))
        self.register_buffer("pair_idf", torch.zeros(pairs))
        self.register_buffer("aspect_keys", torch.zeros(aspects, dtype=torch.long))
        self.register_buffer("aspect_idf", torch.zeros(aspects))

    @torch.no_grad()
    def load_linear(self, tables: dict[str, torch.Tensor], with_coefficients: bool = True) -> None:
        """Set the feature space (and, with_coefficients, the baseline's coefficients) from `linear_tables`."""
        for name in ("word_idf", "pair_keys", "pair_idf", "aspect_keys", "aspect_idf"):
            target = getattr(self, name)
            if tuple(tables[name].shape) != tuple(target.shape):
                raise ValueError(f"wide path {name}: {tuple(tables[name].shape)} != {tuple(target.shape)}")
            target.copy_(tables[name])
        if with_coefficients:
            for name in ("words", "pairs", "aspects", "bias"):
                getattr(self, name).copy_(tables[name])

    def forward(
        self, text_ids: torch.Tensor, text_lengths: torch.Tensor, aspect_ids: torch.Tensor, aspect_lengths: torch.Tensor
    ) -> torch.Tensor:
        """(B, num_classes) logits: the TF-IDF features of (text, aspect) times the coefficient tables."""
        mask = length_mask(text_lengths, text_ids.size(1)) & (text_ids != PAD_ID)
        if self.training and self.word_dropout > 0:
            mask = mask & (torch.rand(mask.shape, device=mask.device) >= self.word_dropout)
        # n: how often each position's word occurs in its text; the word's feature is (1 + ln n) * idf, and each
        # of its n positions carries 1/n of it
        same = (text_ids.unsqueeze(2) == text_ids.unsqueeze(1)) & mask.unsqueeze(1)
        n = same.sum(2).clamp(min=1).to(self.word_idf.dtype)
        share = mask.to(n.dtype) / n
        tf = 1.0 + torch.log(n)
        keys = aspect_keys(aspect_ids, aspect_lengths)
        pair_rows, pair_found = _lookup(self.pair_keys, keys.unsqueeze(1) * self.vocab_size + text_ids)
        aspect_row, aspect_found = _lookup(self.aspect_keys, keys)
        word_value = tf * self.word_idf[text_ids]
        pair_value = tf * _gather(self.pair_idf, pair_rows) * pair_found
        aspect_value = _gather(self.aspect_idf, aspect_row) * aspect_found
        norm = torch.sqrt((share * (word_value**2 + pair_value**2)).sum(1) + aspect_value**2).clamp(min=1e-12)
        word_weight = (share * word_value / norm.unsqueeze(1)).unsqueeze(2)
        pair_weight = (share * pair_value / norm.unsqueeze(1)).unsqueeze(2)
        logits = (word_weight * self.words[text_ids]).sum(1) + (pair_weight * _gather(self.pairs, pair_rows)).sum(1)
        return logits + (aspect_value / norm).unsqueeze(1) * _gather(self.aspects, aspect_row) + self.bias


def linear_tables(linear, vocab_tokens: list[str], aspects: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """The wide path's feature space and coefficients from a fitted `model.linear.LinearModel`.

    vocab_tokens: MIMN's vocabulary (id -> word); aspects: each aspect name -> its token ids (as MIMN encodes it).
    A feature of the baseline that MIMN cannot see (a word outside the vocabulary) is left out."""
    index = {f: i for i, f in enumerate(linear.features)}
    vocab_size, num_classes = len(vocab_tokens), int(linear.num_classes)
    coef = np.zeros((len(linear.features), num_classes), np.float64)
    coef[:, linear.classes] = linear.coef.T
    bias = np.full(num_classes, ABSENT_CLASS_LOGIT, np.float64)
    bias[linear.classes] = linear.intercept
    word_columns = np.array([index.get(w, -1) for w in vocab_tokens])
    word_columns[PAD_ID] = -1
    known = word_columns >= 0
    word_idf = np.where(known, linear.idf[np.maximum(word_columns, 0)], 0.0)
    words = np.where(known[:, None], coef[np.maximum(word_columns, 0)], 0.0)
    pair_rows: dict[int, int] = {}
    aspect_rows: dict[int, int] = {}
    for name, ids in sorted(aspects.items()):
        key = int(aspect_keys(torch.tensor([ids or [PAD_ID]]), torch.tensor([len(ids)]))[0])
        column = index.get(f"{name}|{ASPECT_FEATURE}")
        if column is not None:
            aspect_rows[key] = column
        for word_id, word in enumerate(vocab_tokens):
            column = index.get(f"{name}|{word}")
            if column is not None and word_id != PAD_ID:
                pair_rows[key * vocab_size + word_id] = column
    pair_keys = sorted(pair_rows)
    aspect_key_list = sorted(aspect_rows)
    pair_columns = np.array([pair_rows[k] for k in pair_keys], dtype=np.int64)
    aspect_columns = np.array([aspect_rows[k] for k in aspect_key_list], dtype=np.int64)

    def tensor(values, dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values), dtype=dtype)

    return {
        "word_idf": tensor(word_idf),
        "words": tensor(words),
        "pair_keys": tensor(pair_keys, torch.long).reshape(-1),
        "pair_idf": tensor(linear.idf[pair_columns]),
        "pairs": tensor(coef[pair_columns]).reshape(-1, num_classes),
        "aspect_keys": tensor(aspect_key_list, torch.long).reshape(-1),
        "aspect_idf": tensor(linear.idf[aspect_columns]),
        "aspects": tensor(coef[aspect_columns]).reshape(-1, num_classes),
        "bias": tensor(bias),
    }
