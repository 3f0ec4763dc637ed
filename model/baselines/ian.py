"""IAN (Ma et al. 2017): an LSTM over the text and one over the aspect; each one's pooled state attends over the
other's states with a bilinear score, gamma_i = tanh(h_i W avg + b); d = [t_r; c_r]; x = tanh(W_l d + b_l)."""

from __future__ import annotations

import torch
from torch import nn

from model.baselines.base import EmbeddingModel
from model.config import BaselineConfig
from model.layers import LSTMEncoder, length_mask, masked_mean, masked_softmax


class BilinearAttention(nn.Module):
    """v = sum_i a_i h_i, a = softmax_i(tanh(h_i W q + b)) over the unmasked positions."""

    def __init__(self, memory_dim: int, query_dim: int) -> None:
        super().__init__()
        self.bilinear = nn.Linear(query_dim, memory_dim, bias=False)  # W q
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, memory: torch.Tensor, query: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = torch.tanh(torch.bmm(memory, self.bilinear(query).unsqueeze(-1)).squeeze(-1) + self.bias)
        return torch.bmm(masked_softmax(scores, mask).to(memory.dtype).unsqueeze(1), memory).squeeze(1)


class IAN(EmbeddingModel):
    def __init__(self, config: BaselineConfig) -> None:
        super().__init__(config)
        hidden = config.hidden_dim
        self.context_encoder = LSTMEncoder(config.embed_dim, hidden)
        self.aspect_encoder = LSTMEncoder(config.embed_dim, hidden)
        self.context_attention = BilinearAttention(hidden, hidden)  # context words, queried by the pooled aspect
        self.aspect_attention = BilinearAttention(hidden, hidden)  # aspect words, queried by the pooled context
        self.classifier = nn.Linear(2 * hidden, config.num_classes)

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
        aspect_mask = length_mask(aspect_lengths, aspect_ids.size(1))
        context = self.context_encoder(self.embed(text_ids), text_lengths)  # h^c
        aspect = self.aspect_encoder(self.embed(aspect_ids), aspect_lengths)  # h^t
        context_reading = self.context_attention(context, masked_mean(aspect, aspect_mask), text_mask)  # c_r
        aspect_reading = self.aspect_attention(aspect, masked_mean(context, text_mask), aspect_mask)  # t_r
        joint = torch.cat([aspect_reading, context_reading], dim=-1)  # d = [t_r; c_r]
        return torch.tanh(self.classifier(self.dropout(joint)))  # x = tanh(W_l d + b_l)
