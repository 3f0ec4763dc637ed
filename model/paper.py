"""The paper's Tables 2-4 as DVC experiments: queue the grid, run it, write reports/paper_tables.md.

    python -m model.paper [--params params.yaml] [--dry-run] [--collect-only] [--jobs N]

Reads params.yaml's `paper` section (tables, rows, seeds, epoch budget). Each grid point is one
`dvc exp run --queue -S model.family=... -S model.hops=... -S model.variant=... -S train.seed=...
-S train.max_epochs=...`; points that already have an experiment with test metrics on the current commit are
not queued again. The queue runs with `dvc exp run --run-all`, then `dvc exp show --json` is read and every
row's test accuracy, weighted-F1 and macro-F1 are averaged over the seeds beside the paper's figures.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml

from common.atomic import write_text
from common.errors import UserError, cli_entry
from common.params import load_params, require
from model.config import MAX_HOPS, VARIANTS
from model.families import DEFAULT_FAMILY
from model.provenance import MULTIZOL, SAMPLE, data_source

GRID_KEYS = {("model", "family"), ("model", "hops"), ("model", "variant"), ("train", "seed"), ("train", "max_epochs")}
TEST_METRICS = "metrics/test.json"
TRAIN_METRICS = "metrics/train.json"
PARAMS_FILE = "params.yaml"
METRICS = ("accuracy", "weighted_f1", "macro_f1")

# The paper's figures (percent): (row label, accuracy, its "macro-F1", which its public code computes weighted).
# Tables 3 and 4: in the text extraction of the paper the two tables' accuracy columns are interleaved; the
# assignment here is the only one in which MIMN (3) equals MIMN (61.59 / 60.51, as in Table 2) and each
# row's accuracy follows its F1's order (hops: best at 3; variants: self < text2image < image2text < MIMN).
PAPER_TABLE2 = {"lstm": ("LSTM", 58.92, 57.29), "memnet": ("MemNet", 59.51, 58.73),
                "atae_lstm": ("ATAE-LSTM", 59.58, 58.95), "ian": ("IAN", 60.08, 59.47),
                "ram": ("RAM", 60.18, 59.68), "co_memory": ("Co-Memory+Aspect", 60.43, 59.74),
                "mimn": ("MIMN", 61.59, 60.51)}
PAPER_TABLE3 = {1: ("MIMN (1)", 60.50, 59.44), 2: ("MIMN (2)", 61.17, 60.10), 3: ("MIMN (3)", 61.59, 60.51),
                4: ("MIMN (4)", 60.78, 60.05), 5: ("MIMN (5)", 60.11, 59.92)}
PAPER_TABLE4 = {"self": ("MIMN-self", 60.08, 59.48), "text2img": ("MIMN-text2image", 60.43, 60.27),
                "img2text": ("MIMN-image2text", 61.23, 60.36), "mimn": ("MIMN", 61.59, 60.51)}
TABLE_TITLES = {2: "Table 2: MIMN and the baselines", 3: "Table 3: MIMN with 1 to 5 memory hops",
                4: "Table 4: variants of the multi-interactive attention"}


@dataclass(frozen=True, order=True)
class Setting:
    """What a table row varies: the model family, its memory hops and MIMN's attention variant."""
    family: str
    hops: int
    variant: str


@dataclass(frozen=True)
class Row:
    table: int
    label: str
    setting: Setting
    paper_accuracy: float
    paper_f1: float


@dataclass(frozen=True)
class Run:
    setting: Setting
    seed: int
    max_epochs: int

    def set_params(self) -> list[str]:
        return [f"model.family={self.setting.family}", f"model.hops={self.setting.hops}",
                f"model.variant={self.setting.variant}", f"train.seed={self.seed}",
                f"train.max_epochs={self.max_epochs}"]


@dataclass(frozen=True)
class Plan:
    rows: list[Row]
    seeds: list[int]
    max_epochs: int
    jobs: int
    out: Path
    fixed: dict | None = None   # every other param (fixed_params); an experiment counts only if its own match

    @property
    def runs(self) -> list[Run]:
        """Every (setting, seed) once: MIMN with the base hops and variant is a row of all three tables."""
        settings = sorted({row.setting for row in self.rows})
        return [Run(s, seed, self.max_epochs) for s in settings for seed in self.seeds]


def _int_list(values, key: str) -> list[int]:
    if not isinstance(values, list) or not values or not all(isinstance(v, int) and not isinstance(v, bool)
                                                             for v in values):
        raise UserError(f"params.yaml: 'paper.{key}' must be a non-empty list of integers, got {values!r}")
    return values


