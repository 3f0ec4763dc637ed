"""Every `dvc repro` / `dvc checkout` a message, comment or Makefile tells the user to type names stages that exist,
and a failed crawl tells the truth about its output under DVC as well as by hand."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from crawler.staging import previous_output_note

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "crawler", "sitegen", "pipeline", "model", "checks", "bench")
HINT_SOURCES = [
    *(path for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))),
    REPO / "params.yaml",
    REPO / "Makefile",
    REPO / "dvc.yaml",
    *sorted(REPO.glob("sources/*/dvc.yaml")),
]
# `dvc repro [-f] TARGET...` or `dvc checkout TARGET...`: targets run until a character no stage address holds
HINT_RE = re.compile(r"dvc (repro|checkout)((?: -f)?(?: [\w./:-]+)*)")


def _hints() -> list[tuple[str, str]]:
    found = []
    for path in HINT_SOURCES:
        for match in HINT_RE.finditer(path.read_text(encoding="utf-8")):
            targets = [t for t in match.group(2).split() if t != "-f"]
            found += [(f"{path.relative_to(REPO)}: {match.group(0)}", target) for target in targets]
    return found


def _stages(dvc_file: str) -> set[str]:
    return set(yaml.safe_load((REPO / dvc_file).read_text(encoding="utf-8"))["stages"])


def test_the_hints_are_found() -> None:
    """The scan sees the hints this test exists for (a broken pattern would pass every hint vacuously)."""
    targets = {target for _, target in _hints()}
    assert {
        "sources/zol/dvc.yaml:crawl",
        "sources/zol/dvc.yaml:sample_site",
        "sources/multizol/dvc.yaml:import",
        "features",
        "train",
        "segment",
    } <= targets


@pytest.mark.parametrize("where, target", _hints())
def test_every_hinted_stage_exists(where: str, target: str) -> None:
    """A bare name is a stage of the root dvc.yaml (dvc repro looks nowhere else); a stage of another file is
    addressed as path:name."""
    dvc_file, _, name = target.rpartition(":") if ":" in target else ("dvc.yaml", "", target)
    assert (REPO / dvc_file).is_file(), f"{where}: {dvc_file} does not exist"
    assert name in _stages(dvc_file), f"{where}: no stage {name!r} in {dvc_file}"


def test_a_failed_crawl_names_its_output_truthfully(monkeypatch) -> None:
    out = Path("/data/raw/zol")
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert previous_output_note(out) == f"{out} left unchanged"
    monkeypatch.setenv("DVC_STAGE", "sources/zol/dvc.yaml:crawl")
    note = previous_output_note(out)
    assert "left unchanged" not in note
    assert "DVC removed /data/raw/zol" in note and "`dvc checkout sources/zol/dvc.yaml:crawl`" in note


@pytest.mark.slow
def test_dvc_removes_a_stage_output_and_names_the_stage_before_the_command_runs(tmp_path) -> None:
    """What previous_output_note relies on, asked of DVC itself: a stage of sources/zol/dvc.yaml (wdir ../..) runs
    with DVC_STAGE = sources/zol/dvc.yaml:crawl, its output already deleted; `dvc checkout` of that address brings
    the recorded output back."""
    (tmp_path / "sources/zol").mkdir(parents=True)
    (tmp_path / "sources/zol/dvc.yaml").write_text(
        textwrap.dedent(f"""\
        stages:
          crawl:
            wdir: ../..
            cmd: {sys.executable} probe.py
            deps: [probe.py]
            outs: [out]
        """),
        encoding="utf-8",
    )
    (tmp_path / "probe.py").write_text(
        textwrap.dedent("""\
        import os, pathlib
        seen = f"{os.environ.get('DVC_STAGE')} {pathlib.Path('out').exists()}"
        pathlib.Path('out').mkdir()
        pathlib.Path('out/seen.txt').write_text(seen)
        """),
        encoding="utf-8",
    )
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    env.pop("DVC_STAGE", None)

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True)

    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("dvc", "repro", "sources/zol/dvc.yaml:crawl")
    assert (tmp_path / "out/seen.txt").read_text() == "sources/zol/dvc.yaml:crawl False"
    (tmp_path / "out/seen.txt").write_text("stale")  # a second run: the output exists when dvc repro starts
    run("dvc", "repro", "-f", "sources/zol/dvc.yaml:crawl")
    assert (tmp_path / "out/seen.txt").read_text() == "sources/zol/dvc.yaml:crawl False"
    run("rm", "-r", "out")
    run("dvc", "checkout", "sources/zol/dvc.yaml:crawl")
    assert (tmp_path / "out/seen.txt").read_text() == "sources/zol/dvc.yaml:crawl False"
