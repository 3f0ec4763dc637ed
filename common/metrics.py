"""A stage's counts in two files: a few headline numbers in metrics/<stage>.json, all of them in
reports/<stage>_detail.json.

`dvc metrics show` prints every metrics file of the pipeline in one table, a row per file and a column per key of
all of them together, nested keys flattened: per-aspect, per-class and per-reason counts made its lines thousands of
characters wide. So a metrics file holds flat headline numbers only, named alike where they mean the same (`pairs`,
`train_pairs`, ...) so that files share columns; the stage's full counts are a DVC output of the stage beside its
other reports.
"""

from __future__ import annotations

from pathlib import Path

from common.atomic import remove_leftovers, write_json

REPORTS_DIR = Path("reports")


def detail_path(stage: str) -> Path:
    """Where a stage's full counts go: reports/<stage>_detail.json."""
    return REPORTS_DIR / f"{stage}_detail.json"


def write_metrics(headline: dict, detail: dict, metrics_path: str | Path, detail_file: str | Path) -> None:
    """The headline numbers to `metrics_path`, the full counts to `detail_file`."""
    nested = sorted(key for key, value in headline.items() if isinstance(value, (dict, list, tuple)))
    if nested:
        raise ValueError(f"headline metrics must be flat, {nested} are not: put them in the detail file")
    for path in (metrics_path, detail_file):
        remove_leftovers(path)
    write_json(detail, detail_file)
    write_json(headline, metrics_path)
