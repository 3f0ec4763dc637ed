"""python -m tools.paper: the grid from params, reading `dvc exp show --json` (a fixed copy of a real one), the
mean ± std per row beside the paper's figures; and, slow, a tiny real grid queued and run by DVC on the sample."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import UserError
from model.families import FAMILIES
from tools import paper
from tools import paper_grid as grid
from tools import paper_report as report

REPO = Path(__file__).resolve().parents[1]
EXP_SHOW = json.loads((REPO / "tests/fixtures/paper/exp_show.json").read_text(encoding="utf-8"))
CLAIMS = json.loads((REPO / "tests/fixtures/paper/claims_exp_show.json").read_text(encoding="utf-8"))  # crafted


def params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


def fixture_base(shown: list) -> dict:
    return grid.base_params(shown[0]["data"]["params"]["params.yaml"]["data"])  # the params the runs share


def tiny_plan_section(**overrides) -> dict:
    return {
        **params()["paper"],
        "tables": [2],
        "families": ["lstm", "memnet", "mimn"],
        "seeds": [1, 2],
        "max_epochs": 1,
        "defaults_row": False,
        **overrides,
    }


def tiny_plan(shown: list = EXP_SHOW, **overrides) -> grid.Plan:
    return grid.plan_from_params(tiny_plan_section(**overrides), {"hops": 3}, fixture_base(shown))


def test_the_default_grid_is_the_papers_three_tables_plus_the_tuned_default_every_row_three_seeds():
    plan = grid.plan_from_params(params()["paper"], params()["model"], grid.base_params(params()))
    assert [r.table for r in plan.rows] == [2] * 8 + [3] * 5 + [4] * 4
    assert {r.setting.family for r in plan.rows if r.table == 2} == set(FAMILIES)
    assert {r.setting for r in plan.rows if r.table == 3} == {grid.Setting("mimn", h, "mimn") for h in range(1, 6)}
    assert {r.setting.variant for r in plan.rows if r.table == 4} == {"mimn", "self", "text2img", "img2text"}
    # MIMN with 3 hops is a paper row of all three tables but runs once per seed: 14 paper settings + the default
    assert plan.seeds == [1, 2, 3] and len(plan.runs) == 15 * 3 and len(set(plan.runs)) == len(plan.runs)
    assert [run.seed for run in plan.runs] == [1] * 15 + [2] * 15 + [3] * 15  # a grid stopped halfway has every row
    for row in plan.rows:  # every row runs every seed
        assert {run.seed for run in plan.runs if (run.setting, run.profile) == (row.setting, row.profile)} == {1, 2, 3}
    mimn = next(r for r in plan.rows if r.table == 2 and r.label == "MIMN")
    assert (mimn.paper_accuracy, mimn.paper_f1, mimn.profile) == (61.59, 60.51, grid.PAPER)
    assert {
        (r.paper_accuracy, r.paper_f1) for r in plan.rows if r.setting == mimn.setting and r.profile == grid.PAPER
    } == {(61.59, 60.51)}


def test_paper_rows_train_as_the_paper_and_the_tuned_default_is_params_yaml_as_it_is():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    p = params()
    plan = grid.plan_from_params(p["paper"], p["model"], grid.base_params(p))
    (tuned,) = [r for r in plan.rows if r.profile == grid.DEFAULTS]
    assert (tuned.table, tuned.label, tuned.setting) == (2, "zol-mimn defaults", grid.Setting("mimn", 3, "mimn"))
    assert tuned.paper_accuracy is None
    for run in plan.runs:
        expected = run.expected_params(plan.base)
        if run.profile == grid.DEFAULTS:
            assert run.overrides == () and expected["model"]["word_evidence"] is True
            assert expected["train"]["class_weights"] == "balanced" and expected["train"]["select_metric"] == "macro_f1"
            continue
        assert expected["train"]["class_weights"] == "none" and expected["train"]["select_metric"] == "loss"
        assert expected["model"]["word_evidence"] is False and expected["train"]["loss"] == "ce"
        assert (expected["train"]["lr"], expected["train"]["batch_size"], expected["model"]["dropout"]) == (
            0.005,
            128,
            0.5,
        )
        assert expected["train"]["weight_decay"] == 0.0 and expected["train"]["seed"] == run.seed
        # what DVC gets with -S reads back as exactly these values (Hydra's override grammar)
        sets = paper.run_args(run)[4::2]
        parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(sets)}
        assert parsed["train.class_weights"] == "none" and parsed["model.word_evidence"] is False
        assert parsed["train.select_metric"] == "loss" and parsed["train.label_smoothing"] == 0.0
        assert parsed == {k: v for k, v in run.assignments()}


@pytest.mark.parametrize(
    "override, message",
    [
        ({"tables": [1]}, "paper.tables"),
        ({"families": ["bert"]}, "paper.families"),
        ({"hops": [6]}, "paper.hops"),
        ({"seeds": []}, "paper.seeds"),
        ({"variants": ["both"]}, "paper.variants"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"as_paper": {"train.no_such": 1}}, "does not have"),
        ({"as_paper": {"train.seed": 3}}, "grid key"),
        ({"as_paper": ["train.lr"]}, "paper.as_paper"),
        ({"as_paper": {"train.lr": None}}, "plain value"),
        ({"defaults_row": "yes"}, "defaults_row"),
    ],
)
def test_a_bad_paper_section_is_a_clear_error(override, message):
    with pytest.raises(UserError, match=message):
        tiny_plan(**override)


@pytest.mark.parametrize("hops", [None, "3", 2.5, True, 0, 6])
def test_a_bad_model_hops_is_a_clear_error(hops):
    with pytest.raises(UserError, match=r"^params.yaml: 'model.hops' must be (a whole number|in 1..5), got "):
        grid.plan_from_params(params()["paper"], {"hops": hops}, grid.base_params(params()))


def test_model_hops_null_is_one_line_from_the_command(tmp_path):
    bad = params()
    bad["model"]["hops"] = None
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "tools.paper", "--params", str(tmp_path / "params.yaml"), "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == ["error: params.yaml: 'model.hops' must be a whole number, got None"]


def test_run_command_sets_every_param_of_the_run_in_the_foreground():
    run = grid.Run(
        grid.Setting("ram", 3, "mimn"),
        2,
        5,
        grid.PAPER,
        (("model.word_evidence", False), ("train.class_weights", "none"), ("train.lr", 0.005)),
    )
    assert paper.run_args(run, ["data/features/cache.parquet"]) == [
        "exp",
        "run",
        "--temp",
        "-S",
        "model.family=ram",
        "-S",
        "model.hops=3",
        "-S",
        "model.variant=mimn",
        "-S",
        "train.seed=2",
        "-S",
        "train.max_epochs=5",
        "-S",
        "model.word_evidence=false",
        "-S",
        "train.class_weights=none",
        "-S",
        "train.lr=0.005",
        "-C",
        "data/features/cache.parquet",
    ]
    # a string that would read as another type keeps its type
    assert paper.assignment("train.device", "true") == "train.device='true'"
    assert paper.assignment("features.weights", "auto") == "features.weights=auto"


def test_a_release_outside_the_repository_is_made_absolute_for_experiments(tmp_path):
    """An experiment runs in a copy under .dvc/tmp/exps/: ../shared/... would point elsewhere there."""
    root = tmp_path / "repo"
    params = {"multizol": {"release": "../shared/data/multizol-public", "format": "auto"}, "model": {"hops": 3}}
    fixed, overrides = paper.absolute_release(params, root)
    release = str((tmp_path / "shared/data/multizol-public").resolve())
    assert fixed["multizol"] == {"release": release, "format": "auto"} and fixed["model"] == {"hops": 3}
    assert overrides == [f"multizol.release={release}"]
    assert params["multizol"]["release"] == "../shared/data/multizol-public"  # the caller's dict is left alone
    run = grid.Run(grid.Setting("mimn", 3, "mimn"), 1, 2)
    assert paper.run_args(run, [], overrides)[-2:] == ["-S", f"multizol.release={release}"]
    for absolute in ({"multizol": {"release": "/data/mz"}}, {"model": {}}):
        assert paper.absolute_release(absolute, root) == (absolute, [])


def test_uncached_outputs_of_the_pipeline_are_copied_into_experiments():
    stage = {
        "outs": ["data/a.parquet", {"data/b.parquet": {"persist": True, "cache": False}}],
        "metrics": [{"metrics/x.json": {"cache": False}}],
    }
    assert paper.uncached_outputs({"stages": {"s": stage}}) == ["data/b.parquet"]
    # the features cache is a cached persistent output: experiments restore it from DVC's cache, nothing to copy
    dvc_yaml = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
    assert paper.uncached_outputs(dvc_yaml) == []


def test_experiment_results_read_every_experiment_and_only_experiments():
    results = grid.experiment_results(EXP_SHOW)
    assert len(results) == 11  # the workspace and the baseline commit are not experiments
    by_name = {r["name"]: r for r in results}
    assert by_name["failed-memnet"]["metrics"] is None and by_name["failed-memnet"]["status"] == "failed"
    assert by_name["queued-memnet"]["metrics"] is None and by_name["queued-memnet"]["status"] == "queued"
    assert by_name["five-epochs"]["params"]["train"]["max_epochs"] == 5
    assert by_name["tuned-one"]["params"]["model"]["word_evidence"] is True
    assert by_name["lower-hobo"]["metrics"] == {"accuracy": 0.6, "weighted_f1": 0.5, "macro_f1": 0.3}


def test_rows_average_the_newest_run_of_each_seed_with_exactly_the_runs_params():
    plan = tiny_plan(defaults_row=True)
    results = grid.experiment_results(EXP_SHOW)
    rows = {r["label"]: r for r in report.aggregate(plan, results)}
    lstm, mimn, memnet, tuned = rows["LSTM"], rows["MIMN"], rows["MemNet"], rows["zol-mimn defaults"]
    assert lstm["runs"] == 2 and lstm["seeds"] == [1, 2]
    assert lstm["accuracy"] == pytest.approx((55.0, 7.0710678))  # 0.5 and 0.6; not the 5-epoch 0.9
    assert lstm["weighted_f1"] == pytest.approx((45.0, 7.0710678))  # not the newer run with another lr
    assert mimn["accuracy"] == pytest.approx((75.0, 7.0710678))  # the older 0.1 run of seed 2 is ignored
    assert mimn["macro_f1"] == pytest.approx((45.0, 7.0710678))
    # the tuned default's runs (class weights, wide path) never count for the paper's MIMN, nor the other way
    assert tuned["accuracy"] == pytest.approx((42.0, 2.8284271)) and tuned["seeds"] == [1, 2]
    assert memnet["runs"] == 0 and memnet["accuracy"] is None  # one run failed, the other is queued


def test_resume_runs_only_what_has_no_results_and_a_finished_grid_runs_nothing():
    results = grid.experiment_results(EXP_SHOW)
    todo = grid.missing_runs(tiny_plan(defaults_row=True), results)
    # memnet: seed 1 failed, seed 2 still queued: both run again; every other run has test metrics
    assert [(r.setting.family, r.seed, r.profile) for r in todo] == [("memnet", 1, "paper"), ("memnet", 2, "paper")]
    assert all(dict(r.overrides)["train.class_weights"] == "none" for r in todo)
    # a third seed: every row runs it, nothing else runs again
    todo = grid.missing_runs(tiny_plan(defaults_row=True, seeds=[1, 2, 3]), results)
    assert sorted((r.setting.family, r.seed, r.profile) for r in todo) == [
        ("lstm", 3, "paper"),
        ("memnet", 1, "paper"),
        ("memnet", 2, "paper"),
        ("memnet", 3, "paper"),
        ("mimn", 3, "defaults"),
        ("mimn", 3, "paper"),
    ]
    # without as_paper the rows train as params.yaml: only the tuned runs count (for MIMN), no paper run does
    assert sorted((r.setting.family, r.seed) for r in grid.missing_runs(tiny_plan(as_paper={}), results)) == [
        ("lstm", 1),
        ("lstm", 2),
        ("memnet", 1),
        ("memnet", 2),
    ]
    finished = grid.experiment_results(CLAIMS)
    assert grid.missing_runs(tiny_plan(CLAIMS, seeds=[1, 2, 3]), finished) == []


def test_run_only_settings_never_make_a_finished_run_run_again():
    """Experiments of a finished grid ran while params.yaml held train.num_threads (now --threads /
    ZOL_TORCH_THREADS): a base without it, or with another thread count, still finds every run done; a param that
    changes results still does not match."""
    finished = grid.experiment_results(CLAIMS)
    base = fixture_base(CLAIMS)
    assert base["train"]["num_threads"] == 1
    without = {**base, "train": {k: v for k, v in base["train"].items() if k != "num_threads"}}
    other = {**base, "train": {**base["train"], "num_threads": 8}}
    for params in (without, other):
        plan = grid.plan_from_params({**tiny_plan_section(), "seeds": [1, 2, 3]}, {"hops": 3}, params)
        assert grid.missing_runs(plan, finished) == []
    changed = {**without, "train": {**without["train"], "patience": 99}}
    plan = grid.plan_from_params({**tiny_plan_section(), "seeds": [1, 2, 3]}, {"hops": 3}, changed)
    assert len(grid.missing_runs(plan, finished)) == len(plan.runs)


def test_report_puts_ours_beside_the_papers_figures_and_says_what_differs():
    plan = tiny_plan(defaults_row=True)
    results = grid.experiment_results(EXP_SHOW)
    paper_params = plan.runs[0].expected_params(plan.base)
    text = report.render(
        plan,
        report.aggregate(plan, results),
        paper_params,
        plan.base,
        grid.first_sizes(results, plan),
        "abc1234",
        failed=2,
    )
    assert "| LSTM | 58.92 | 57.29 | 55.00 ± 7.07 | 45.00 ± 7.07 | 25.00 ± 7.07 | 2/2 |" in text
    assert "| MIMN | 61.59 | 60.51 | 75.00 ± 7.07 | 70.00 ± 7.07 | 45.00 ± 7.07 | 2/2 |" in text
    assert "| MemNet | 59.51 | 58.73 | — | — | — | 0/2 |" in text
    assert "| zol-mimn defaults | — | — | 42.00 ± 2.83 | 32.00 ± 2.83 | 22.00 ± 2.83 | 2/2 |" in text
    assert "2 experiment(s) of the grid have no test metrics" in text
    for what in (
        "| data |",
        "| split |",
        "| images |",
        "| word vectors |",
        "| LSTM size |",
        "| F1 |",
        "average='weighted'",
    ):
        assert what in text
    training = next(line for line in text.splitlines() if line.startswith("| training |"))
    assert "cross-entropy (no class weights), Adam, lr 0.005 (constant), batch 128, dropout 0.5" in training
    assert "best dev `loss` kept" in training and "batches of similar lengths" in training
    assert "none (`model.word_evidence: false`, the paper's MIMN)" in text
    assert "`train.class_weights: none`" in text and "`model.word_evidence: false`" in text
    assert "with class weights `balanced`" in text and "`macro_f1`" in text  # the tuned default, said as such
    assert "not Multi-ZOL" in text and "226 / 25 / 25 train / dev / test pairs" in text
    assert "Table 3" not in text  # only the tables asked for


def test_claims_say_supported_contradicted_and_not_resolved_by_the_seeds_spread():
    plan = tiny_plan(CLAIMS, tables=[2, 3], hops=[1, 2, 3], seeds=[1, 2, 3])
    results = grid.experiment_results(CLAIMS)
    text = report.render(plan, report.aggregate(plan, results), plan.base, plan.base, {}, "abc1234", failed=1)
    claims = text[text.index("## Claims") :].splitlines()
    line = {c.split(" — ")[0]: c for c in claims if c.startswith("- ")}
    # MIMN 61 ± 1 against LSTM 51 ± 1: Δ +10 > 2
    assert line["- Table 2: MIMN above LSTM"].count("**supported** (Δ +10.00, spread 2.00)") == 2
    # MemNet 71 ± 1: the paper's order reversed beyond the spread
    assert line["- Table 2: MIMN above MemNet"].count("**contradicted** (Δ -10.00, spread 2.00)") == 2
    # MIMN (2) 61 ± 3: same mean
    assert "accuracy: **not resolved** (Δ +0.00, spread 4.00)" in line["- Table 3: MIMN (3) above MIMN (2)"]
    # MIMN (1) ran two seeds: it still has a spread; the paper says MIMN (2) above MIMN (1)
    assert "accuracy: **supported** (Δ +5.50, spread 3.71)" in line["- Table 3: MIMN (2) above MIMN (1)"]
    # only claims whose rows are both in the report: no hops 4-5, no Table 4, nothing on the tuned default
    assert len(line) == 4 and "MIMN (4)" not in text
    assert report.verdict({"accuracy": (60.0, None), "runs": 1}, {"accuracy": (50.0, 1.0), "runs": 3}, "accuracy") == (
        report.NOT_RESOLVED,
        "1 seed(s) in a row, 2 needed",
    )


def test_the_papers_claims_are_its_rankings():
    claims = report.paper_claims()
    assert claims[:6] == [(2, "MIMN", b) for b in ("LSTM", "MemNet", "ATAE-LSTM", "IAN", "RAM", "Co-Memory+Aspect")]
    assert claims[6:10] == [
        (3, "MIMN (2)", "MIMN (1)"),
        (3, "MIMN (3)", "MIMN (2)"),
        (3, "MIMN (3)", "MIMN (4)"),
        (3, "MIMN (4)", "MIMN (5)"),
    ]
    assert claims[10:] == [(4, "MIMN", v) for v in ("MIMN-self", "MIMN-text2image", "MIMN-image2text")]


def test_help_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "tools.paper", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert proc.returncode == 0 and "paper_tables.md" in proc.stdout


# ---- slow: a real grid -------------------------------------------------------------------------------------


def _copy_project(dest: Path) -> None:
    from test_pipeline_e2e import _copy_project as copy

    copy(dest)


def _run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(cwd))
    env.pop("ZOL_CRAWLED_AT", None)
    env["ZOL_TORCH_THREADS"] = "1"
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.slow
def test_make_paper_runs_a_tiny_grid_with_dvc_experiments_and_resumes(tmp_path):
    """The paper's MIMN and the tuned default, 1 seed, 1 epoch, on a small generated sample, in a temporary git
    repository: the first `make paper` runs the MIMN row only; with the tuned default added, the second runs just
    that; the third runs nothing. metrics/ and plots/ are un-ignored in the copy: DVC keeps an experiment's
    `cache: false` metrics only when git tracks them."""
    _copy_project(tmp_path)
    p = yaml.safe_load((tmp_path / "params.yaml").read_text(encoding="utf-8"))
    p["sample"].update(products=3, reviews_per_product=10)
    p["features"].update(weights="random", image_size=64)
    p["model"].update(embed_dim=16, hidden_dim=8)
    p["embeddings"]["epochs"] = 1
    p["train"]["max_epochs"] = 1  # the base run only has to exist: every run of the grid sets its own epochs
    p["paper"].update(tables=[2], families=["mimn"], seeds=[1], max_epochs=1, defaults_row=False)

    def write():
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, allow_unicode=True, sort_keys=False), encoding="utf-8")

    write()
    ignore = tmp_path / ".gitignore"
    ignore.write_text(
        ignore.read_text(encoding="utf-8").replace("/metrics/\n", "").replace("/plots/\n", ""), encoding="utf-8"
    )
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.name", "test"],
        ["git", "config", "user.email", "test@example.invalid"],
        ["dvc", "repro", "--quiet"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "base"],
    ):
        _run(cmd, tmp_path)

    first = _run([sys.executable, "-m", "tools.paper"], tmp_path)
    assert "1 to run" in first.stdout and "1/1 runs with test metrics" in first.stdout
    assert "Running stage 'features'" not in first.stdout  # restored from DVC's cache in the experiment's copy
    p["paper"]["defaults_row"] = True  # a grid that grew (or one interrupted): only the new run runs
    write()
    second = _run([sys.executable, "-m", "tools.paper"], tmp_path)
    assert "1 already done, 1 to run" in second.stdout and "2/2 runs with test metrics" in second.stdout
    report_text = (tmp_path / "reports/paper_tables.md").read_text(encoding="utf-8")
    assert "| MIMN | 61.59 | 60.51 |" in report_text and "| zol-mimn defaults | — | — |" in report_text
    assert report_text.count(" | 1/1 |") == 2

    shown = json.loads(_run(["dvc", "exp", "show", "--json"], tmp_path).stdout)
    results = grid.experiment_results(shown)
    assert len(results) == 2 and all(r["metrics"] is not None for r in results)
    by_weights = {r["params"]["train"]["class_weights"]: r["params"] for r in results}
    assert (
        by_weights["none"]["train"]["select_metric"] == "loss" and by_weights["none"]["model"]["word_evidence"] is False
    )
    assert by_weights["balanced"]["model"]["word_evidence"] is True

    again = _run([sys.executable, "-m", "tools.paper"], tmp_path)  # nothing left to run: collects only
    assert "2 already done, 0 to run" in again.stdout and "paper: run " not in again.stdout
    assert (tmp_path / "reports/paper_tables.md").read_text(encoding="utf-8") == report_text


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
    results = grid.experiment_results(shown, skipped)
    assert len(results) == 9 and {r["name"] for r in results}.isdisjoint({"coaly-skip", "lower-hobo"})
    assert skipped == ["coaly-skip: hops is null, not an integer", 'lower-hobo: max_epochs is "ten", not an integer']
    plan = tiny_plan()
    text = report.render(
        plan,
        report.aggregate(plan, results),
        plan.base,
        plan.base,
        grid.first_sizes(results, plan),
        "abc1234",
        failed=len(grid.missing_runs(plan, results)),
        skipped=skipped,
    )
    assert "2 experiment(s) left out, their grid params unreadable: `coaly-skip: hops is null, not an integer`" in text


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5,
)
FIELDS = [
    ("params", "model", "hops"),
    ("params", "train", "seed"),
    ("params", "train", "max_epochs"),
    ("params", "model", None),
    ("params", "train", None),
    ("params", "train", "class_weights"),
    ("metrics", "accuracy", None),
    ("metrics", "weighted_f1", None),
    ("timestamp", None, None),
]


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, 10), field=st.sampled_from(FIELDS), value=JSON_VALUES)
def test_any_value_in_an_experiment_is_read_or_left_out_with_its_reason(which, field, value):
    """Whatever an experiment's params.yaml or metrics hold, the report is written: the experiment is read or
    left out with a reason, never a traceback."""
    shown = json.loads(json.dumps(EXP_SHOW))
    group = shown[1]["experiments"][which]
    data = group["revs"][0]["data"]
    kind, key, leaf = field
    if kind == "params":
        section = data["params"]["params.yaml"]["data"]
        if leaf is None:
            section[key] = value
        else:
            section[key][leaf] = value
    elif kind == "metrics" and "metrics/test.json" in data["metrics"]:
        data["metrics"]["metrics/test.json"]["data"][key] = value
    else:
        data["timestamp"] = value
    skipped: list[str] = []
    results = grid.experiment_results(shown, skipped)
    assert group["name"] in {r["name"] for r in results} | {why.split(":")[0] for why in skipped}
    plan = tiny_plan(defaults_row=True)
    text = report.render(
        plan,
        report.aggregate(plan, results),
        plan.base,
        plan.base,
        grid.first_sizes(results, plan),
        "abc1234",
        failed=len(grid.missing_runs(plan, results)),
        skipped=skipped,
    )
    assert "## Table 2" in text
