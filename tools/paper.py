"""The paper's Tables 2-4 as DVC experiments, run one at a time: python -m tools.paper -> reports/paper_tables.md.

    python -m tools.paper [--params params.yaml] [--dry-run] [--collect-only] [--out PATH]

Reads params.yaml's `paper` section (tables, rows, seeds, epoch budget, `as_paper`: the paper's training settings
on top of params.yaml for every paper row; `defaults_row`: the project's tuned MIMN as its own row). Each run of
the grid is one `dvc exp run --temp -S model.family=... -S model.hops=... -S model.variant=... -S train.seed=...
-S train.max_epochs=... [-S <as_paper>...]`, in the foreground, one after the other. A run that already has an
experiment with test metrics and exactly its params (tools/paper_grid.py) is not run again, so a rerun resumes
where an interrupted grid stopped and a finished grid runs nothing; one that failed, was interrupted or still
waits in DVC's queue runs again. Then `dvc exp show --json` is read and every row's test accuracy, weighted-F1
and macro-F1 (the headline keys of metrics/test.json) are averaged over the seeds beside the paper's figures,
with a verdict on each ranking the paper claims (tools/paper_report.py).

Why not DVC's queue (`dvc exp run --queue` + `--run-all`): its celery worker is a background process whose
monitor thread asks the worker every 10 s, with a 1 s reply timeout, whether it has tasks, and shuts it down when
no reply comes. On a busy machine (training on every core) a late reply reads as "queue empty": the worker exits
mid-grid, the rest stays queued and `--run-all` waits for a start that never comes (DVC's own trackers know it:
treeverse/dvc-task#77, treeverse/dvc#8165 and #10562). A worker killed for memory or by a closed session leaves
the same state. One foreground `dvc exp run --temp` per run has no such worker:
a failure is this command's exit status, the grid goes on with the next run, and a rerun picks up the rest. On
a machine where runs contend for the same cores, running them in parallel gains little.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import yaml

from common.atomic import write_text
from common.errors import UserError, cli_entry
from common.params import load_params
from tools.paper_grid import (
    DEFAULTS,
    PAPER,
    Plan,
    Run,
    base_params,
    experiment_results,
    first_sizes,
    missing_runs,
    plan_from_params,
)
from tools.paper_report import aggregate, render

# ---- running DVC ----------------------------------------------------------------------------------------


def _dvc(args: list[str], capture: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "dvc", *args]
    try:
        return subprocess.run(command, check=False, text=True, capture_output=capture)
    except OSError as exc:
        raise UserError(f"cannot run dvc ({exc}); install the project (make install)") from exc


def exp_show() -> list:
    proc = _dvc(["exp", "show", "--json"], capture=True)
    if proc.returncode != 0:
        raise UserError(
            f"dvc exp show failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
        )
    try:
        return json.loads(proc.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise UserError(f"dvc exp show --json printed no JSON ({exc})") from exc


def head_commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise UserError("not in a git repository with a commit: DVC experiments are based on one")
    return proc.stdout.strip()


def uncached_outputs(dvc_yaml: dict) -> list[str]:
    """The stage outputs (not metrics or plots) declared `cache: false`. DVC cannot restore them in an
    experiment's temporary workspace, so a stage with one (features' persistent cache) would run again in every
    experiment unless the file is copied in (`dvc exp run --temp -C`)."""
    paths = []
    for stage in (dvc_yaml.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if isinstance(out, dict):
                paths += [
                    path
                    for path, spec in out.items()
                    if isinstance(spec, dict) and spec.get("cache") is False and "${" not in path
                ]
    return sorted(paths)


PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./-]+")  # read by `-S` (Hydra's override grammar) as one plain string


def set_option(key: str, value: str) -> str:
    """`key=value` for `dvc exp run -S`, read back as exactly `value`: a value with other characters is quoted (else
    a comma would make DVC sweep over two values, brackets a list); one that quoting cannot carry is refused."""
    if PLAIN_VALUE.fullmatch(value):
        return f"{key}={value}"
    if any(c in value for c in "'\\$") or not value.isprintable():
        raise UserError(
            f"params.yaml: '{key}' {value!r} holds a quote, backslash, '$' or control character, which "
            "`dvc exp run -S` cannot pass on; move or link the folder to a plainer path"
        )
    return f"{key}='{value}'"


def absolute_release(params: dict, root: Path) -> tuple[dict, list[str]]:
    """(params, -S overrides) with a relative `multizol.release` made absolute. An experiment runs in a copy
    of the repository under .dvc/tmp/exps/, where a path such as ../shared/... points somewhere else."""
    release = (params.get("multizol") or {}).get("release")
    if not isinstance(release, str) or not release or Path(release).is_absolute():
        return params, []
    absolute = str((root / release).resolve())
    return (
        {**params, "multizol": {**params["multizol"], "release": absolute}},
        [set_option("multizol.release", absolute)],
    )


def assignment(key: str, value: object) -> str:
    """`key=value` for `dvc exp run -S`, read back as exactly `value` (a bool as true/false, a number as itself, a
    string that would read as another type, such as "true" or "3", quoted)."""
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"{key}={value!r}"
    text = str(value)
    if PLAIN_VALUE.fullmatch(text) and yaml.safe_load(text) != text:
        if any(c in text for c in "'\\$"):
            raise UserError(f"params.yaml: '{key}' {text!r} cannot be passed to `dvc exp run -S`")
        return f"{key}='{text}'"
    return set_option(key, text)


def run_args(run: Run, copy_paths: Iterable[str] = (), overrides: Iterable[str] = ()) -> list[str]:
    """`dvc exp run --temp` of one run: in a copy of the workspace under .dvc/tmp/exps, in the foreground."""
    sets = [assignment(key, value) for key, value in run.assignments()] + list(overrides)
    return [
        "exp",
        "run",
        "--temp",
        *[arg for s in sets for arg in ("-S", s)],
        *[arg for path in copy_paths for arg in ("-C", path)],
    ]


def run_grid(todo: list[Run], copy_paths: list[str], overrides: list[str]) -> list[Run]:
    """Each run as its own `dvc exp run --temp`, one after the other; the runs whose command failed (the grid goes
    on: a rerun of `make paper` tries them again)."""
    failed = []
    for number, run in enumerate(todo, 1):
        print(f"paper: run {number}/{len(todo)}: {run.describe()}", flush=True)
        try:
            code = _dvc(run_args(run, copy_paths, overrides)).returncode  # its output streams to the terminal
        except KeyboardInterrupt:
            raise UserError(f"interrupted in run {number}/{len(todo)}; `make paper` resumes with it") from None
        if code != 0:
            print(
                f"paper: run {number}/{len(todo)} failed ({run.describe()}); the grid goes on",
                file=sys.stderr,
                flush=True,
            )
            failed.append(run)
    return failed


def _still_queued(results: list[dict]) -> int:
    return sum(r["status"].lower() in ("queued", "running") and r["metrics"] is None for r in results)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.paper", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="parameter file (sections paper, model, ...)")
    parser.add_argument("--dry-run", action="store_true", help="print the dvc commands the grid needs, run nothing")
    parser.add_argument(
        "--collect-only", action="store_true", help="run nothing: write the tables from the experiments that exist"
    )
    parser.add_argument("--out", default=None, help="the report (default: paper.out)")
    return parser.parse_args(argv)


def copied_outputs() -> list[str]:
    """The uncached outputs of dvc.yaml that exist here, copied into every experiment (uncached_outputs)."""
    dvc_yaml = Path("dvc.yaml")
    if not dvc_yaml.is_file():
        return []
    declared = uncached_outputs(yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {})
    return [p for p in declared if Path(p).exists()]


def write_report(plan: Plan, out: Path, commit: str) -> int:
    """reports/paper_tables.md from the experiments there are now; the number of runs still without metrics."""
    skipped: list[str] = []
    results = experiment_results(exp_show(), skipped)
    for why in skipped:
        print(f"paper: experiment left out: {why}", file=sys.stderr)
    missing = len(missing_runs(plan, results))
    paper_params = next((r.expected_params(plan.base) for r in plan.runs if r.profile == PAPER), plan.base)
    defaults_params = next((r.expected_params(plan.base) for r in plan.runs if r.profile == DEFAULTS), plan.base)
    sizes = first_sizes(results, plan)
    report = render(plan, aggregate(plan, results), paper_params, defaults_params, sizes, commit, missing, skipped)
    write_text(report, out)
    print(f"paper: {len(plan.runs) - missing}/{len(plan.runs)} runs with test metrics -> {out}")
    return missing


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = load_params(None, args.params)
    if "paper" not in params:
        raise UserError(f"{args.params} has no 'paper' section; add it (see docs/paper-tables-multizol-public.md)")
    params, overrides = absolute_release(params, Path.cwd())
    plan = plan_from_params(params["paper"], params.get("model") or {}, base_params(params))
    out = Path(args.out) if args.out else plan.out
    commit = head_commit()
    copy_paths = copied_outputs()
    results = experiment_results(exp_show(), [])
    todo = missing_runs(plan, results)
    print(
        f"paper: {len(plan.runs)} runs in the grid ({len(plan.rows)} rows × {len(plan.seeds)} seeds, shared rows "
        f"once), {len(plan.runs) - len(todo)} already done, {len(todo)} to run",
        flush=True,
    )
    if _still_queued(results):
        print(
            f"paper: {_still_queued(results)} experiment(s) wait in DVC's queue; the grid runs its own in the "
            "foreground (`dvc queue remove --queued` clears the queue)",
            flush=True,
        )
    if args.dry_run:
        for run in todo:
            print("dvc " + " ".join(run_args(run, copy_paths, overrides)))
        return 0
    failed_now = run_grid(todo, copy_paths, overrides) if todo and not args.collect_only else []
    write_report(plan, out, commit)
    if failed_now:
        raise UserError(f"{len(failed_now)} run(s) failed (their output is above); `make paper` runs them again")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
