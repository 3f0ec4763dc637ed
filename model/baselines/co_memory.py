"""Co-Memory+Aspect: Xu, Mao & Chen's (2018) co-memory network with the aspect added, as the MIMN paper builds it.

A textual memory (word embeddings, as MemNet) and a visual memory (each image's ResNet-50 feature projected to the
embedding size) are read alternately: at hop k the text is attended with the image vector and the aspect as the
query, the images with the text vector and the aspect, and a linear layer carries each vector to the next hop
(shared across hops, as MemNet): v_T^k = Att_T(M^T, [v_I^{k-1}; a]) + W_T v_T^{k-1}, and symmetrically for v_I.
Both start from the aspect vector a (the mean of its word embeddings); softmax over [v_T^H; v_I^H].
"""

from __future__ import annotations

import torch
from torch import nn

from model.baselines.base import EmbeddingModel
from model.config import BaselineConfig
from model.layers import MemoryAttention, length_mask, masked_mean


class CoMemory(EmbeddingModel):
    def __init__(self, config: BaselineConfig) -> None:
        super().__init__(config)
        dim = config.embed_dim
        self.image_projection = nn.Linear(config.image_dim, dim)
        self.text_attention = MemoryAttention(dim, 2 * dim, config.attention_score)
        self.image_attention = MemoryAttention(dim, 2 * dim, config.attention_score)
        self.text_linear = nn.Linear(dim, dim)
        self.image_linear = nn.Linear(dim, dim)
        self.classifier = nn.Linear(2 * dim, config.num_classes)

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
        image_mask = length_mask(image_lengths, images.size(1))
        text_memory = self.embed(text_ids)  # M^T
        image_memory = self.image_projection(self.dropout(images))  # M^I
        aspect = masked_mean(self.embed(aspect_ids), length_mask(aspect_lengths, aspect_ids.size(1)))  # a
        v_text, v_img = aspect, aspect
        for _ in range(self.config.hops):
            text_read = self.text_attention(text_memory, torch.cat([v_img, aspect], dim=-1), text_mask)
            image_read = self.image_attention(image_memory, torch.cat([v_text, aspect], dim=-1), image_mask)
            v_text, v_img = text_read + self.text_linear(v_text), image_read + self.image_linear(v_img)
        return self.classifier(self.dropout(torch.cat([v_text, v_img], dim=-1)))
