"""Stage segment: data/splits/{train,dev,test}.parquet -> data/segmented/{train,dev,test}.parquet.

    python -m pipeline.segment [--params params.yaml]

Adds `tokens` (jieba words of `text`, punctuation and stop words removed as params say) and
`aspect_tokens` (words of `aspect_zh`, never stop-word filtered). Text that came already segmented
(`presegmented`, the Multi-ZOL release) is split on whitespace; its words are kept as they are unless
`segment.filter_presegmented` is true. `reports/segment_detail.json` counts the words before and after the
filters per split, `metrics/segment.json` the tokens kept.
The three output files are replaced together: all new, or (on any failure) all old. Each split is read, segmented
and written in batches of `data.batch_rows` rows (docs/scaling.md), every batch through all the processes.

How many processes segment (`--processes`, or the environment's ZOL_SEGMENT_PROCESSES; default 0, all cores)
changes no output, so it is no param: the words are the same for any count.
"""

from __future__ import annotations

import argparse
import functools
import logging
import multiprocessing
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import jieba
import pandas as pd
from tqdm import tqdm

from common.atomic import atomic_dir
from common.errors import UserError
from common.metrics import detail_path, write_metrics
from common.params import load_params, read_section, section_of
from common.stage import count_argument, run_stage, stage_parser
from pipeline.paths import SEGMENTED_DIR, SPLITS_DIR, DataParams
from pipeline.schema import SEGMENTED_SCHEMA, SPLITS
from pipeline.stream import empty_frame, frame_writer, iter_frames, open_parquet

METRICS_PATH = Path("metrics/segment.json")  # tokens kept; every count in DETAIL_PATH
DETAIL_PATH = detail_path("segment")
CHUNK_ROWS = 256  # texts per task sent to a worker
MIN_ROWS_PER_PROCESS = 2000  # below this many rows per extra process, one process is faster than starting a pool
COUNT_KEYS = ("words", "punctuation_removed", "stopwords_removed", "tokens")
PROCESSES_ENV = "ZOL_SEGMENT_PROCESSES"


@dataclass(frozen=True)
class SegmentParams:
    """params.yaml `segment`."""

    user_dict: str = "data/lexicon/user_dict.txt"
    stopwords: str = "data/lexicon/stopwords.txt"
    remove_punctuation: bool = True
    remove_stopwords: bool = True
    filter_presegmented: bool = False  # false: text that came segmented (Multi-ZOL) keeps every word, as the paper


def load_stopwords(path: str | Path) -> frozenset[str]:
    """One word per line; blank lines and lines starting with # are ignored."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"{path} not found: restore the committed stop-word list or fix segment.stopwords in params.yaml"
        )
    words = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return frozenset(w for w in words if w and not w.startswith("#"))


def is_punctuation(token: str) -> bool:
    """Whitespace, or only punctuation and symbol characters (，。！… ~ ★ ^_^)."""
    return all(ch.isspace() or unicodedata.category(ch)[0] in "PS" for ch in token)


@functools.lru_cache(maxsize=1)
def _main_dictionary() -> tuple[dict[str, int], int]:
    """jieba's prefix dictionary, built from the dictionary file in the jieba package, once per process.

    jieba would otherwise read (and write) a pickled cache in the shared temp folder: anyone could plant a
    cache there that changes the segmentation, and it is no DVC dependency. Building it costs about 2 s.
    """
    builder = jieba.Tokenizer()
    with builder.get_dict_file() as handle:
        return builder.gen_pfdict(handle)


def new_tokenizer(user_dict: Path) -> jieba.Tokenizer:
    """A jieba tokenizer with the main and the user dictionary, that never touches a cache file."""
    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    freq, total = _main_dictionary()
    tokenizer.FREQ, tokenizer.total = dict(freq), total  # a copy: the user dictionary adds words to it
    tokenizer.initialized = True
    tokenizer.load_userdict(str(user_dict))
    return tokenizer


class Segmenter:
    """A jieba tokenizer with the user dictionary, plus the stop-word and punctuation filters."""

    def __init__(self, params: SegmentParams):
        user_dict = Path(params.user_dict)
        if not user_dict.is_file():
            raise UserError(
                f"{user_dict} not found: restore the committed user dictionary or fix segment.user_dict in params.yaml"
            )
        self.tokenizer = new_tokenizer(user_dict)
        self.stopwords = load_stopwords(params.stopwords) if params.remove_stopwords else frozenset()
        self.remove_punctuation = params.remove_punctuation
        self.params = params

    def _verdict(self, word: str, filters: bool) -> str:
        """ "tokens" (kept), "punctuation_removed" or "stopwords_removed"."""
        if filters and self.remove_punctuation and is_punctuation(word):
            return "punctuation_removed"
        if filters and word in self.stopwords:
            return "stopwords_removed"
        return "tokens"

    def tokens_and_counts(
        self, text: str, presegmented: bool = False, filter_stopwords: bool = True
    ) -> tuple[list[str], Counter]:
        """The kept words, and how many words there were, were kept and were removed by each filter."""
        words = text.split() if presegmented else self.tokenizer.lcut(text)
        filters = not presegmented or self.params.filter_presegmented
        kept: list[str] = []
        counts: Counter = Counter()
        for word in (w.strip() for w in words):
            if not word:
                continue
            verdict = self._verdict(word, filters) if filter_stopwords or is_punctuation(word) else "tokens"
            counts["words"] += 1
            counts[verdict] += 1
            if verdict == "tokens":
                kept.append(word)
        return kept, counts

    def tokens(self, text: str, presegmented: bool = False, filter_stopwords: bool = True) -> list[str]:
        return self.tokens_and_counts(text, presegmented, filter_stopwords)[0]

    def aspect_tokens(self, aspect_zh: str) -> list[str]:
        return self.tokens(aspect_zh, filter_stopwords=False)


_worker: Segmenter | None = None


def _init_worker(params: SegmentParams) -> None:
    """Load the dictionaries once per process; a forked worker inherits the parent's already loaded ones."""
    global _worker
    if _worker is None or _worker.params != params:
        _worker = Segmenter(params)


