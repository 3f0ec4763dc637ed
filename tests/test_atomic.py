"""common/atomic.py: a folder output is swapped in whole, and a kill at the worst moment loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from common import atomic
from common.atomic import atomic_dir, remove_leftovers, replace_dir

REPO = Path(__file__).resolve().parents[1]

# Replaces `target` through atomic_dir with the two-rename fallback (as on a system without renameat2) and
# SIGKILLs itself right after the first rename: the old folder is parked, the new one not yet in place.
KILLED_BETWEEN_RENAMES = textwrap.dedent("""
    import os, signal, sys
    from common import atomic
    atomic.exchange_paths = lambda first, second: False
    real_replace = os.replace
    def replace_then_die(src, dst):
        real_replace(src, dst)
        os.kill(os.getpid(), signal.SIGKILL)
    with atomic.atomic_dir(sys.argv[1]) as staging:
        (staging / "data.txt").write_text("new")
        os.replace = replace_then_die
""")


def _folder(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "data.txt").write_text(text)
    return path


def _kill_between_renames(target: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILLED_BETWEEN_RENAMES, str(target)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert not target.exists()  # the window the fix closes: neither the old nor the new folder in place


def test_kill_between_the_renames_the_next_run_gets_the_old_folder_back(tmp_path: Path):
    target = _folder(tmp_path / "splits", "old")
    _kill_between_renames(target)
    remove_leftovers(target)  # what every stage does first
    assert (target / "data.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["splits"]  # the killed run's staging folder is gone
    with atomic_dir(target) as staging:
        (staging / "data.txt").write_text("newer")
    assert (target / "data.txt").read_text() == "newer" and [p.name for p in tmp_path.iterdir()] == ["splits"]


def test_kill_between_the_renames_replace_dir_alone_recovers(tmp_path: Path):
    """The crawl and evaluate call replace_dir without remove_leftovers: it restores first, then replaces."""
    target = _folder(tmp_path / "out", "old")
    _kill_between_renames(target)
    built = _folder(tmp_path / "built", "newer")
    replace_dir(built, target)
    assert (target / "data.txt").read_text() == "newer" and not (tmp_path / ".out.old.tmp").exists()


@pytest.mark.skipif(
    getattr(atomic, "_RENAMEAT2", "before the fix") is None,
    reason="no renameat2 in this C library: the fallback is used",
)
def test_replace_dir_exchanges_in_one_step(tmp_path: Path, monkeypatch):
    """Where renameat2 exists there is no moment without the folder: no rename of `target` away at all."""
    target, built = _folder(tmp_path / "out", "old"), _folder(tmp_path / "built", "new")
    real_replace = os.replace

    def refuse_moving_target(src, dst, *args, **kwargs):
        assert Path(src) != target, "target renamed away: a kill now would leave no folder"
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", refuse_moving_target)
    replace_dir(built, target)
    assert (target / "data.txt").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_replace_dir_into_a_new_folder_and_over_a_file(tmp_path: Path):
    replace_dir(_folder(tmp_path / "built", "new"), tmp_path / "fresh")
    assert (tmp_path / "fresh" / "data.txt").read_text() == "new"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        replace_dir(_folder(tmp_path / "built2", "new"), tmp_path / "file")
