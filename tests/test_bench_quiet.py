"""bench/quiet.py tells a benchmark's own work from other processes' work: a child process that burns CPU and is
waited for counts as the benchmark's, a process left running beside it counts as another's load."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("quiet", Path(__file__).resolve().parents[1] / "bench" / "quiet.py")
quiet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quiet)  # bench/ is scripts, not an installed package
OtherLoad = quiet.OtherLoad

BURN = "import time\nend = time.perf_counter() + {seconds}\nwhile time.perf_counter() < end: pass\n"


def test_own_child_work_is_not_counted_as_load():
    with OtherLoad(max_other_cores=0.5) as load:
        subprocess.run([sys.executable, "-c", BURN.format(seconds=1.5)], check=True)
    record = load.record()
    assert record["other_cpu_cores"] < 0.5 and record["loaded"] is False
    assert record["load_1min_before"] >= 0 and record["load_1min_after"] >= 0


def test_a_process_running_beside_the_measurement_is_load():
    neighbour = subprocess.Popen([sys.executable, "-c", BURN.format(seconds=30)])
    try:
        time.sleep(0.3)  # the interpreter's start-up
        with OtherLoad(max_other_cores=0.5) as load:
            time.sleep(1.5)
    finally:
        neighbour.kill()
        neighbour.wait()
    record = load.record()
    assert record["other_cpu_cores"] > 0.7 and record["loaded"] is True


def test_record_before_the_block_ends_is_an_error():
    with pytest.raises(RuntimeError, match="before the measured block ended"):
        OtherLoad().record()
