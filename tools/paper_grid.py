"""The grid of `make paper`: which rows, which runs, each run's full params, and which experiments already ran them.

Every row trains under one of two profiles. `paper`: params.yaml with `paper.as_paper` on top (the paper's loss,
optimiser settings, early stopping on the dev loss and MIMN without the wide path). `defaults`: params.yaml as it
is (the project's tuned MIMN), one labelled row beside Table 2. An experiment is a run's result when every param
section it shares with the run's expected params is equal (the grid keys, the profile's overrides and every other
param), so an experiment with another lr, other data or the other profile never counts.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from common.errors import UserError
from common.params import bounded, fail, read_section
from model.config import MAX_HOPS, Variant
from model.settings import ModelParams

TEST_METRICS = "metrics/test.json"
TRAIN_METRICS = "metrics/train.json"
PARAMS_FILE = "params.yaml"
METRICS = ("accuracy", "weighted_f1", "macro_f1")  # the headline keys of metrics/test.json the report reads
PAPER, DEFAULTS = "paper", "defaults"
DEFAULTS_LABEL = "zol-mimn defaults"

# The paper's figures (percent): (row label, accuracy, its "macro-F1", which its public code computes weighted).
# Tables 3 and 4: in the text extraction of the paper the two tables' accuracy columns are interleaved; the
# assignment here is the only one in which MIMN (3) equals MIMN (61.59 / 60.51, as in Table 2) and each
# row's accuracy follows its F1's order (hops: best at 3; variants: self < text2image < image2text < MIMN).
PAPER_TABLE2 = {
    "lstm": ("LSTM", 58.92, 57.29),
    "memnet": ("MemNet", 59.51, 58.73),
    "atae_lstm": ("ATAE-LSTM", 59.58, 58.95),
    "ian": ("IAN", 60.08, 59.47),
    "ram": ("RAM", 60.18, 59.68),
    "co_memory": ("Co-Memory+Aspect", 60.43, 59.74),
    "mimn": ("MIMN", 61.59, 60.51),
}
PAPER_TABLE3 = {
    1: ("MIMN (1)", 60.50, 59.44),
    2: ("MIMN (2)", 61.17, 60.10),
    3: ("MIMN (3)", 61.59, 60.51),
    4: ("MIMN (4)", 60.78, 60.05),
    5: ("MIMN (5)", 60.11, 59.92),
}
PAPER_TABLE4 = {
    "self": ("MIMN-self", 60.08, 59.48),
    "text2img": ("MIMN-text2image", 60.43, 60.27),
    "img2text": ("MIMN-image2text", 61.23, 60.36),
    "mimn": ("MIMN", 61.59, 60.51),
}
TABLE_TITLES = {
    2: "Table 2: MIMN and the baselines",
    3: "Table 3: MIMN with 1 to 5 memory hops",
    4: "Table 4: variants of the multi-interactive attention",
}


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
    profile: str  # PAPER or DEFAULTS
    paper_accuracy: float | None  # None: not a row of the paper
    paper_f1: float | None


@dataclass(frozen=True, order=True)
class Run:
    setting: Setting
    seed: int
    max_epochs: int
    profile: str = PAPER
    overrides: tuple = ()  # ((dotted key, value), ...): the profile's params on top of params.yaml

    def assignments(self) -> list[tuple[str, object]]:
        """Every param this run sets, in the order `dvc exp run -S` gets them."""
        s = self.setting
        return [
            ("model.family", s.family),
            ("model.hops", s.hops),
            ("model.variant", s.variant),
            ("train.seed", self.seed),
            ("train.max_epochs", self.max_epochs),
            *self.overrides,
        ]

    def expected_params(self, base: dict) -> dict:
        """params.yaml (less the `paper` section) as this run's experiment holds it."""
        params = copy.deepcopy(base)
        for key, value in self.assignments():
            section, _, name = key.partition(".")
            params.setdefault(section, {})[name] = value
        return params

    def describe(self) -> str:
        return (
            f"{self.profile}: {self.setting.family}, {self.setting.hops} hops, variant {self.setting.variant}, "
            f"seed {self.seed}"
        )


@dataclass(frozen=True)
class Plan:
    rows: list[Row]
    seeds: list[int]
    max_epochs: int
    out: Path
    base: dict | None = None  # params.yaml less `paper`; None: any experiment of a grid point counts
    as_paper: tuple = ()  # the paper profile's overrides

    @property
    def runs(self) -> list[Run]:
        """Every (setting, profile, seed) once: MIMN with the base hops and variant is a row of all three tables.
        Every row runs every seed of `paper.seeds`; seed by seed, so that a grid stopped halfway has every row."""
        keys = sorted({(row.setting, row.profile) for row in self.rows})
        return [self.run(setting, profile, seed) for seed in self.seeds for setting, profile in keys]

    def run(self, setting: Setting, profile: str, seed: int) -> Run:
        return Run(setting, seed, self.max_epochs, profile, self.as_paper if profile == PAPER else ())


