"""LSTM (Wang et al. 2016's baseline): the mean of an LSTM's hidden states over the text, then softmax.
The aspect is not an input, so every aspect of a review gets the same prediction (as in the paper)."""

from __future__ import annotations

import torch
from torch import nn

from model.baselines.base import EmbeddingModel
from model.config import BaselineConfig
from model.layers import LSTMEncoder, length_mask, masked_mean


class LSTMClassifier(EmbeddingModel):
    def __init__(self, config: BaselineConfig) -> None:
        super().__init__(config)
        self.encoder = LSTMEncoder(config.embed_dim, config.hidden_dim)
        self.classifier = nn.Linear(config.hidden_dim, config.num_classes)

    def forward(
        self,
        text_ids: torch.Tensor,
        text_lengths: torch.Tensor,
        aspect_ids: torch.Tensor,
        aspect_lengths: torch.Tensor,
        images: torch.Tensor,
        image_lengths: torch.Tensor,
    ) -> torch.Tensor:
        states = self.encoder(self.embed(text_ids), text_lengths)  # h_1..h_n
        text = masked_mean(states, length_mask(text_lengths, text_ids.size(1)))  # r = mean_i h_i
        return self.classifier(self.dropout(text))  # W r + b
