"""Initial word vectors: skip-gram (SGNS) trained on the training split, a word2vec text file, or random."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.errors import UserError
from model.settings import EmbeddingParams
from model.vocab import PAD_ID, Vocab

SPECIAL = 2  # <pad>, <unk>


@dataclass
class WordVectors:
    weights: torch.Tensor  # (len(vocab), dim); row 0 (<pad>) is zeros
    found: int  # vocabulary words (not <pad>/<unk>) that got a trained/loaded vector
    skipped_nonfinite: int = 0  # vectors in the file with NaN or Inf: skipped (those words keep a random vector)

    def coverage(self) -> float:
        total = self.weights.shape[0] - SPECIAL
        return self.found / total if total > 0 else 0.0


def stable_hash(text: str) -> int:
    """gensim seeds each word's initial vector with this; Python's hash() changes between processes."""
    return zlib.crc32(text.encode("utf-8"))


def random_vectors(vocab_size: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weights = rng.uniform(-0.25, 0.25, size=(vocab_size, dim)).astype(np.float32)
    weights[PAD_ID] = 0.0
    return weights


class Sentences:
    """The non-empty sentences of a corpus as lists of str, read again from the corpus on every pass (gensim makes
    one to count words, then one per epoch), so that it needs not be held in memory."""

    def __init__(self, corpus: Iterable[Iterable[str]]) -> None:
        self.corpus = corpus

    def __iter__(self) -> Iterator[list[str]]:
        return ([str(t) for t in s] for s in self.corpus if len(s))


def train_sgns(
    sentences: Iterable[Iterable[str]], dim: int, seed: int, window: int, negative: int, min_count: int, epochs: int
) -> dict[str, np.ndarray]:
    """Skip-gram vectors of every word of `sentences`, an iterable read once per pass (a list, or a corpus that
    reads its file again)."""
    from gensim.models import Word2Vec  # imported here: slow to import and needed only for sgns

    sentences = Sentences(sentences)
    if next(iter(sentences), None) is None:
        return {}
    model = Word2Vec(
        sentences=sentences,
        vector_size=dim,
        sg=1,
        negative=negative,
        hs=0,
        window=window,
        min_count=min_count,
        epochs=epochs,
        seed=seed,
        workers=1,
        hashfxn=stable_hash,
    )
    return {word: model.wv[word] for word in model.wv.index_to_key}


def read_word2vec_text(path: str | Path, wanted: set[str], dim: int) -> tuple[dict[str, np.ndarray], int]:
    """Vectors of the `wanted` words from a word2vec text file (optional 'count dim' header line), and how many
    wanted words' vectors were skipped because they hold NaN or Inf."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"embeddings.source: {path} not found; give a word2vec text file, 'sgns' or 'random'")
    vectors: dict[str, np.ndarray] = {}
    skipped = 0
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, 1):
            parts = line.rstrip().split(" ")
            if line_no == 1 and len(parts) == 2:
                continue  # header
            if len(parts) != dim + 1:
                raise UserError(
                    f"{path}:{line_no} has {len(parts) - 1} numbers, expected model.embed_dim={dim}; "
                    "use vectors of that size or change model.embed_dim"
                )
            if parts[0] in wanted:
                try:
                    vector = np.asarray(parts[1:], dtype=np.float32)
                except ValueError as exc:
                    raise UserError(f"{path}:{line_no} holds a value that is not a number ({exc})") from exc
                if np.isfinite(vector).all():
                    vectors[parts[0]] = vector
                else:
                    skipped += 1
    return vectors, skipped


def build_word_vectors(
    vocab: Vocab, source: str, dim: int, seed: int, train_sentences: Iterable[list[str]], sgns_params: dict
) -> WordVectors:
    """Word vectors for the vocabulary; words without a trained/loaded vector keep a seeded random one.
    `train_sentences` is read once per pass of the skip-gram training: a list, or an iterable that reads again."""
    sgns_params = {**dataclasses.asdict(EmbeddingParams()), **sgns_params}  # params.yaml's defaults
    weights = random_vectors(len(vocab), dim, seed)
    skipped = 0
    if source == "random":
        found: dict[str, np.ndarray] = {}
    elif source == "sgns":
        found = train_sgns(
            train_sentences,
            dim,
            seed,
            window=int(sgns_params["window"]),
            negative=int(sgns_params["negative"]),
            min_count=int(sgns_params["min_count"]),
            epochs=int(sgns_params["epochs"]),
        )
    else:
        found, skipped = read_word2vec_text(source, set(vocab.tokens[SPECIAL:]), dim)
        if skipped:
            print(
                f"warning: {source}: {skipped} vector(s) with NaN or Inf skipped; those words keep random vectors",
                flush=True,
            )
    hits = 0
    for i, token in enumerate(vocab.tokens[SPECIAL:], start=SPECIAL):
        if token in found:
            weights[i] = found[token]
            hits += 1
    return WordVectors(torch.from_numpy(weights), hits, skipped)