def _str_list(values, key: str, allowed: Iterable[str]) -> list[str]:
    allowed = list(allowed)
    if not isinstance(values, list) or not values or any(v not in allowed for v in values):
        raise UserError(f"params.yaml: 'paper.{key}' must be a non-empty list of {', '.join(allowed)}; got {values!r}")
    return values


def fixed_params(params: dict) -> dict:
    """The params that every run of the grid shares: all but the `paper` section and the keys the grid sets."""
    return {section: ({k: v for k, v in values.items() if (section, k) not in GRID_KEYS}
                      if isinstance(values, dict) else values)
            for section, values in params.items() if section != "paper"}


def plan_from_params(paper: dict, model: dict, fixed: dict | None = None) -> Plan:
    """The grid the `paper` section asks for; Table 2 and 4 rows use the `model` section's hops (the paper: 3)."""
    tables = _int_list(require(paper, "tables", "paper"), "tables")
    if any(t not in TABLE_TITLES for t in tables):
        raise UserError(f"params.yaml: 'paper.tables' may hold 2, 3 and 4, got {tables!r}")
    families = _str_list(require(paper, "families", "paper"), "families", PAPER_TABLE2)
    variants = _str_list(require(paper, "variants", "paper"), "variants", VARIANTS)
    hops = _int_list(require(paper, "hops", "paper"), "hops")
    if any(not 1 <= h <= MAX_HOPS for h in hops):
        raise UserError(f"params.yaml: 'paper.hops' must be within 1..{MAX_HOPS}, got {hops!r}")
    seeds = _int_list(require(paper, "seeds", "paper"), "seeds")
    max_epochs = require(paper, "max_epochs", "paper", int)
    jobs = require(paper, "jobs", "paper", int)
    if max_epochs < 1 or jobs < 1:
        raise UserError("params.yaml: 'paper.max_epochs' and 'paper.jobs' must be >= 1")
    base_hops = int(model.get("hops", 3))
    rows = []
    for table in sorted(set(tables)):
        if table == 2:
            rows += [Row(2, PAPER_TABLE2[f][0], Setting(f, base_hops, "mimn"), *PAPER_TABLE2[f][1:])
                     for f in PAPER_TABLE2 if f in families]
        elif table == 3:
            rows += [Row(3, PAPER_TABLE3[h][0], Setting("mimn", h, "mimn"), *PAPER_TABLE3[h][1:])
                     for h in sorted(set(hops))]
        else:
            rows += [Row(4, PAPER_TABLE4[v][0], Setting("mimn", base_hops, v), *PAPER_TABLE4[v][1:])
                     for v in PAPER_TABLE4 if v in variants]
    return Plan(rows, sorted(set(seeds)), max_epochs, jobs, Path(str(paper.get("out", "reports/paper_tables.md"))),
                fixed)


# ---- reading `dvc exp show --json` -------------------------------------------------------------------------

def _file_data(data: dict, kind: str, path: str) -> dict:
    entry = (data.get(kind) or {}).get(path) or {}
    return entry.get("data") or {}


def _grid_int(section: dict, key: str, default: int | None = None) -> int:
    """An integer grid param of an experiment; ValueError naming it when it is null or not an integer."""
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} is {json.dumps(value)}, not an integer")
    return value


def experiment_results(exp_show: list, skipped: list[str] | None = None) -> list[dict]:
    """One dict per experiment of `dvc exp show --json` (not the workspace or commits): its name, timestamp,
    setting, seed, epoch budget, test metrics (None when it failed or has not run) and train/test sizes. An
    experiment whose grid params are not integers (`model.hops: null`) is left out, and `skipped` gets why."""
    results = []
    for commit in exp_show:
        for group in commit.get("experiments") or []:
            for state in group.get("revs") or []:
                data = state.get("data") or {}
                params = _file_data(data, "params", PARAMS_FILE)
                model, train = params.get("model") or {}, params.get("train") or {}
                if "seed" not in train or "hops" not in model:
                    continue
                name = state.get("name") or group.get("name") or state.get("rev")
                try:
                    hops, seed = _grid_int(model, "hops"), _grid_int(train, "seed")
                    max_epochs = _grid_int(train, "max_epochs", 0)
                except ValueError as exc:
                    if skipped is not None:
                        skipped.append(f"{name}: {exc}")
                    continue
                test, trained = _file_data(data, "metrics", TEST_METRICS), _file_data(data, "metrics", TRAIN_METRICS)
                has_metrics = all(isinstance(test.get(m), (int, float)) for m in METRICS)
                results.append({
                    "name": name,
                    "timestamp": data.get("timestamp") or "",
                    "setting": Setting(str(model.get("family", DEFAULT_FAMILY)), hops, str(model.get("variant", "mimn"))),
                    "seed": seed,
                    "max_epochs": max_epochs,
                    "fixed": fixed_params(params),
                    "metrics": {m: float(test[m]) for m in METRICS} if has_metrics else None,
                    "sizes": {"train_pairs": trained.get("train_pairs"), "dev_pairs": trained.get("dev_pairs"),
                              "test_pairs": test.get("pairs"),
                              "test_pairs_without_image": test.get("pairs_without_usable_image")},
                })
    return results