GRID_KEYS = {"model.family", "model.hops", "model.variant", "train.seed", "train.max_epochs"}


def paper_overrides(as_paper: dict, base: dict | None) -> tuple:
    """`paper.as_paper` as sorted (dotted key, value) pairs; each key must name a param of params.yaml."""
    for key, value in as_paper.items():
        section_name, dot, name = str(key).partition(".")
        if not dot or not name or "." in name or key in GRID_KEYS:
            raise UserError(f"params.yaml: 'paper.as_paper' key {key!r} must be section.param, not a grid key")
        if base is not None and name not in (base.get(section_name) or {}):
            raise UserError(f"params.yaml: 'paper.as_paper' sets {key!r}, which params.yaml does not have")
        if isinstance(value, (dict, list)) or value is None:
            raise UserError(f"params.yaml: 'paper.as_paper.{key}' must be a plain value, got {value!r}")
    return tuple(sorted(as_paper.items()))


def _rows(
    tables: list[int], families: list[str], hops: list[int], variants: list[str], base_hops: int, defaults_row: bool
) -> list[Row]:
    rows = []
    for table in sorted(set(tables)):
        if table == 2:
            rows += [
                Row(2, PAPER_TABLE2[f][0], Setting(f, base_hops, "mimn"), PAPER, *PAPER_TABLE2[f][1:])
                for f in PAPER_TABLE2
                if f in families
            ]
            if defaults_row:
                rows.append(Row(2, DEFAULTS_LABEL, Setting("mimn", base_hops, "mimn"), DEFAULTS, None, None))
        elif table == 3:
            rows += [
                Row(3, PAPER_TABLE3[h][0], Setting("mimn", h, "mimn"), PAPER, *PAPER_TABLE3[h][1:])
                for h in sorted(set(hops))
            ]
        else:
            rows += [
                Row(4, PAPER_TABLE4[v][0], Setting("mimn", base_hops, v), PAPER, *PAPER_TABLE4[v][1:])
                for v in PAPER_TABLE4
                if v in variants
            ]
    return rows


PaperFamily = Literal[tuple(PAPER_TABLE2)]
PaperTable = Literal[tuple(TABLE_TITLES)]
AS_PAPER = {  # params.yaml's paper.as_paper: the paper's training on top of params.yaml
    "train.class_weights": "none",
    "train.loss": "ce",
    "train.label_smoothing": 0.0,
    "train.select_metric": "loss",
    "train.lr": 0.005,
    "train.weight_decay": 0.0,
    "train.lr_schedule": "constant",
    "train.batch_size": 128,
    "model.dropout": 0.5,
    "model.word_evidence": False,
}


@dataclass(frozen=True)
class PaperParams:
    """params.yaml `paper` (read by common.params.read_section): which tables, rows and seeds the grid runs."""

    tables: tuple[PaperTable, ...] = (2, 3, 4)
    families: tuple[PaperFamily, ...] = ("lstm", "memnet", "atae_lstm", "ian", "ram", "co_memory", "mimn")
    hops: tuple[int, ...] = bounded((1, 2, 3, 4, 5), 1, MAX_HOPS)  # Table 3's rows
    variants: tuple[Variant, ...] = ("self", "text2img", "img2text", "mimn")  # Table 4's rows
    seeds: tuple[int, ...] = (1, 2, 3)  # train.seed of every row's runs
    max_epochs: int = bounded(20, 1)  # train.max_epochs of every run
    as_paper: dict = field(default_factory=lambda: dict(AS_PAPER))
    defaults_row: bool = True  # add "zol-mimn defaults": MIMN with params.yaml as it is
    out: str = "reports/paper_tables.md"

    def check(self) -> None:
        for key in ("tables", "families", "hops", "variants", "seeds"):
            if not getattr(self, key):
                raise fail("paper", key, "must be a non-empty list")


def plan_from_params(paper: dict, model: dict, base: dict | None = None) -> Plan:
    """The grid the `paper` section asks for; Table 2 and 4 rows use the `model` section's hops (the paper: 3)."""
    section = read_section(PaperParams, paper, "paper")
    base_hops = read_section(ModelParams, model, "model").hops
    rows = _rows(
        list(section.tables),
        list(section.families),
        list(section.hops),
        list(section.variants),
        base_hops,
        section.defaults_row,
    )
    return Plan(
        rows,
        sorted(set(section.seeds)),
        section.max_epochs,
        Path(section.out),
        base,
        paper_overrides(section.as_paper, base),
    )


