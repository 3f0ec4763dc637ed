"""Drift measured, not guessed: the share of a crawl's written reviews that carry each field, per review format
(`layout`), and the fields each format always carries. A required field below `crawl.min_field_coverage` is layout
drift: a change of markup that empties a field (the 2026 short text read by the 2018 parser) cannot pass unseen."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

COVERAGE_FIELDS = ("text", "scores", "overall", "images", "author", "date")
# what every review of a format carries on the real pages (docs/zol-site.md); images never are
REQUIRED_FIELDS = {
    "2018": ("text", "scores", "overall", "author", "date"),
    "2026-scored": ("text", "scores", "overall", "author", "date"),
    "2026-short": ("text", "overall", "author", "date"),
}
TEXT_FIELDS = ("title", "pros", "cons", "summary", "body")


def _has(record: dict[str, Any], name: str) -> bool:
    if name == "text":
        return any(isinstance(record.get(f), str) and record[f].strip() for f in TEXT_FIELDS[1:])
    value = {
        "scores": record.get("scores"),
        "overall": record.get("overall_score"),
        "images": record.get("image_urls"),
        "author": record.get("author"),
        "date": record.get("published"),
    }[name]
    return value not in (None, "", [], {})


def reviews_by_layout(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        layout = str(record.get("layout") or "unknown")
        counts[layout] = counts.get(layout, 0) + 1
    return dict(sorted(counts.items()))


def field_coverage(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """layout -> field -> share of that layout's reviews carrying the field (4 decimals). `text` is any of pros,
    cons, summary, body (a title alone is not a review's text)."""
    present: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for record in records:
        layout = str(record.get("layout") or "unknown")
        totals[layout] = totals.get(layout, 0) + 1
        counts = present.setdefault(layout, dict.fromkeys(COVERAGE_FIELDS, 0))
        for name in COVERAGE_FIELDS:
            counts[name] += _has(record, name)
    return {
        layout: {name: round(counts[name] / totals[layout], 4) for name in COVERAGE_FIELDS}
        for layout, counts in sorted(present.items())
    }


def coverage_drift(coverage: dict[str, dict[str, float]], minimum: float) -> list[str]:
    """`<layout>.<field> <share>` for each field a layout always carries that falls below `minimum`."""
    return [
        f"{layout}.{name} {shares[name]:.2f}"
        for layout, shares in coverage.items()
        for name in REQUIRED_FIELDS.get(layout, ())
        if shares[name] < minimum
    ]
