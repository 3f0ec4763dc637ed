"""The Makefile explains itself: a missing interpreter or a venv built with another one is one line, `make run`
checks params.yaml before DVC runs, `make shell` opens a shell with the venv on PATH. Every test points VENV at a
temporary folder (a fake venv, or a small real one without pip): the project's .venv is never touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IDENTITY = "import os, sys; print(os.path.realpath(sys.base_prefix), sys.version.split()[0])"  # the Makefile's

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")


def _make(*args: str, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PYTHON", "VENV")}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO,
        env={**clean, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _fake_venv(root: Path, answer: str) -> Path:
    """A venv whose bin/python is a script: `answer` is what it prints (or, for "fail", it exits 1)."""
    venv = root / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin/python"
    python.write_text("#!/bin/sh\nexit 1\n" if answer == "fail" else f"#!/bin/sh\necho '{answer}'\n")
    python.chmod(0o755)
    return venv


def _identity(python: str) -> str:
    return subprocess.run([python, "-c", IDENTITY], capture_output=True, text=True, check=True).stdout.strip()


def _error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2 and done.stdout == "", done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_missing_interpreter_is_one_line(tmp_path) -> None:
    done = _make("run", f"VENV={tmp_path / 'venv'}", env={"PYTHON": "python3.99"})  # as `PYTHON=python3.99 make run`
    line = _error_line(done)
    assert "PYTHON=python3.99 does not run here" in line and "install Python 3.11" in line
    assert "not found" not in line and not (tmp_path / "venv").exists()


def test_a_venv_of_another_interpreter_is_refused_with_the_fix(tmp_path) -> None:
    venv = _fake_venv(tmp_path, "/opt/python-3.12 3.12.9")
    line = _error_line(_make("-n", "run", f"VENV={venv}", f"PYTHON={sys.executable}"))
    mine = _identity(sys.executable).split()
    assert (
        f"{venv} was built with Python 3.12.9 of /opt/python-3.12, not with PYTHON={sys.executable} "
        f"(Python {mine[1]} of {mine[0]})" in line
    )
    assert f"rm -rf {venv}" in line


def test_a_venv_whose_interpreter_no_longer_runs_is_refused(tmp_path) -> None:
    venv = _fake_venv(tmp_path, "fail")
    line = _error_line(_make("-n", "test", f"VENV={venv}", f"PYTHON={sys.executable}"))
    assert "was built with an interpreter that no longer runs" in line and f"rm -rf {venv}" in line


def test_run_checks_the_params_before_dvc_repro(tmp_path) -> None:
    venv = _fake_venv(tmp_path, _identity(sys.executable))
    done = _make("-n", "run", f"VENV={venv}", f"PYTHON={sys.executable}")
    assert done.returncode == 0, done.stderr
    commands = done.stdout.splitlines()
    assert f"{venv}/bin/python -m pip install -q -e '.[test]'" in commands  # installs into VENV, nothing else
    check = commands.index(f"PATH={venv}/bin:$PATH python -m checks.params")
    assert commands.index(f"PATH={venv}/bin:$PATH dvc repro") == check + 1
    assert sorted(p.name for p in venv.rglob("*")) == ["bin", "python"]  # -n ran nothing


def test_help_lists_shell() -> None:
    done = _make("help")
    assert done.returncode == 0
    assert any(line.startswith("shell\t") for line in done.stdout.splitlines())


@pytest.mark.skipif(shutil.which("bash") is None, reason="make shell runs bash")
def test_shell_has_the_venv_on_path(tmp_path) -> None:
    base = getattr(sys, "_base_executable", sys.executable)  # the interpreter this test's venv was built from
    venv = tmp_path / "venv"
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    dvc = venv / "bin/dvc"  # stands for the installed one: this venv has no packages
    dvc.write_text("#!/bin/sh\necho stub\n")
    dvc.chmod(0o755)
    (venv / ".installed-stamp").touch()  # newer than pyproject.toml: nothing to install
    done = _make("shell", f"VENV={venv}", f"PYTHON={base}", stdin='command -v dvc\necho "$VIRTUAL_ENV"\n')
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(dvc), str(venv)]