def same_fixed_params(result: dict, plan: Plan) -> bool:
    """Whether the experiment ran with the plan's other params (the sections both know; all when no plan.fixed)."""
    if plan.fixed is None:
        return True
    return all(result["fixed"][s] == plan.fixed[s] for s in result["fixed"].keys() & plan.fixed.keys())


def latest_by_run(results: list[dict], plan: Plan) -> dict[Run, dict]:
    """The newest experiment with test metrics for each run of the plan (a re-run grid point counts once);
    experiments whose other params differ from the plan's (another lr, other data) never count."""
    wanted = set(plan.runs)
    chosen: dict[Run, dict] = {}
    for result in sorted((r for r in results if r["metrics"] is not None), key=lambda r: r["timestamp"]):
        run = Run(result["setting"], result["seed"], result["max_epochs"])
        if run in wanted and same_fixed_params(result, plan):
            chosen[run] = result
    return chosen


def missing_runs(plan: Plan, results: list[dict]) -> list[Run]:
    done = latest_by_run(results, plan)
    return [run for run in plan.runs if run not in done]


# ---- the tables ------------------------------------------------------------------------------------------

def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def aggregate(plan: Plan, results: list[dict]) -> list[dict]:
    """Per plan row: the paper's figures and ours (percent), mean and sample std over the seeds that ran."""
    done = latest_by_run(results, plan)
    table = []
    for row in plan.rows:
        runs = [done[Run(row.setting, seed, plan.max_epochs)] for seed in plan.seeds
                if Run(row.setting, seed, plan.max_epochs) in done]
        ours = {m: _mean_std([100 * r["metrics"][m] for r in runs]) if runs else None for m in METRICS}
        table.append({"table": row.table, "label": row.label, "setting": row.setting,
                      "paper_accuracy": row.paper_accuracy, "paper_f1": row.paper_f1,
                      "runs": len(runs), "seeds": [r["seed"] for r in runs], **ours})
    return table


def _cell(value: tuple[float, float | None] | None) -> str:
    if value is None:
        return "—"
    mean, std = value
    return f"{mean:.2f}" if std is None or math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def _describe_data(params: dict) -> str:
    data_raw = str((params.get("data") or {}).get("raw", ""))
    sample, source = params.get("sample") or {}, data_source(params)   # the rule train records in the checkpoint
    if source == MULTIZOL:
        return f"the Multi-ZOL release imported into `{data_raw}`"
    if source == SAMPLE:
        return (f"the generated offline sample (`{sample.get('out')}`: {sample.get('products')} products × "
                f"{sample.get('reviews_per_product')} reviews, synthetic text and photos), not Multi-ZOL")
    return f"a crawl of zol.com.cn in `{data_raw}`, not Multi-ZOL"


