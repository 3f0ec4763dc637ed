"""What every baseline shares: the word-embedding table and the dropout (their config: model.config.BaselineConfig)."""

from __future__ import annotations

import torch
from torch import nn

from model.config import BaselineConfig
from model.layers import Dropout
from model.vocab import PAD_ID


class EmbeddingModel(nn.Module):
    """Holds the config, the word-embedding table (fine-tuned, <pad> row zero) and the dropout."""

    def __init__(self, config: BaselineConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD_ID)
        self.dropout = Dropout(config.dropout)

    @torch.no_grad()
    def load_embeddings(self, weights: torch.Tensor) -> None:
        if tuple(weights.shape) != tuple(self.embedding.weight.shape):
            raise ValueError(f"embedding weights {tuple(weights.shape)} != {tuple(self.embedding.weight.shape)}")
        self.embedding.weight.copy_(weights)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.embedding(ids))
