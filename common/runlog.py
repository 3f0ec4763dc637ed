"""Run logs: timings and throughput of a stage's last run, kept out of the DVC-tracked metrics.

Timings differ on every run, so a metrics file holding them would never be byte-stable; `logs/<stage>.json`
(git-ignored, not a DVC output) keeps them for whoever wants to look.
"""

from __future__ import annotations

from pathlib import Path

from common.atomic import write_json

DEFAULT_LOG_DIR = Path("logs")


def write_run_log(stage: str, record: dict, log_dir: str | Path = DEFAULT_LOG_DIR) -> Path:
    """Write `record` to `<log_dir>/<stage>.json` atomically (replacing the last run's); return the path."""
    path = Path(log_dir) / f"{stage}.json"
    write_json(record, path)
    return path
