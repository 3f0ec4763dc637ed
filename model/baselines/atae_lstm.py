"""ATAE-LSTM (Wang et al. 2016; the paper's "AEAT-LSTM"): the aspect vector appended to every word's embedding
before the LSTM and to every hidden state in the attention; h* = tanh(W_p r + W_x h_n)."""

from __future__ import annotations

import torch
from torch import nn

from model.baselines.base import EmbeddingModel
from model.config import BaselineConfig
from model.layers import LSTMEncoder, MemoryAttention, last_state, length_mask, masked_mean


class ATAELSTM(EmbeddingModel):
    def __init__(self, config: BaselineConfig) -> None:
        super().__init__(config)
        self.encoder = LSTMEncoder(2 * config.embed_dim, config.hidden_dim)
        self.attention = MemoryAttention(config.hidden_dim, config.embed_dim, config.attention_score)
        self.project_reading = nn.Linear(config.hidden_dim, config.hidden_dim, bias=False)  # W_p
        self.project_last = nn.Linear(config.hidden_dim, config.hidden_dim, bias=False)  # W_x
        self.classifier = nn.Linear(config.hidden_dim, config.num_classes)  # W_s, b_s

    def forward(
        self,
        text_ids: torch.Tensor,
        text_lengths: torch.Tensor,
        aspect_ids: torch.Tensor,
        aspect_lengths: torch.Tensor,
        images: torch.Tensor,
        image_lengths: torch.Tensor,
    ) -> torch.Tensor:
        text_mask = length_mask(text_lengths, text_ids.size(1))
        aspect = masked_mean(self.embed(aspect_ids), length_mask(aspect_lengths, aspect_ids.size(1)))  # v_a
        words = self.embed(text_ids)
        inputs = torch.cat([words, aspect.unsqueeze(1).expand(-1, words.size(1), -1)], dim=-1)  # [w_i; v_a]
        states = self.encoder(inputs, text_lengths)  # H
        reading = self.attention(states, aspect, text_mask)  # r = H a
        final = torch.tanh(self.project_reading(reading) + self.project_last(last_state(states, text_lengths)))
        return self.classifier(self.dropout(final))
