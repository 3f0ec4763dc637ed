"""The output of `python -m tools.predict`: JSON Lines (one object per review) or Parquet (one row per review and
aspect), each written whole, and the attention pages of --explain."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import TextIO

import pyarrow as pa
from tqdm import tqdm

from common.atomic import atomic_path
from model.explain import IndexEntry, index_entry, write_index, write_review
from model.provenance import checkpoint_source
from pipeline.io import write_table
from tools.predict_inputs import Review
from tools.predict_scoring import Predictor

REVIEWS_PER_CHUNK = 256  # reviews whose images go through the backbone together
PREDICTIONS_SCHEMA = pa.schema(
    [
        ("review_id", pa.string()),
        ("aspect", pa.string()),
        ("aspect_zh", pa.string()),
        ("predicted_score", pa.int8()),
        ("probabilities", pa.list_(pa.float32())),
        ("score", pa.int8()),
        ("training_pairs", pa.int32()),
        ("few_training_pairs", pa.bool_()),
        ("error", pa.string()),
    ]
)


def parquet_rows(out: dict) -> list[dict]:
    if "error" in out:
        return [
            {
                "review_id": out["review_id"],
                "aspect": None,
                "aspect_zh": None,
                "predicted_score": None,
                "probabilities": None,
                "score": None,
                "training_pairs": None,
                "few_training_pairs": None,
                "error": out["error"],
            }
        ]
    return [
        {
            "review_id": out["review_id"],
            "aspect": aspect,
            "aspect_zh": e["aspect_zh"],
            "predicted_score": e["predicted_score"],
            "probabilities": [float(p) for p in e["probabilities"].values()],
            "score": e.get("score"),
            "training_pairs": e["training_pairs"],
            "few_training_pairs": e["few_training_pairs"],
            "error": None,
        }
        for aspect, e in out["aspects"].items()
    ]


@contextlib.contextmanager
def jsonl_sink(out: str) -> Iterator[TextIO]:
    """stdout for '-', else a file that appears whole when everything was written."""
    if out == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    with atomic_path(out) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as handle:
        yield handle


def chunks(items: Iterator[Review], size: int) -> Iterator[list[Review]]:
    chunk: list[Review] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_predictions(
    args: argparse.Namespace,
    predictor: Predictor,
    reviews: Iterator[Review],
    total: int | None,
    aspects: list[str],
    notes: list[str],
    ckpt: dict,
) -> tuple[int, int, dict]:
    """Score every review and write the output (and the pages); (reviews, not predictable, the last output)."""
    parquet = args.out.endswith(".parquet")
    rows: list[dict] = []
    index: list[IndexEntry] = []
    done = failed = 0
    last: dict = {}
    with (
        contextlib.nullcontext() if parquet else jsonl_sink(args.out) as sink,
        tqdm(total=total, desc="predict", unit=" reviews", file=sys.stderr, disable=args.text is not None) as bar,
    ):
        for chunk in chunks(reviews, REVIEWS_PER_CHUNK):
            for last, view in predictor.run(chunk, aspects, explain=args.explain is not None):
                if parquet:
                    rows.extend(parquet_rows(last))
                else:
                    sink.write(json.dumps(last, ensure_ascii=False) + "\n")
                if view is not None:
                    view.notes = notes
                    write_review(view, args.explain)
                    index.append(index_entry(view))
                done += 1
                failed += "error" in last
            bar.update(len(chunk))
    if parquet:
        write_table(
            pa.Table.from_pylist(rows, schema=PREDICTIONS_SCHEMA),
            args.out,
            metadata={
                "class_scores": json.dumps(list(predictor.labels.class_scores)),
                "data_source": checkpoint_source(ckpt),
                "min_aspect_pairs": str(args.min_aspect_pairs),
            },
        )
    if args.explain is not None:
        write_index(index, args.explain, f"What {args.model} attended to", notes)
    return done, failed, last
