"""RAM (Chen et al. 2017): a Bi-LSTM memory weighted by location and extended with the relative offset,
m_i = [w_i m*_i; u_i]; episode t attends with query [e_{t-1}; v_a] (its own weights per episode) and a GRU
updates e_t = GRU(i_t, e_{t-1}) from e_0 = 0; softmax over e_H."""

from __future__ import annotations

import torch
from torch import nn

from model.baselines.base import EmbeddingModel
from model.config import BaselineConfig
from model.layers import BiLSTMEncoder, MemoryAttention, aspect_location_weights, length_mask, masked_mean
from model.vocab import PAD_ID, UNK_ID


class RAM(EmbeddingModel):
    def __init__(self, config: BaselineConfig) -> None:
        super().__init__(config)
        memory_dim, episode_dim = 2 * config.hidden_dim + 1, 2 * config.hidden_dim
        self.encoder = BiLSTMEncoder(config.embed_dim, config.hidden_dim)
        self.attentions = nn.ModuleList(
            MemoryAttention(memory_dim, episode_dim + config.embed_dim, config.attention_score)
            for _ in range(config.hops)
        )
        self.gru = nn.GRUCell(memory_dim, episode_dim)
        self.classifier = nn.Linear(episode_dim, config.num_classes)

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
        states = self.encoder(self.embed(text_ids), text_lengths)  # m*_i
        location = aspect_location_weights(text_ids, text_lengths, aspect_ids, aspect_lengths, (PAD_ID, UNK_ID))
        location = location.unsqueeze(-1).to(states.dtype)
        offset = (1.0 - location) * text_mask.unsqueeze(-1).to(states.dtype)  # u_i
        memory = torch.cat([states * location, offset], dim=-1)  # m_i
        aspect = masked_mean(self.embed(aspect_ids), length_mask(aspect_lengths, aspect_ids.size(1)))  # v_a
        episode = states.new_zeros(states.size(0), self.gru.hidden_size)  # e_0
        for attention in self.attentions:
            reading = attention(memory, torch.cat([episode, aspect], dim=-1), text_mask)  # i_t
            episode = self.gru(reading, episode)  # e_t
        return self.classifier(self.dropout(episode))