def differences(params: dict, plan: Plan, sizes: dict) -> list[tuple[str, str, str]]:
    """(what, the paper, this run) for every setting that differs or may differ."""
    split, features, clean = params.get("split") or {}, params.get("features") or {}, params.get("clean") or {}
    embeddings, train, model = params.get("embeddings") or {}, params.get("train") or {}, params.get("model") or {}
    size_text = ""
    if sizes.get("test_pairs") is not None:
        size_text = (f"; {sizes.get('train_pairs')} / {sizes.get('dev_pairs')} / {sizes.get('test_pairs')} "
                     f"train / dev / test pairs, {sizes.get('test_pairs_without_image')} test pairs without a "
                     "usable image (their image memory is masked)")
    if split.get("method") == "predefined":
        split_text = "the split that came with the data (`split.method: predefined`)"
    else:
        split_text = (f"{split.get('train')}/{split.get('dev')}/{split.get('test')} random by "
                      f"{split.get('group_by')} (seed {split.get('seed')})")
    weights = features.get("weights")
    return [
        ("data", "Multi-ZOL: 5,288 multimodal reviews, 28,469 aspect–review pairs", _describe_data(params) + size_text),
        ("split", "random 80/10/10", split_text),
        ("images", "ResNet-50 pre-trained on ImageNet, up to 5 per review",
         f"ResNet-50, `features.weights: {weights}`"
         + (" (random weights when ImageNet's are not at hand: see metrics/features.json)" if weights == "auto" else "")
         + f", up to {model.get('max_images')} per review; reviews without an image "
         + ("dropped" if clean.get("require_image") else "kept, their image memory masked")),
        ("word vectors", "300-d SGNS pre-trained on Baidu Encyclopedia, fine-tuned",
         f"`embeddings.source: {embeddings.get('source')}`"
         + (" (skip-gram trained on the training split only)" if embeddings.get("source") == "sgns" else "")
         + f", {model.get('embed_dim')}-d, fine-tuned"),
        ("classes", "10 (one per score; the public code maps scores to 8)", f"{train.get('classes')}"),
        ("training", "Adam, lr 0.005, batch 128, dropout 0.5, early stopping on the dev loss",
         f"Adam, lr {train.get('lr')}, batch {train.get('batch_size')}, dropout {model.get('dropout')}, at most "
         f"{plan.max_epochs} epochs, the epoch with the best dev `{train.get('select_metric')}` kept (patience "
         f"{train.get('patience')}), class weights `{train.get('class_weights')}`"),
        ("MIMN's wide path", "none", "`model.word_evidence: true`: MIMN adds the linear baseline's word evidence "
         "(an extension; the baselines do not have it)" if model.get("word_evidence")
         else "none (`model.word_evidence: false`, the paper's MIMN)"),
        ("attention score", "tanh(w·[m, q] + b) as printed", f"`model.attention_score: {model.get('attention_score')}` "
         "for MIMN and every baseline's MemoryAttention (IAN keeps its bilinear score)"),
        ("runs per row", "one (seed not stated)", f"{len(plan.seeds)} seeds ({', '.join(map(str, plan.seeds))}): "
         "mean ± sample standard deviation"),
        ("F1", "\"macro-F1\", computed in the public code with average='weighted'",
         "weighted-F1 (compare with the paper's column) and the true macro-F1, both reported"),
    ]


