"""Vocabulary from the training split, always holding every aspect token."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


@dataclass(frozen=True)
class Vocab:
    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index

    def id(self, token: str) -> int:
        return self._index.get(token, UNK_ID)

    def same_strings(self, strings: Iterable[str]) -> list[str]:
        """The strings, each equal to a vocabulary word replaced by the vocabulary's own string object."""
        own = {t: t for t in self.tokens}
        return [own.get(s, s) for s in strings]

    def ids(self, tokens: Sequence[str], max_len: int) -> list[int]:
        """Ids of the first `max_len` tokens (unknown words -> <unk>)."""
        index = self._index
        return [index.get(t, UNK_ID) for t in tokens[:max_len]]

    def encode(self, tokens: Iterable[str], max_len: int) -> np.ndarray:
        """Ids of the first `max_len` tokens as an int64 array."""
        return np.array(self.ids(list(tokens), max_len), dtype=np.int64)


def build_vocab(
    train_texts: Iterable[Iterable[str]], aspect_token_lists: Iterable[Iterable[str]], min_count: int = 1
) -> Vocab:
    """<pad>, <unk>, training words seen >= min_count times (most frequent first, ties by token),
    then any aspect token not already in (aspect names are known a priori, whatever the split)."""
    counts: Counter[str] = Counter()
    for tokens in train_texts:
        counts.update(tokens)
    words = sorted(
        (t for t, c in counts.items() if c >= min_count and t not in (PAD, UNK)), key=lambda t: (-counts[t], t)
    )
    known = set(words)
    extra = sorted({t for tokens in aspect_token_lists for t in tokens if t not in known and t not in (PAD, UNK)})
    return Vocab((PAD, UNK, *words, *extra))
