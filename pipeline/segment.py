"""Stage segment: data/splits/{train,dev,test}.parquet -> data/segmented/{train,dev,test}.parquet.

    python -m pipeline.segment [--params params.yaml]

Adds `tokens` (jieba words of `text`, punctuation and stop words removed as params say) and
`aspect_tokens` (words of `aspect_zh`, never stop-word filtered). Text that came already segmented
(the Multi-ZOL release) keeps its segmentation: it is split on whitespace.
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import jieba
import pandas as pd
from tqdm import tqdm

from common.errors import UserError, cli_entry
from pipeline.io import read_frame, write_frame
from common.params import DEFAULT_PARAMS, load_params, require
from pipeline.schema import SEGMENTED_SCHEMA, SPLITS
from pipeline.split import SPLITS_DIR, presegmented_ids

SEGMENTED_DIR = Path("data/segmented")
CHUNK_ROWS = 256           # texts per task sent to a worker
MIN_ROWS_PER_PROCESS = 2000  # below this many rows per extra process, one process is faster than starting a pool


@dataclass(frozen=True)
class SegmentParams:
    user_dict: str
    stopwords: str
    remove_punctuation: bool
    remove_stopwords: bool
    processes: int

    @classmethod
    def from_section(cls, section: dict) -> "SegmentParams":
        processes = require(section, "processes", "segment", int)
        if processes < 0:
            raise UserError(f"params.yaml: 'segment.processes' must be 0 (all cores) or a positive count, got {processes}")
        return cls(user_dict=require(section, "user_dict", "segment", str),
                   stopwords=require(section, "stopwords", "segment", str),
                   remove_punctuation=require(section, "remove_punctuation", "segment", bool),
                   remove_stopwords=require(section, "remove_stopwords", "segment", bool),
                   processes=processes)


def load_stopwords(path: str | Path) -> frozenset[str]:
    """One word per line; blank lines and lines starting with # are ignored."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: restore the committed stop-word list or fix segment.stopwords in params.yaml")
    words = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return frozenset(w for w in words if w and not w.startswith("#"))


def is_punctuation(token: str) -> bool:
    """Whitespace, or only punctuation and symbol characters (，。！… ~ ★ ^_^)."""
    return all(ch.isspace() or unicodedata.category(ch)[0] in "PS" for ch in token)


class Segmenter:
    """A jieba tokenizer with the user dictionary, plus the stop-word and punctuation filters."""

    def __init__(self, params: SegmentParams):
        user_dict = Path(params.user_dict)
        if not user_dict.is_file():
            raise UserError(f"{user_dict} not found: restore the committed user dictionary or fix segment.user_dict in params.yaml")
        jieba.setLogLevel(logging.WARNING)
        self.tokenizer = jieba.Tokenizer()
        self.tokenizer.tmp_dir = tempfile.gettempdir()   # jieba's cache goes to the system temp dir, never the repo
        self.tokenizer.load_userdict(str(user_dict))     # initialises the main dictionary first
        self.stopwords = load_stopwords(params.stopwords) if params.remove_stopwords else frozenset()
        self.remove_punctuation = params.remove_punctuation
        self.params = params

    def _keep(self, token: str, filter_stopwords: bool) -> bool:
        if not token.strip():
            return False
        if self.remove_punctuation and is_punctuation(token):
            return False
        return not (filter_stopwords and token in self.stopwords)

    def tokens(self, text: str, presegmented: bool = False, filter_stopwords: bool = True) -> list[str]:
        words = text.split() if presegmented else self.tokenizer.lcut(text)
        return [w.strip() for w in words if self._keep(w, filter_stopwords)]

    def aspect_tokens(self, aspect_zh: str) -> list[str]:
        return self.tokens(aspect_zh, filter_stopwords=False)


_worker: Segmenter | None = None


def _init_worker(params: SegmentParams) -> None:
    """Load the dictionaries once per process; a forked worker inherits the parent's already loaded ones."""
    global _worker
    if _worker is None or _worker.params != params:
        _worker = Segmenter(params)


