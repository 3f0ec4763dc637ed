"""Was the machine quiet while a benchmark measured? The CPU that everything else used, and the load average.

The 1-minute load average alone cannot tell: a benchmark's own work raises it (a stage on one core leaves it
near 1 for a minute after), so a quiet machine reads as loaded and the round after a busy one too. What a
benchmark needs is the CPU that *other* processes took while it measured: the machine's busy CPU seconds
(/proc/stat through psutil) minus this process's and its waited-for children's (getrusage), per wall second.
Both are recorded; `loaded` is decided by the other processes' share.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from pathlib import Path

import psutil

# A round is flagged when other processes kept more than this many cores busy on average while it ran: a
# quarter of a core is well above what an idle machine's daemons take (a few hundredths) and well below one
# competing job.
MAX_OTHER_CORES = 0.25


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (every core; idle and I/O wait excluded)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0) + getattr(t, "steal", 0.0)


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of the children it has waited for (their own children included)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class OtherLoad:
    """Context manager around one measurement; `record()` afterwards gives the load average before and after, the
    cores other processes kept busy on average meanwhile, and `loaded` when that exceeds `max_other_cores`.
    Children must have been waited for before the block ends, or their CPU counts as someone else's."""

    def __init__(self, max_other_cores: float = MAX_OTHER_CORES) -> None:
        self.max_other_cores = max_other_cores
        self._record: dict | None = None

    def __enter__(self) -> OtherLoad:
        self._load = os.getloadavg()[0]
        self._wall, self._busy, self._own = time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds()
        return self

    def __exit__(self, *exc_info: object) -> None:
        wall = max(time.perf_counter() - self._wall, 1e-9)
        others = (busy_cpu_seconds() - self._busy) - (own_cpu_seconds() - self._own)
        other_cores = max(others, 0.0) / wall
        self._record = {
            "load_1min_before": round(self._load, 2),
            "load_1min_after": round(os.getloadavg()[0], 2),
            "other_cpu_cores": round(other_cores, 3),
            "loaded": other_cores > self.max_other_cores,
        }

    def record(self) -> dict:
        if self._record is None:
            raise RuntimeError("OtherLoad.record() before the measured block ended")
        return dict(self._record)


def run_commit(repo: Path | None = None) -> str:
    """The short hash of the commit a benchmark measured (recorded beside its figures), with "+changes" when tracked
    files differ from it (the figures are then of code no commit holds); empty outside git."""
    cwd = repo or Path(__file__).parent
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, check=False)
    if head.returncode != 0:
        return ""
    changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=cwd, capture_output=True, check=False)
    return head.stdout.strip() + ("+changes" if changed.returncode == 1 else "")


def measured_child(command: list[str], cwd: Path | None = None) -> dict:
    """Run a benchmark's child process (its peak RSS its own), whose last stdout line is its JSON record; that
    record with the others' load while it ran. A failed child ends the benchmark with its stderr."""
    with OtherLoad() as load:
        done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command[1:])} failed:\n{done.stderr}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load": load.record()}