def base_params(params: dict) -> dict:
    """The params every run starts from: all sections but `paper`."""
    return {section: values for section, values in params.items() if section != "paper"}


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


def _experiment(state: dict, group: dict, skipped: list[str] | None) -> dict | None:
    data = state.get("data") or {}
    params = _file_data(data, "params", PARAMS_FILE)
    model, train = params.get("model") or {}, params.get("train") or {}
    name = str(state.get("name") or group.get("name") or state.get("rev"))
    if not isinstance(model, dict) or not isinstance(train, dict):
        if skipped is not None:
            skipped.append(f"{name}: its model or train params are not a mapping")
        return None
    if "seed" not in train or "hops" not in model:
        if skipped is not None:
            skipped.append(f"{name}: no model.hops or train.seed in its params")
        return None
    try:
        _grid_int(model, "hops"), _grid_int(train, "seed"), _grid_int(train, "max_epochs", 0)
    except ValueError as exc:
        if skipped is not None:
            skipped.append(f"{name}: {exc}")
        return None
    test, trained = _file_data(data, "metrics", TEST_METRICS), _file_data(data, "metrics", TRAIN_METRICS)
    has_metrics = all(isinstance(test.get(m), (int, float)) and not isinstance(test.get(m), bool) for m in METRICS)
    return {
        "name": name,
        "timestamp": str(data.get("timestamp") or ""),
        "params": base_params(params),
        "status": str((group.get("executor") or {}).get("state") or data.get("status") or ""),
        "metrics": {m: float(test[m]) for m in METRICS} if has_metrics else None,
        "sizes": {
            "train_pairs": trained.get("train_pairs"),
            "dev_pairs": trained.get("dev_pairs"),
            "test_pairs": test.get("pairs"),
            "test_pairs_without_image": test.get("pairs_without_usable_image"),
        },
    }


def experiment_results(exp_show: list, skipped: list[str] | None = None) -> list[dict]:
    """One dict per experiment of `dvc exp show --json` (not the workspace or commits): its name, timestamp,
    params (less `paper`), executor state, test metrics (None when it failed, is queued or has not run) and
    train/test sizes. An experiment whose grid params are not integers (`model.hops: null`) is left out, and
    `skipped` gets why."""
    results = []
    for commit in exp_show:
        for group in commit.get("experiments") or []:
            for state in group.get("revs") or []:
                result = _experiment(state, group, skipped)
                if result is not None:
                    results.append(result)
    return results


# How a run ran, never what it gives: left out of the comparison, so that an experiment run while params.yaml still
# held these settings (they moved to the command line and the environment) or with other values is the same run.
RUN_ONLY = {
    "train": {"num_threads"},
    "crawl": {"backend", "redis_url", "redis_key", "workers"},
    "segment": {"processes"},
    "features": {"num_workers"},
}


def _comparable(section: str, values: object) -> object:
    drop = RUN_ONLY.get(section, set())
    return {k: v for k, v in values.items() if k not in drop} if isinstance(values, dict) else values


def _sections_equal(found: dict, expected: dict) -> bool:
    return all(_comparable(s, found[s]) == _comparable(s, expected[s]) for s in found.keys() & expected.keys())


def is_result_of(result: dict, run: Run, plan: Plan) -> bool:
    """Whether the experiment ran exactly this run: its grid params, its profile's overrides and (with
    plan.base) every other param, compared section by section over the sections both know."""
    if plan.base is not None:
        return _sections_equal(result["params"], run.expected_params(plan.base))
    expected = run.expected_params({})
    return all(
        (result["params"].get(section) or {}).get(key) == value
        for section, values in expected.items()
        for key, value in values.items()
    )


def latest_by_run(results: list[dict], plan: Plan) -> dict[Run, dict]:
    """The newest experiment with test metrics for each run of the plan (a re-run grid point counts once)."""
    chosen: dict[Run, dict] = {}
    done = sorted((r for r in results if r["metrics"] is not None), key=lambda r: r["timestamp"])
    for run in plan.runs:
        for result in done:
            if is_result_of(result, run, plan):
                chosen[run] = result
    return chosen


def missing_runs(plan: Plan, results: list[dict]) -> list[Run]:
    """The runs without an experiment that has test metrics: never run, failed, or still queued."""
    done = latest_by_run(results, plan)
    return [run for run in plan.runs if run not in done]


def first_sizes(results: list[dict], plan: Plan) -> dict:
    done = latest_by_run(results, plan)
    return next(iter(done.values()))["sizes"] if done else {}
