"""Multi-Interactive Memory Network (Xu, Mao & Chen, AAAI-19), with padding masked everywhere.

Notation follows the paper: text memory M^T (Eqs. 1-4), aspect vector v^A (5-7), visual memory M^I
(8-12), hop 1 aspect-guided attention (13-21), hops 2..H multi-interactive attention (22-27) combined
by a GRU per modality (28-29), softmax over [v_text^(H), v_img^(H)] (30). Each hop and direction has
its own attention weights; each modality's GRU cell is shared across hops (it is the recurrence).
"""

from __future__ import annotations

import torch
from torch import nn

from model.config import MIMNConfig
from model.layers import BiLSTMEncoder, Dropout, MemoryAttention, length_mask, masked_mean, memory_keys
from model.vocab import PAD_ID
from model.word_evidence import WordEvidence

# which queries attend to each memory in hops 2..H, per variant (the paper's Table 4)
TEXT_QUERIES = {"mimn": ("text", "img"), "self": ("text",), "text2img": ("text",), "img2text": ("text", "img")}
IMAGE_QUERIES = {"mimn": ("img", "text"), "self": ("img",), "text2img": ("img", "text"), "img2text": ("img",)}


class MIMN(nn.Module):
    def __init__(self, config: MIMNConfig, embedding_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        memory_dim = 2 * config.hidden_dim
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD_ID)
        self.dropout = Dropout(config.dropout)
        self.text_encoder = BiLSTMEncoder(config.embed_dim, config.hidden_dim)
        self.aspect_encoder = BiLSTMEncoder(config.embed_dim, config.hidden_dim)
        self.image_encoder = BiLSTMEncoder(config.image_dim, config.hidden_dim)

        def attention() -> MemoryAttention:
            return MemoryAttention(memory_dim, memory_dim, config.attention_score)

        self.text_aspect_attention = attention()
        self.image_aspect_attention = attention()
        self.text_hops = nn.ModuleList(
            nn.ModuleDict({q: attention() for q in TEXT_QUERIES[config.variant]}) for _ in range(config.hops - 1)
        )
        self.image_hops = nn.ModuleList(
            nn.ModuleDict({q: attention() for q in IMAGE_QUERIES[config.variant]}) for _ in range(config.hops - 1)
        )
        self.text_gru = nn.GRUCell(memory_dim, memory_dim)
        self.image_gru = nn.GRUCell(memory_dim, memory_dim)
        self.classifier = nn.Linear(2 * memory_dim, config.num_classes)
        # the wide path (an extension, off in the paper's MIMN): every word's evidence, per aspect
        self.word_evidence = (
            WordEvidence(
                config.vocab_size, config.num_classes, config.wide_pairs, config.wide_aspects, config.wide_dropout
            )
            if config.word_evidence
            else None
        )
        if embedding_weights is not None:  # set last: nothing after this re-initialises the vectors
            self.load_embeddings(embedding_weights)

    @torch.no_grad()
    def load_embeddings(self, weights: torch.Tensor) -> None:
        if tuple(weights.shape) != tuple(self.embedding.weight.shape):
            raise ValueError(f"embedding weights {tuple(weights.shape)} != {tuple(self.embedding.weight.shape)}")
        self.embedding.weight.copy_(weights)

    def forward(
        self,
        text_ids: torch.Tensor,
        text_lengths: torch.Tensor,
        aspect_ids: torch.Tensor,
        aspect_lengths: torch.Tensor,
        images: torch.Tensor,
        image_lengths: torch.Tensor,
        return_attention: bool = False,
        wide_logits: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits (B, num_classes). Inputs are padded to the batch's longest item; lengths give the real sizes
        (an image length of 0 masks the whole visual memory).

        return_attention=True returns (logits, attention) from this same pass: attention["text"] (B, H, T) and
        attention["image"] (B, H, K) are the weights each hop read its memory with. A hop with two queries
        reads the mean of two weighted sums, which is one weighted sum with the mean of the two weightings,
        so that mean is the hop's attention exactly.

        wide_logits (B, num_classes), in training only: the wide path's logits computed elsewhere, used instead of
        its own (out-of-fold logits of the linear baseline, train.wide_folds)."""
        text_mask = length_mask(text_lengths, text_ids.size(1))
        aspect_mask = length_mask(aspect_lengths, aspect_ids.size(1))
        image_mask = length_mask(image_lengths, images.size(1))

        text_memory = self.text_encoder(self.dropout(self.embedding(text_ids)), text_lengths)
        aspect_states = self.aspect_encoder(self.dropout(self.embedding(aspect_ids)), aspect_lengths)
        aspect_vector = masked_mean(aspect_states, aspect_mask)
        image_memory = self.image_encoder(self.dropout(images), image_lengths)

        v_text, v_img, text_hops, image_hops = self._hops(
            text_memory, text_mask, image_memory, image_mask, aspect_vector
        )
        logits = self.classifier(self.dropout(torch.cat([v_text, v_img], dim=-1)))
        if self.word_evidence is not None:
            logits = logits + (
                wide_logits
                if wide_logits is not None
                else self.word_evidence(text_ids, text_lengths, aspect_ids, aspect_lengths)
            )
        if not return_attention:
            return logits
        return logits, {"text": torch.stack(text_hops, dim=1), "image": torch.stack(image_hops, dim=1)}

    def _hops(
        self,
        text_memory: torch.Tensor,
        text_mask: torch.Tensor,
        image_memory: torch.Tensor,
        image_mask: torch.Tensor,
        aspect_vector: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Hop 1 (aspect-guided) and hops 2..H (multi-interactive, GRU-combined): the final text and image vectors
        and each hop's attention weights on either memory."""
        # every attention's memory term up front, one product per memory (layers.memory_keys)
        text_keys = self._keys(self.text_aspect_attention, self.text_hops, text_memory)
        image_keys = self._keys(self.image_aspect_attention, self.image_hops, image_memory)
        v_text, text_weights = self.text_aspect_attention.attend(
            text_memory, aspect_vector, text_mask, text_keys[id(self.text_aspect_attention)]
        )
        v_img, image_weights = self.image_aspect_attention.attend(
            image_memory, aspect_vector, image_mask, image_keys[id(self.image_aspect_attention)]
        )
        text_hops, image_hops = [text_weights], [image_weights]
        for text_att, image_att in zip(self.text_hops, self.image_hops, strict=False):
            queries = {"text": v_text, "img": v_img}
            text_read, text_weights = mean_read(
                [att.attend(text_memory, queries[q], text_mask, text_keys[id(att)]) for q, att in text_att.items()]
            )
            image_read, image_weights = mean_read(
                [att.attend(image_memory, queries[q], image_mask, image_keys[id(att)]) for q, att in image_att.items()]
            )
            text_hops.append(text_weights)
            image_hops.append(image_weights)
            v_text = self.text_gru(text_read, v_text)
            v_img = self.image_gru(image_read, v_img)
        return v_text, v_img, text_hops, image_hops

    @staticmethod
    def _keys(first: MemoryAttention, hops: nn.ModuleList, memory: torch.Tensor) -> dict[int, torch.Tensor]:
        """{id(attention): its keys of `memory`} for the first hop's attention and every later hop's."""
        attentions = [first, *(att for hop in hops for att in hop.values())]
        return {id(att): keys for att, keys in zip(attentions, memory_keys(attentions, memory), strict=True)}


def mean_read(reads: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean of several (read vector, weights) pairs of one memory."""
    return torch.stack([v for v, _ in reads]).mean(0), torch.stack([a for _, a in reads]).mean(0)