def render(plan: Plan, table: list[dict], params: dict, sizes: dict, commit: str, failed: int,
           skipped: list[str] = ()) -> str:
    lines = [
        "# The paper's Tables 2–4, reproduced",
        "",
        f"Written by `python -m model.paper` from the DVC experiments of commit `{commit}` (`dvc exp show`). "
        "Test-split figures in percent; ours are the mean ± sample standard deviation over the seeds that ran. "
        "The paper's \"macro-F1\" is a weighted F1 in its public code (sklearn `average='weighted'`): compare it "
        "with the weighted-F1 column; our macro-F1 is the unweighted mean over the classes present.",
        "",
        "## What differs from the paper",
        "",
        "| | paper | here |",
        "|---|---|---|",
        *[f"| {what} | {paper} | {here} |" for what, paper, here in differences(params, plan, sizes)],
    ]
    if failed:
        lines += ["", f"**{failed} experiment(s) of the grid have no test metrics** (failed or not run: "
                      "`dvc exp show`, `dvc queue logs <name>`); their rows average fewer seeds."]
    if skipped:
        lines += ["", f"{len(skipped)} experiment(s) left out, their grid params unreadable: "
                      + "; ".join(f"`{why}`" for why in skipped) + "."]
    for number in sorted({r["table"] for r in table}):
        lines += ["", f"## {TABLE_TITLES[number]}", "",
                  "| method | paper accuracy | paper \"macro-F1\" (weighted) | accuracy | weighted-F1 | macro-F1 | seeds |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in (r for r in table if r["table"] == number):
            lines.append(f"| {r['label']} | {r['paper_accuracy']:.2f} | {r['paper_f1']:.2f} | {_cell(r['accuracy'])} | "
                         f"{_cell(r['weighted_f1'])} | {_cell(r['macro_f1'])} | {r['runs']}/{len(plan.seeds)} |")
    lines += ["", "Text-only rows (LSTM, ATAE-LSTM, MemNet, IAN, RAM) read no image, as in the paper; model "
                  "equations and every choice made: docs/baselines.md. Tables 3–4 of the paper come out of its PDF "
                  "with the two accuracy columns interleaved; the transcription is explained in model/paper.py.", ""]
    return "\n".join(lines)


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
        raise UserError(f"dvc exp show failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
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
    queued experiment unless the file is copied in (`dvc exp run --queue -C`)."""
    paths = []
    for stage in (dvc_yaml.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if isinstance(out, dict):
                paths += [path for path, spec in out.items()
                          if isinstance(spec, dict) and spec.get("cache") is False and "${" not in path]
    return sorted(paths)


def queue_args(run: Run, copy_paths: Iterable[str] = (), overrides: Iterable[str] = ()) -> list[str]:
    return ["exp", "run", "--queue", *[arg for p in [*run.set_params(), *overrides] for arg in ("-S", p)],
            *[arg for path in copy_paths for arg in ("-C", path)]]


PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./-]+")   # read by `-S` (Hydra's override grammar) as one plain string


def set_option(key: str, value: str) -> str:
    """`key=value` for `dvc exp run -S`, read back as exactly `value`: a value with other characters is quoted (else
    a comma would make DVC sweep over two values, brackets a list); one that quoting cannot carry is refused."""
    if PLAIN_VALUE.fullmatch(value):
        return f"{key}={value}"
    if any(c in value for c in "'\\$") or not value.isprintable():
        raise UserError(f"params.yaml: '{key}' {value!r} holds a quote, backslash, '$' or control character, which "
                        "`dvc exp run -S` cannot pass on; move or link the folder to a plainer path")
    return f"{key}='{value}'"


def absolute_release(params: dict, root: Path) -> tuple[dict, list[str]]:
    """(params, -S overrides) with a relative `multizol.release` made absolute. A queued experiment runs in a copy
    of the repository under .dvc/tmp/exps/, where a path such as ../shared/... points somewhere else."""
    release = (params.get("multizol") or {}).get("release")
    if not isinstance(release, str) or not release or Path(release).is_absolute():
        return params, []
    absolute = str((root / release).resolve())
    return ({**params, "multizol": {**params["multizol"], "release": absolute}},
            [set_option("multizol.release", absolute)])


def first_sizes(results: list[dict], plan: Plan) -> dict:
    done = latest_by_run(results, plan)
    return next(iter(done.values()))["sizes"] if done else {}


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.paper", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="parameter file (sections paper, model, ...)")
    parser.add_argument("--dry-run", action="store_true", help="print the dvc commands the grid needs, run nothing")
    parser.add_argument("--collect-only", action="store_true",
                        help="queue and run nothing: write the tables from the experiments that exist")
    parser.add_argument("--jobs", type=int, default=None, help="experiments run at a time (default: paper.jobs)")
    parser.add_argument("--out", default=None, help="the report (default: paper.out)")
    args = parser.parse_args(argv)
    params = load_params(None, args.params)
    if "paper" not in params:
        raise UserError(f"{args.params} has no 'paper' section; add it (see the README's paper section)")
    params, overrides = absolute_release(params, Path.cwd())
    plan = plan_from_params(params["paper"], params.get("model") or {}, fixed_params(params))
    jobs = args.jobs if args.jobs is not None else plan.jobs
    out = Path(args.out) if args.out else plan.out
    commit = head_commit()

    dvc_yaml = Path("dvc.yaml")
    copy_paths = [p for p in uncached_outputs(yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {})
                  if Path(p).exists()] if dvc_yaml.is_file() else []
    todo = missing_runs(plan, experiment_results(exp_show(), []))
    print(f"paper: {len(plan.runs)} runs in the grid ({len(plan.rows)} rows × {len(plan.seeds)} seeds, shared rows "
          f"once), {len(plan.runs) - len(todo)} already done on {commit}, {len(todo)} to run", flush=True)
    if args.dry_run:
        for run in todo:
            print("dvc " + " ".join(queue_args(run, copy_paths, overrides)))
        if todo:
            print(f"dvc exp run --run-all --jobs {jobs}")
        return 0
    if todo and not args.collect_only:
        for run in todo:
            proc = _dvc(queue_args(run, copy_paths, overrides), capture=True)
            if proc.returncode != 0:
                raise UserError(f"dvc exp run --queue failed for {' '.join(run.set_params())}: {proc.stderr.strip()}")
        _dvc(["exp", "run", "--run-all", "--jobs", str(jobs)])   # its output streams to the terminal

    skipped: list[str] = []
    results = experiment_results(exp_show(), skipped)
    for why in skipped:
        print(f"paper: experiment left out: {why}", file=sys.stderr)
    failed = len(missing_runs(plan, results))
    table = aggregate(plan, results)
    write_text(render(plan, table, params, first_sizes(results, plan), commit, failed, skipped), out)
    print(f"paper: {len(plan.runs) - failed}/{len(plan.runs)} runs with test metrics -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
