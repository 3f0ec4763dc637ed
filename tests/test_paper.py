"""python -m model.paper: the grid from params, reading `dvc exp show --json` (a fixed copy of a real one), the
mean ± std per row beside the paper's figures; and, slow, a tiny real grid queued and run by DVC on the sample."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from common.errors import UserError
from model import paper
from model.families import FAMILIES

REPO = Path(__file__).resolve().parents[1]
EXP_SHOW = json.loads((REPO / "tests/fixtures/paper/exp_show.json").read_text(encoding="utf-8"))


def params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


def tiny_plan(**overrides) -> paper.Plan:
    section = {**params()["paper"], "tables": [2], "families": ["lstm", "memnet", "mimn"], "seeds": [1, 2],
               "max_epochs": 1, **overrides}
    workspace = EXP_SHOW[0]["data"]["params"]["params.yaml"]["data"]   # the params the fixture's runs share
    return paper.plan_from_params(section, {"hops": 3}, paper.fixed_params(workspace))


def test_the_default_grid_is_the_papers_three_tables_with_shared_rows_run_once():
    plan = paper.plan_from_params(params()["paper"], params()["model"])
    assert [r.table for r in plan.rows] == [2] * 7 + [3] * 5 + [4] * 4
    assert {r.setting.family for r in plan.rows if r.table == 2} == set(FAMILIES)
    assert {r.setting for r in plan.rows if r.table == 3} == {paper.Setting("mimn", h, "mimn") for h in range(1, 6)}
    assert {r.setting.variant for r in plan.rows if r.table == 4} == {"mimn", "self", "text2img", "img2text"}
    # MIMN with 3 hops is a row of all three tables, but runs once per seed: 14 settings
    assert len(plan.runs) == 14 * len(plan.seeds) and len(set(plan.runs)) == len(plan.runs)
    mimn = next(r for r in plan.rows if r.table == 2 and r.setting.family == "mimn")
    assert (mimn.paper_accuracy, mimn.paper_f1) == (61.59, 60.51)
    assert {(r.paper_accuracy, r.paper_f1) for r in plan.rows if r.setting == mimn.setting} == {(61.59, 60.51)}


@pytest.mark.parametrize("override, message", [
    ({"tables": [1]}, "paper.tables"), ({"families": ["bert"]}, "paper.families"), ({"hops": [6]}, "paper.hops"),
    ({"seeds": []}, "paper.seeds"), ({"variants": ["both"]}, "paper.variants"), ({"max_epochs": 0}, "max_epochs"),
])
def test_a_bad_paper_section_is_a_clear_error(override, message):
    with pytest.raises(UserError, match=message):
        tiny_plan(**override)


def test_queue_command_sets_every_param_of_the_run():
    run = paper.Run(paper.Setting("ram", 3, "mimn"), 2, 5)
    assert paper.queue_args(run, ["data/features/cache.parquet"]) == [
        "exp", "run", "--queue", "-S", "model.family=ram", "-S", "model.hops=3", "-S", "model.variant=mimn",
        "-S", "train.seed=2", "-S", "train.max_epochs=5", "-C", "data/features/cache.parquet"]


def test_a_release_outside_the_repository_is_made_absolute_for_queued_experiments(tmp_path):
    """A queued experiment runs in a copy under .dvc/tmp/exps/: ../shared/... would point elsewhere there."""
    root = tmp_path / "repo"
    params = {"multizol": {"release": "../shared/data/multizol-public", "format": "auto"}, "model": {"hops": 3}}
    fixed, overrides = paper.absolute_release(params, root)
    release = str((tmp_path / "shared/data/multizol-public").resolve())
    assert fixed["multizol"] == {"release": release, "format": "auto"} and fixed["model"] == {"hops": 3}
    assert overrides == [f"multizol.release={release}"]
    assert params["multizol"]["release"] == "../shared/data/multizol-public"   # the caller's dict is left alone
    run = paper.Run(paper.Setting("mimn", 3, "mimn"), 1, 2)
    assert paper.queue_args(run, [], overrides)[-2:] == ["-S", f"multizol.release={release}"]
    for absolute in ({"multizol": {"release": "/data/mz"}}, {"model": {}}):
        assert paper.absolute_release(absolute, root) == (absolute, [])


def test_uncached_outputs_of_the_pipeline_are_copied_into_experiments():
    stage = {"outs": ["data/a.parquet", {"data/b.parquet": {"persist": True, "cache": False}}],
             "metrics": [{"metrics/x.json": {"cache": False}}]}
    assert paper.uncached_outputs({"stages": {"s": stage}}) == ["data/b.parquet"]
    # the features cache is a cached persistent output: experiments restore it from DVC's cache, nothing to copy
    dvc_yaml = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
    assert paper.uncached_outputs(dvc_yaml) == []


def test_experiment_results_read_every_experiment_and_only_experiments():
    results = paper.experiment_results(EXP_SHOW)
    assert len(results) == 8   # the workspace and the baseline commit are not experiments
    by_name = {r["name"]: r for r in results}
    assert by_name["failed-memnet"]["metrics"] is None
    assert by_name["five-epochs"]["max_epochs"] == 5
    assert {r["setting"] for r in results} == {paper.Setting("lstm", 3, "mimn"), paper.Setting("mimn", 3, "mimn"),
                                               paper.Setting("memnet", 3, "mimn")}


def test_rows_average_the_newest_run_of_each_seed():
    plan = tiny_plan()
    results = paper.experiment_results(EXP_SHOW)
    rows = {r["label"]: r for r in paper.aggregate(plan, results)}
    lstm, mimn, memnet = rows["LSTM"], rows["MIMN"], rows["MemNet"]
    assert lstm["runs"] == 2 and lstm["seeds"] == [1, 2]
    assert lstm["accuracy"] == pytest.approx((55.0, 7.0710678))           # 0.5 and 0.6; not the 5-epoch 0.9
    assert lstm["weighted_f1"] == pytest.approx((45.0, 7.0710678))       # not the newer run with another lr
    assert mimn["accuracy"] == pytest.approx((75.0, 7.0710678))           # the older 0.1 run of seed 2 is ignored
    assert mimn["macro_f1"] == pytest.approx((45.0, 7.0710678))
    assert memnet["runs"] == 0 and memnet["accuracy"] is None            # its only run failed
    assert [r.setting.family for r in paper.missing_runs(plan, results)] == ["memnet", "memnet"]


def test_report_puts_ours_beside_the_papers_figures_and_says_what_differs():
    plan = tiny_plan()
    results = paper.experiment_results(EXP_SHOW)
    text = paper.render(plan, paper.aggregate(plan, results), params(), paper.first_sizes(results, plan),
                        "abc1234", failed=2)
    assert "| LSTM | 58.92 | 57.29 | 55.00 ± 7.07 | 45.00 ± 7.07 | 25.00 ± 7.07 | 2/2 |" in text
    assert "| MIMN | 61.59 | 60.51 | 75.00 ± 7.07 | 70.00 ± 7.07 | 45.00 ± 7.07 | 2/2 |" in text
    assert "| MemNet | 59.51 | 58.73 | — | — | — | 0/2 |" in text
    assert "2 experiment(s) of the grid have no test metrics" in text
    for what in ("| data |", "| split |", "| images |", "| word vectors |", "| F1 |", "average='weighted'"):
        assert what in text
    assert "not Multi-ZOL" in text and "226 / 25 / 25 train / dev / test pairs" in text
    assert "Table 3" not in text   # only the tables asked for


def test_help_runs():
    proc = subprocess.run([sys.executable, "-m", "model.paper", "--help"], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0 and "paper_tables.md" in proc.stdout


# ---- slow: a real grid -------------------------------------------------------------------------------------

def _copy_project(dest: Path) -> None:
    from test_pipeline_e2e import _copy_project as copy
    copy(dest)


def _run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(cwd))
    env.pop("ZOL_CRAWLED_AT", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.slow
def test_make_paper_runs_a_tiny_grid_with_dvc_experiments(tmp_path):
    """2 methods × 2 seeds, 1 epoch, on a small generated sample, in a temporary git repository. metrics/ and
    plots/ are un-ignored in the copy: DVC keeps a queued experiment's `cache: false` metrics only when git
    tracks them."""
    _copy_project(tmp_path)
    p = yaml.safe_load((tmp_path / "params.yaml").read_text(encoding="utf-8"))
    p["sample"].update(products=3, reviews_per_product=10)
    p["features"].update(weights="random", image_size=64)
    p["model"].update(embed_dim=16, hidden_dim=8)
    p["embeddings"]["epochs"] = 1
    p["train"]["num_threads"] = 1
    p["paper"].update(tables=[2], families=["lstm", "mimn"], seeds=[1, 2], max_epochs=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, allow_unicode=True, sort_keys=False), encoding="utf-8")
    ignore = tmp_path / ".gitignore"
    ignore.write_text(ignore.read_text(encoding="utf-8").replace("/metrics/\n", "").replace("/plots/\n", ""),
                      encoding="utf-8")
    for cmd in (["git", "init", "-q"], ["git", "config", "user.name", "test"],
                ["git", "config", "user.email", "test@example.invalid"], ["dvc", "repro", "--quiet"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "base"]):
        _run(cmd, tmp_path)

    first = _run([sys.executable, "-m", "model.paper"], tmp_path)
    assert "4 to run" in first.stdout and "4/4 runs with test metrics" in first.stdout
    assert "Running stage 'features'" not in first.stdout   # its persistent cache was copied in (-C)
    report = (tmp_path / "reports/paper_tables.md").read_text(encoding="utf-8")
    assert "| LSTM | 58.92 | 57.29 |" in report and "| MIMN | 61.59 | 60.51 |" in report
    assert report.count(" | 2/2 |") == 2

    shown = json.loads(_run(["dvc", "exp", "show", "--json"], tmp_path).stdout)
    results = paper.experiment_results(shown)
    assert len(results) == 4 and all(r["metrics"] is not None for r in results)
    assert {(r["setting"].family, r["seed"]) for r in results} == {("lstm", 1), ("lstm", 2), ("mimn", 1), ("mimn", 2)}

    again = _run([sys.executable, "-m", "model.paper"], tmp_path)   # nothing left to run: collects only
    assert "0 to run" in again.stdout
    assert (tmp_path / "reports/paper_tables.md").read_text(encoding="utf-8") == report


# ---- hostile params and experiments ---------------------------------------------------------------------------

def test_a_release_path_with_a_comma_reaches_dvc_as_one_value(tmp_path):
    """`-S key=a,b` is DVC's sweep syntax (two experiments, a and b): the path is quoted so that DVC reads it whole."""
    from dvc.utils.hydra import get_hydra_sweeps

    _, overrides = paper.absolute_release({"multizol": {"release": "../data,v2 [copy]/multizol"}}, tmp_path / "repo")
    release = str((tmp_path / "data,v2 [copy]/multizol").resolve())
    assert overrides == [f"multizol.release='{release}'"]
    sweeps = get_hydra_sweeps({"params.yaml": overrides})
    assert len(sweeps) == 1 and sweeps[0]["params.yaml"] == [f"multizol.release='{release}'"]
    from hydra.core.override_parser.overrides_parser import OverridesParser
    (override,) = OverridesParser.create().parse_overrides(sweeps[0]["params.yaml"])
    assert override.value() == release and not override.is_sweep_override()
    # a plain path stays as it was; one that quoting cannot carry is refused with one line
    assert paper.absolute_release({"multizol": {"release": "rel/mz"}}, Path("/r"))[1] == ["multizol.release=/r/rel/mz"]
    with pytest.raises(UserError, match="cannot pass on"):
        paper.absolute_release({"multizol": {"release": "it's/mz"}}, tmp_path)


def test_an_experiment_with_null_hops_is_left_out_with_its_reason():
    shown = json.loads(json.dumps(EXP_SHOW))
    for commit in shown:
        for group in commit.get("experiments") or []:
            for state in group.get("revs") or []:
                if state.get("name") == "coaly-skip":
                    state["data"]["params"]["params.yaml"]["data"]["model"]["hops"] = None
                if state.get("name") == "lower-hobo":
                    state["data"]["params"]["params.yaml"]["data"]["train"]["max_epochs"] = "ten"
    skipped: list[str] = []
    results = paper.experiment_results(shown, skipped)
    assert len(results) == 6 and {r["name"] for r in results}.isdisjoint({"coaly-skip", "lower-hobo"})
    assert skipped == ["coaly-skip: hops is null, not an integer", 'lower-hobo: max_epochs is "ten", not an integer']
    plan = tiny_plan()
    text = paper.render(plan, paper.aggregate(plan, results), params(), paper.first_sizes(results, plan), "abc1234",
                        failed=len(paper.missing_runs(plan, results)), skipped=skipped)
    assert "2 experiment(s) left out, their grid params unreadable: `coaly-skip: hops is null, not an integer`" in text
