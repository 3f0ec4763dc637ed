"""The clean stage's counts: what it read, dropped and kept (metrics/clean.json, reports/clean_detail.json)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class CleanStats:
    records_in: int = 0
    blank_lines: int = 0
    images_ok: int = 0
    images_missing: int = 0
    images_undecodable: int = 0
    rejected_records: Counter = field(default_factory=Counter)
    rejected_pairs: Counter = field(default_factory=Counter)


@dataclass
class PairTally:
    """The metrics' counts over the kept pairs, taken as they stream out (no pair is held)."""

    pairs: int = 0
    reviews: int = 0
    text_only_reviews: int = 0
    presegmented_reviews: int = 0
    by_aspect: Counter = field(default_factory=Counter)
    by_label: Counter = field(default_factory=Counter)

    def add_review(self, pairs: list[dict]) -> None:
        """The pairs of one kept review (none: the review gave no pair)."""
        if not pairs:
            return
        self.pairs += len(pairs)
        self.reviews += 1
        self.text_only_reviews += pairs[0]["n_images"] == 0
        self.presegmented_reviews += bool(pairs[0]["presegmented"])
        self.by_aspect.update(pair["aspect"] for pair in pairs)
        self.by_label.update(pair["label"] for pair in pairs)


def clean_metrics(stats: CleanStats, tally: PairTally) -> dict:
    return {
        "records_in": stats.records_in,
        "blank_lines": stats.blank_lines,
        "pairs_out": tally.pairs,
        "reviews_out": tally.reviews,
        "text_only_reviews_out": tally.text_only_reviews,
        "rejected_records_by_reason": dict(sorted(stats.rejected_records.items())),
        "rejected_pairs_by_reason": dict(sorted(stats.rejected_pairs.items())),
        "pairs_by_aspect": dict(sorted(tally.by_aspect.items())),
        "label_histogram": {str(label): tally.by_label[label] for label in range(10)},
        "presegmented_reviews_out": tally.presegmented_reviews,
        "images": {"usable": stats.images_ok, "missing": stats.images_missing, "undecodable": stats.images_undecodable},
    }