def _segment_chunk(chunk: Sequence[tuple[str, bool]]) -> list[list[str]]:
    assert _worker is not None
    return [_worker.tokens(text, presegmented) for text, presegmented in chunk]


def resolve_processes(requested: int, n_rows: int, min_rows_per_process: int = MIN_ROWS_PER_PROCESS) -> int:
    """0 = all cores; never more processes than the input keeps busy."""
    wanted = requested or os.cpu_count() or 1
    return max(1, min(wanted, n_rows // max(1, min_rows_per_process)))


def segment_texts(texts: Sequence[str], presegmented: Sequence[bool], params: SegmentParams,
                  processes: int = 1, chunk_rows: int = CHUNK_ROWS, progress: bool = False) -> list[list[str]]:
    """Tokens of each text, in input order; identical whatever `processes` is."""
    items = list(zip(texts, presegmented))
    chunks = [items[i:i + chunk_rows] for i in range(0, len(items), chunk_rows)]
    bar = tqdm(total=len(items), desc="segment", unit=" texts", disable=not progress)
    results: list[list[str]] = []
    _init_worker(params)
    if processes <= 1:
        for chunk in chunks:
            results.extend(_segment_chunk(chunk))
            bar.update(len(chunk))
    else:
        with multiprocessing.get_context().Pool(processes, initializer=_init_worker, initargs=(params,)) as pool:
            for tokens in pool.imap(_segment_chunk, chunks):   # imap keeps the chunks in order
                results.extend(tokens)
                bar.update(len(tokens))
    bar.close()
    return results


def segment_frame(frame: pd.DataFrame, presegmented_review_ids: Iterable[str], params: SegmentParams,
                  processes: int = 1, chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """A split frame with `tokens` and `aspect_tokens` added, rows in the same order."""
    preseg = set(presegmented_review_ids)
    flags = [rid in preseg for rid in frame["review_id"]]
    out = frame.copy()
    out["tokens"] = segment_texts(list(frame["text"]), flags, params, processes, chunk_rows) if len(frame) else []
    out["aspect_tokens"] = aspect_token_column(frame["aspect_zh"], params)
    return out


def aspect_token_column(aspect_names: Iterable[str], params: SegmentParams) -> list[list[str]]:
    names = list(aspect_names)
    if not names:
        return []
    _init_worker(params)
    assert _worker is not None
    cache = {name: _worker.aspect_tokens(name) for name in sorted(set(names))}
    return [list(cache[name]) for name in names]


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.segment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    params = SegmentParams.from_section(load_params("segment", args.params))
    frames = {name: read_frame(SPLITS_DIR / f"{name}.parquet") for name in SPLITS}
    preseg = {name: presegmented_ids(SPLITS_DIR / f"{name}.parquet") for name in SPLITS}
    # one pool for all splits: segment the concatenated texts, then cut them back
    texts = [t for name in SPLITS for t in frames[name]["text"]]
    flags = [rid in preseg[name] for name in SPLITS for rid in frames[name]["review_id"]]
    processes = resolve_processes(params.processes, len(texts))
    tokens = segment_texts(texts, flags, params, processes, progress=True)
    start = 0
    n_tokens = 0
    for name in SPLITS:
        frame = frames[name].copy()
        frame["tokens"] = tokens[start:start + len(frame)]
        frame["aspect_tokens"] = aspect_token_column(frame["aspect_zh"], params)
        start += len(frame)
        n_tokens += sum(len(t) for t in frame["tokens"])
        write_frame(frame, SEGMENTED_DIR / f"{name}.parquet", SEGMENTED_SCHEMA)
    sizes = ", ".join(f"{name} {len(frames[name])}" for name in SPLITS)
    print(f"segment: {len(texts)} rows ({sizes}) -> {n_tokens} tokens "
          f"({n_tokens / max(1, len(texts)):.1f} per row, {sum(flags)} pre-segmented); "
          f"{processes} process(es); {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
