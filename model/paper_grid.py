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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError
from common.params import require
from model.config import MAX_HOPS, VARIANTS

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


def _int_list(values, key: str) -> list[int]:
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    ):
        raise UserError(f"params.yaml: 'paper.{key}' must be a non-empty list of integers, got {values!r}")
    return values


def _str_list(values, key: str, allowed: Iterable[str]) -> list[str]:
    allowed = list(allowed)
    if not isinstance(values, list) or not values or any(v not in allowed for v in values):
        raise UserError(f"params.yaml: 'paper.{key}' must be a non-empty list of {', '.join(allowed)}; got {values!r}")
    return values


GRID_KEYS = {"model.family", "model.hops", "model.variant", "train.seed", "train.max_epochs"}


def paper_overrides(section: dict, base: dict | None) -> tuple:
    """`paper.as_paper` as sorted (dotted key, value) pairs; each key must name a param of params.yaml."""
    as_paper = section.get("as_paper") or {}
    if not isinstance(as_paper, dict):
        raise UserError(f"params.yaml: 'paper.as_paper' must map dotted params to values, got {as_paper!r}")
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


def plan_from_params(paper: dict, model: dict, base: dict | None = None) -> Plan:
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
    if max_epochs < 1:
        raise UserError("params.yaml: 'paper.max_epochs' must be >= 1")
    defaults_row = paper.get("defaults_row", True)
    if not isinstance(defaults_row, bool):
        raise UserError(f"params.yaml: 'paper.defaults_row' must be true or false, got {defaults_row!r}")
    base_hops = model.get("hops", 3)
    if isinstance(base_hops, bool) or not isinstance(base_hops, int) or not 1 <= base_hops <= MAX_HOPS:
        raise UserError(
            f"params.yaml: 'model.hops' (the hops of Table 2 and 4 rows) must be an integer in "
            f"1..{MAX_HOPS}, got {base_hops!r}"
        )
    rows = _rows(tables, families, hops, variants, base_hops, defaults_row)
    return Plan(
        rows,
        sorted(set(seeds)),
        max_epochs,
        Path(str(paper.get("out", "reports/paper_tables.md"))),
        base,
        paper_overrides(paper, base),
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


def _sections_equal(found: dict, expected: dict) -> bool:
    return all(found[s] == expected[s] for s in found.keys() & expected.keys())


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
