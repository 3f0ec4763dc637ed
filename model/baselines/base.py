"""What every baseline shares: one config dataclass (the common sizes) and the word-embedding table."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn

from model.config import MAX_HOPS
from model.layers import ATTENTION_SCORES
from model.vocab import PAD_ID


@dataclass(frozen=True)
class BaselineConfig:
    """The sizes of any baseline (stored in the checkpoint as a plain dict); a model uses the fields it needs."""

    vocab_size: int
    num_classes: int
    embed_dim: int = 300
    hidden_dim: int = 100  # Dh, each LSTM direction
    max_text_len: int = 320
    max_aspect_len: int = 4
    max_images: int = 5
    image_dim: int = 2048
    hops: int = 3  # MemNet, RAM and Co-Memory: memory hops
    dropout: float = 0.5
    attention_score: str = "mlp"  # the MemoryAttention score of every attention except IAN's bilinear one

    def __post_init__(self) -> None:
        if self.attention_score not in ATTENTION_SCORES:
            raise ValueError(
                f"attention_score must be one of {', '.join(ATTENTION_SCORES)}, got {self.attention_score!r}"
            )
        if not 1 <= self.hops <= MAX_HOPS:
            raise ValueError(f"hops must be 1..{MAX_HOPS}, got {self.hops}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in (
            "vocab_size",
            "num_classes",
            "embed_dim",
            "hidden_dim",
            "max_text_len",
            "max_aspect_len",
            "max_images",
            "image_dim",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_params(cls, model_params: dict, vocab_size: int, num_classes: int) -> BaselineConfig:
        """A config from params.yaml's `model` section (keys it has no field for, e.g. variant, are ignored)."""
        known = {f.name for f in fields(cls)} - {"vocab_size", "num_classes"}
        return cls(
            vocab_size=vocab_size, num_classes=num_classes, **{k: v for k, v in model_params.items() if k in known}
        )


class EmbeddingModel(nn.Module):
    """Holds the config, the word-embedding table (fine-tuned, <pad> row zero) and the dropout."""

    def __init__(self, config: BaselineConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(config.dropout)

    @torch.no_grad()
    def load_embeddings(self, weights: torch.Tensor) -> None:
        if tuple(weights.shape) != tuple(self.embedding.weight.shape):
            raise ValueError(f"embedding weights {tuple(weights.shape)} != {tuple(self.embedding.weight.shape)}")
        self.embedding.weight.copy_(weights)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.embedding(ids))
