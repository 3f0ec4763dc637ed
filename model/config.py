"""Every size of an MIMN model in one dataclass (stored in the checkpoint as a plain dict)."""
from __future__ import annotations

from dataclasses import dataclass, fields

from model.layers import ATTENTION_SCORES

VARIANTS: tuple[str, ...] = ("mimn", "self", "text2img", "img2text")
MAX_HOPS = 5


@dataclass(frozen=True)
class MIMNConfig:
    vocab_size: int
    num_classes: int
    embed_dim: int = 300          # Dtext
    hidden_dim: int = 100         # Dh, each LSTM direction
    max_text_len: int = 320       # L
    max_aspect_len: int = 4       # N
    max_images: int = 5           # K
    image_dim: int = 2048         # ResNet-50 pooled features
    hops: int = 3                 # H
    dropout: float = 0.5
    variant: str = "mimn"         # the paper's Table 4: mimn | self | text2img | img2text
    attention_score: str = "mlp"  # mlp: u·tanh(W[m, q] + b) | linear: tanh(w·[m, q] + b), see layers.MemoryAttention

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.attention_score not in ATTENTION_SCORES:
            raise ValueError(f"attention_score must be one of {', '.join(ATTENTION_SCORES)}, got {self.attention_score!r}")
        if not 1 <= self.hops <= MAX_HOPS:
            raise ValueError(f"hops must be 1..{MAX_HOPS}, got {self.hops}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("vocab_size", "num_classes", "embed_dim", "hidden_dim", "max_text_len",
                     "max_aspect_len", "max_images", "image_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_params(cls, model_params: dict, vocab_size: int, num_classes: int) -> "MIMNConfig":
        """A config from params.yaml's `model` section (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)} - {"vocab_size", "num_classes"}
        return cls(vocab_size=vocab_size, num_classes=num_classes,
                   **{k: v for k, v in model_params.items() if k in known})
