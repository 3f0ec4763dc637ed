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


def _other_cores_while(block) -> dict:
    with OtherLoad(max_other_cores=0.4) as load:
        block()
    return load.record()


def test_own_child_work_is_not_counted_as_load():
    """Against the machine's other work measured just before (the suite may run beside other jobs): a child
    burning a core for 1.5 s adds nothing to the others' share; counted as another's it would add a whole core."""
    baseline = _other_cores_while(lambda: time.sleep(1.5))
    record = _other_cores_while(lambda: subprocess.run([sys.executable, "-c", BURN.format(seconds=1.5)], check=True))
    assert record["other_cpu_cores"] < baseline["other_cpu_cores"] + 0.5
    assert record["load_1min_before"] >= 0 and record["load_1min_after"] >= 0


def test_a_process_running_beside_the_measurement_is_load():
    neighbour = subprocess.Popen([sys.executable, "-c", BURN.format(seconds=30)])
    try:
        time.sleep(0.3)  # the interpreter's start-up
        record = _other_cores_while(lambda: time.sleep(1.5))
    finally:
        neighbour.kill()
        neighbour.wait()
    # the neighbour alone keeps a core busy; with other jobs beside it on 2 cores it still gets half of one
    assert record["other_cpu_cores"] > 0.45 and record["loaded"] is True


def test_record_before_the_block_ends_is_an_error():
    with pytest.raises(RuntimeError, match="before the measured block ended"):
        OtherLoad().record()


def test_the_commit_recorded_says_when_the_measured_code_is_not_the_commits(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    assert quiet.run_commit(tmp_path) == ""  # not a repository
    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = quiet.run_commit(tmp_path)
    assert len(head) >= 7 and "+" not in head
    (tmp_path / "notes.txt").write_text("untracked files are not the measured code\n")
    assert quiet.run_commit(tmp_path) == head
    (tmp_path / "code.py").write_text("x = 2\n")
    assert quiet.run_commit(tmp_path) == head + "+changes"


def test_a_measured_child_gives_its_json_record_with_the_load_and_a_failure_its_stderr():
    record = quiet.measured_child([sys.executable, "-c", "print('warming up'); print('{\"rate\": 2.5}')"])
    assert record["rate"] == 2.5 and set(record["load"]) >= {"other_cpu_cores", "loaded"}
    with pytest.raises(SystemExit, match="no such measurement"):
        quiet.measured_child([sys.executable, "-c", "import sys; sys.exit('no such measurement')"])
