"""MemNet (Tang, Qin & Liu 2016): multi-hop attention over location-weighted word embeddings, the aspect vector
as the first query, and a linear layer added between hops: x_k = Att(M, x_{k-1}) + W x_{k-1}. As in the paper,
the attention and the linear layer are shared by all hops."""

from __future__ import annotations

import torch
from torch import nn

from model.baselines.base import EmbeddingModel
from model.config import BaselineConfig
from model.layers import MemoryAttention, aspect_location_weights, length_mask, masked_mean
from model.vocab import PAD_ID, UNK_ID


class MemNet(EmbeddingModel):
    def __init__(self, config: BaselineConfig) -> None:
        super().__init__(config)
        self.attention = MemoryAttention(config.embed_dim, config.embed_dim, config.attention_score)
        self.linear = nn.Linear(config.embed_dim, config.embed_dim)
        self.classifier = nn.Linear(config.embed_dim, config.num_classes)

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
        location = aspect_location_weights(text_ids, text_lengths, aspect_ids, aspect_lengths, (PAD_ID, UNK_ID))
        memory = self.embed(text_ids) * location.unsqueeze(-1).to(self.embedding.weight.dtype)  # m_i = v_i ⊙ e_i
        query = masked_mean(self.embed(aspect_ids), length_mask(aspect_lengths, aspect_ids.size(1)))  # x_0 = v_a
        for _ in range(self.config.hops):
            query = self.attention(memory, query, text_mask) + self.linear(query)
        return self.classifier(self.dropout(query))
