"""What a model was trained on: its data source and how many training pairs each aspect had.

The train stage stores both in the checkpoint (`data_source`, `aspect_train_pairs`); predict and its explain
pages read them back so that they can say when scores mean little: a model trained on the generated sample
(synthetic text from a phrase table) knows nothing of real reviews, and an aspect seen in a handful of pairs
is scored as confidently as the others. Checkpoints written before these fields existed read as "unknown".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

SAMPLE, CRAWL, MULTIZOL, UNKNOWN = "sample", "crawl", "multizol", "unknown"
DEFAULT_MIN_ASPECT_PAIRS = 30  # fewer training pairs than this: the aspect's scores are marked

SOURCE_NOTES = {
    SAMPLE: "trained on the generated offline sample (synthetic text from a phrase table): its scores mean nothing "
    "for real reviews",
    CRAWL: "trained on a crawl of zol.com.cn",
    MULTIZOL: "trained on the Multi-ZOL release",
    UNKNOWN: "training data unknown (the checkpoint predates the record of its data source)",
}


def data_source(params: dict) -> str:
    """sample | crawl | multizol | unknown, from params.yaml's `data.raw` and the crawl's mirror: the raw reviews
    are the crawl's output, and the crawl read the generated sample site (`crawl.mirror` is `sample.out`)."""
    data_raw = str((params.get("data") or {}).get("raw") or "")
    crawl, sample = params.get("crawl") or {}, params.get("sample") or {}
    if "multizol" in data_raw.lower():
        return MULTIZOL
    if data_raw and data_raw == crawl.get("out"):
        mirror = crawl.get("mirror")
        return SAMPLE if mirror and mirror == sample.get("out") else CRAWL
    return UNKNOWN


def aspect_pair_counts(aspects: Iterable[str]) -> dict[str, int]:
    """aspect -> number of training pairs, sorted by aspect."""
    return dict(sorted(Counter(str(a) for a in aspects).items()))


def checkpoint_source(ckpt: dict) -> str:
    source = ckpt.get("data_source")
    return source if source in SOURCE_NOTES else UNKNOWN


def checkpoint_aspect_pairs(ckpt: dict) -> dict[str, int] | None:
    """aspect -> training pairs, or None when the checkpoint does not record them (or records nonsense)."""
    counts = ckpt.get("aspect_train_pairs")
    if not isinstance(counts, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in counts.items()
    ):
        return None
    return counts


def few_pairs(counts: dict[str, int] | None, aspect: str, threshold: int) -> bool | None:
    """Whether the model saw fewer than `threshold` training pairs of `aspect` (None: not recorded)."""
    return None if counts is None else counts.get(aspect, 0) < threshold


def model_notes(ckpt: dict, aspects: list[str], counts: dict[str, int] | None, threshold: int) -> list[str]:
    """What the user must know before reading the scores: the training data, and aspects with too few pairs."""
    source = checkpoint_source(ckpt)
    notes = [
        SOURCE_NOTES[source]
        if source == UNKNOWN
        else ("warning: " if source == SAMPLE else "") + "the model was " + SOURCE_NOTES[source]
    ]
    if counts is None:
        notes.append("training pairs per aspect: unknown (the checkpoint predates their record)")
    else:
        few = [f"{a} ({counts.get(a, 0)})" for a in aspects if counts.get(a, 0) < threshold]
        if few:
            notes.append(
                f"few training pairs (< {threshold}, --min-aspect-pairs), scores mean little: {', '.join(few)}"
            )
    return notes