def _segment_chunk(chunk: Sequence[tuple[str, bool]]) -> list[tuple[list[str], Counter]]:
    assert _worker is not None
    return [_worker.tokens_and_counts(text, presegmented) for text, presegmented in chunk]


def resolve_processes(requested: int, n_rows: int, min_rows_per_process: int = MIN_ROWS_PER_PROCESS) -> int:
    """0 = all cores; never more processes than the input keeps busy."""
    wanted = requested or os.cpu_count() or 1
    return max(1, min(wanted, n_rows // max(1, min_rows_per_process)))


def segment_with_counts(
    texts: Sequence[str],
    presegmented: Sequence[bool],
    params: SegmentParams,
    processes: int = 1,
    chunk_rows: int = CHUNK_ROWS,
    progress: bool = False,
) -> list[tuple[list[str], Counter]]:
    """(tokens, word counts) of each text, in input order; identical whatever `processes` is."""
    _init_worker(params)
    with ExitStack() as stack, tqdm(total=len(texts), desc="segment", unit=" texts", disable=not progress) as bar:
        pool = stack.enter_context(new_pool(processes, params)) if processes > 1 else None
        return segment_batch(texts, presegmented, pool, chunk_rows, bar.update)


def new_pool(processes: int, params: SegmentParams):
    return multiprocessing.get_context().Pool(processes, initializer=_init_worker, initargs=(params,))


def segment_batch(
    texts: Sequence[str], presegmented: Sequence[bool], pool, chunk_rows: int = CHUNK_ROWS, done=lambda n: None
) -> list[tuple[list[str], Counter]]:
    """(tokens, word counts) of each text in order: in this process (pool None, after _init_worker) or in the
    pool's, chunk by chunk; `done` is told how many texts each chunk held."""
    items = list(zip(texts, presegmented, strict=False))
    chunks = [items[i : i + chunk_rows] for i in range(0, len(items), chunk_rows)]
    results: list[tuple[list[str], Counter]] = []
    for part in map(_segment_chunk, chunks) if pool is None else pool.imap(_segment_chunk, chunks):  # in order
        results.extend(part)
        done(len(part))
    return results


def segment_texts(
    texts: Sequence[str],
    presegmented: Sequence[bool],
    params: SegmentParams,
    processes: int = 1,
    chunk_rows: int = CHUNK_ROWS,
    progress: bool = False,
) -> list[list[str]]:
    """Tokens of each text, in input order; identical whatever `processes` is."""
    return [tokens for tokens, _ in segment_with_counts(texts, presegmented, params, processes, chunk_rows, progress)]


def aspect_token_column(aspect_names: Iterable[str], params: SegmentParams) -> list[list[str]]:
    names = list(aspect_names)
    if not names:
        return []
    _init_worker(params)
    assert _worker is not None
    cache = {name: _worker.aspect_tokens(name) for name in sorted(set(names))}
    return [list(cache[name]) for name in names]


def with_tokens(frame: pd.DataFrame, tokens: list[list[str]], params: SegmentParams) -> pd.DataFrame:
    """`frame` with the `tokens` and `aspect_tokens` columns (also for an empty frame)."""
    out = frame.copy()
    out["tokens"] = pd.Series(tokens, index=frame.index, dtype=object)
    out["aspect_tokens"] = pd.Series(aspect_token_column(frame["aspect_zh"], params), index=frame.index, dtype=object)
    return out


def segment_frame(
    frame: pd.DataFrame, params: SegmentParams, processes: int = 1, chunk_rows: int = CHUNK_ROWS
) -> pd.DataFrame:
    """A split frame with `tokens` and `aspect_tokens` added, rows in the same order."""
    tokens = segment_texts(list(frame["text"]), list(frame["presegmented"].astype(bool)), params, processes, chunk_rows)
    return with_tokens(frame, tokens, params)


class WordTotals:
    """count_words of a split's rows of one kind (jieba or presegmented), summed batch by batch."""

    def __init__(self) -> None:
        self.rows, self.total = 0, Counter()

    def add(self, counts: Counter) -> None:
        self.rows += 1
        self.total.update(counts)

    def as_dict(self) -> dict[str, int]:
        return {"rows": self.rows, **{key: int(self.total[key]) for key in COUNT_KEYS}}


def segment_split_file(source: Path, target: Path, params: SegmentParams, pool, batch_rows: int, bar) -> dict:
    """One split file segmented batch by batch into `target`; its metrics."""
    template = with_tokens(empty_frame(source), [], params)
    totals = {"jieba": WordTotals(), "presegmented": WordTotals()}
    rows = 0
    with frame_writer(target, SEGMENTED_SCHEMA, batch_rows, lambda: template) as out:
        for frame in iter_frames(source, batch_rows):
            flags = [bool(f) for f in frame["presegmented"]]
            results = segment_batch(list(frame["text"]), flags, pool, done=bar.update)
            for (_, counts), flag in zip(results, flags, strict=True):
                totals["presegmented" if flag else "jieba"].add(counts)
            out.write(with_tokens(frame, [tokens for tokens, _ in results], params))
            rows += len(frame)
    return {"rows": rows, **{kind: total.as_dict() for kind, total in totals.items()}}


def segment_split_files(
    folder: Path, params: SegmentParams, processes: int, batch_rows: int, n_rows: int, progress: bool = False
) -> dict:
    """Every split of SPLITS_DIR into `<folder>/<split>.parquet`, all through one pool; the metrics."""
    _init_worker(params)
    metrics = {}
    with ExitStack() as stack, tqdm(total=n_rows, desc="segment", unit=" texts", disable=not progress) as bar:
        pool = stack.enter_context(new_pool(processes, params)) if processes > 1 else None
        for name in SPLITS:
            source, target = SPLITS_DIR / f"{name}.parquet", folder / f"{name}.parquet"
            metrics[name] = segment_split_file(source, target, params, pool, batch_rows, bar)
    return {"filter_presegmented": params.filter_presegmented, "splits": metrics}


# --processes / ZOL_SEGMENT_PROCESSES: 0 (all cores) or a positive count
process_count = count_argument("0 (all cores) or a positive count")


def parser() -> argparse.ArgumentParser:
    stage = stage_parser("python -m pipeline.segment", __doc__)
    stage.add_argument(
        "--processes",
        type=process_count,
        default=os.environ.get(PROCESSES_ENV, "0"),
        help=f"segmenting processes, 0 = all cores (default: ${PROCESSES_ENV}, else 0); changes no output",
    )
    return stage


def run(args: argparse.Namespace) -> str:
    """The stage as `python -m pipeline.segment` runs it; its summary line."""
    params_file = load_params(None, args.params)
    params = read_section(SegmentParams, section_of(params_file, "segment", args.params), "segment", args.params)
    data = read_section(DataParams, section_of(params_file, "data", args.params), "data", args.params)
    sizes_of = {name: open_parquet(SPLITS_DIR / f"{name}.parquet").metadata.num_rows for name in SPLITS}
    n_rows = sum(sizes_of.values())
    if n_rows == 0:
        raise UserError(
            f"{SPLITS_DIR} holds no rows in any split: see reports/clean_detail.json for why every record was dropped"
        )
    processes = resolve_processes(args.processes, n_rows)
    with atomic_dir(SEGMENTED_DIR) as staging:  # the three files change together or not at all
        metrics = segment_split_files(staging, params, processes, data.batch_rows, n_rows, progress=True)
    words = {
        key: sum(m[kind][key] for m in metrics["splits"].values() for kind in ("jieba", "presegmented"))
        for key in COUNT_KEYS
    }
    write_metrics({"tokens": words["tokens"]}, metrics, METRICS_PATH, DETAIL_PATH)
    sizes = ", ".join(f"{name} {sizes_of[name]}" for name in SPLITS)
    return (
        f"segment: {n_rows} rows ({sizes}): {words['words']} words -> {words['tokens']} tokens "
        f"({words['punctuation_removed']} punctuation, {words['stopwords_removed']} stop words removed); "
        f"{processes} process(es)"
    )


def main(argv: list[str] | None = None) -> int:
    return run_stage(parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
