"""dvc.yaml declares, for every stage, its own module and every project module it uses (so editing any of them
re-runs the stage), and every param it declares exists in params.yaml."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "crawler", "sitegen", "pipeline", "model", "tools")
# dotted names in strings (Scrapy loads spiders, pipelines and middlewares by name from its settings)
DOTTED_RE = re.compile(r"""["']((?:common|crawler|sitegen|pipeline|model|tools)(?:\.\w+)+)""")


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    for candidate in (REPO.joinpath(*parts).with_suffix(".py"), REPO.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def _project_imports(path: Path) -> set[str]:
    source = path.read_text(encoding="utf-8")
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    found.update(DOTTED_RE.findall(source))
    names = set()
    for name in found:
        if name.split(".")[0] not in PACKAGES:
            continue
        while name and _module_file(name) is None:  # "crawler.pipelines.JsonLinesPipeline" -> the module
            name = name.rpartition(".")[0]
        if name:
            names.add(name)
    return names


def _closure(root: str) -> set[Path]:
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_project_imports(_module_file(name)))
    files = {_module_file(name) for name in seen}
    return {f for f in files if f.name != "__init__.py" or f.stat().st_size > 200}


DVC_FILES = ["dvc.yaml", "sources/zol/dvc.yaml", "sources/multizol/dvc.yaml"]


def _stages() -> dict:
    """Every stage of the main pipeline and of the source pipelines (whose wdir is the repository root)."""
    stages = {}
    for name in DVC_FILES:
        for stage, spec in yaml.safe_load((REPO / name).read_text(encoding="utf-8"))["stages"].items():
            assert spec.get("wdir", "../..") == "../.." or name == "dvc.yaml", f"{name}:{stage} runs elsewhere"
            stages[stage if name == "dvc.yaml" else f"{name}:{stage}"] = spec
    return stages


def test_every_pipeline_file_is_checked() -> None:
    found = [*REPO.glob("dvc.yaml"), *REPO.glob("*/dvc.yaml"), *REPO.glob("*/*/dvc.yaml")]
    assert sorted(str(p.relative_to(REPO)) for p in found) == sorted(DVC_FILES)


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_stage_deps_list_every_module_it_imports(stage: str) -> None:
    spec = _stages()[stage]
    match = re.search(r"python -m ([\w.]+)", spec["cmd"])
    assert match, f"stage {stage} does not run a project module"
    needed = {str(p.relative_to(REPO)) for p in _closure(match.group(1))}
    declared = {d.rstrip("/") for d in spec["deps"] if isinstance(d, str)}
    folders = {d for d in declared if (REPO / d).is_dir()}  # a package folder covers every module in it
    missing = {f for f in needed - declared if not any(f.startswith(folder + "/") for folder in folders)}
    assert missing == set(), f"{stage}: deps miss modules it imports"
    stale = {d for d in declared if d.endswith(".py") and not (REPO / d).is_file()}
    assert not stale, f"{stage}: deps name files that do not exist"


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_declared_params_exist(stage: str) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for dotted in _stages()[stage].get("params", []):
        node = params
        for part in dotted.split("."):
            assert isinstance(node, dict) and part in node, f"{stage}: param {dotted} not in params.yaml"
            node = node[part]


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("common", {"crawler", "sitegen", "pipeline", "model"}),
        ("crawler", {"sitegen", "pipeline", "model"}),
        ("sitegen", {"pipeline", "model"}),
        ("pipeline", {"crawler", "sitegen", "model", "tools"}),
        ("model", {"crawler", "sitegen", "tools"}),
    ],
)
def test_imports_follow_the_data(package: str, forbidden: set[str]) -> None:
    """common is the floor; the crawler knows nothing downstream (nor the site generator); data stages never
    import the crawler or the model."""
    offenders = {
        f"{path.relative_to(REPO)} imports {name}"
        for path in sorted((REPO / package).rglob("*.py"))
        for name in _project_imports(path)
        if name.split(".")[0] in forbidden
    }
    assert not offenders


# params that change no output, so that changing them must not re-run a stage
UNTRACKED_PARAMS = {
    **{
        f"paper.{key}": "read by python -m tools.paper, which runs experiments; no stage reads it"
        for key in ("tables", "families", "hops", "variants", "seeds", "max_epochs", "defaults_row", "out")
    },
}
# paper.as_paper.<section.param>: values the grid passes to its experiments with -S; no stage reads them there
UNTRACKED_PREFIXES = ("paper.as_paper.",)


def _leaf_keys(node: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        keys |= _leaf_keys(value, dotted + ".") if isinstance(value, dict) else {dotted}
    return keys


def test_every_param_is_declared_by_a_stage() -> None:
    """A param that no stage declares could change an output while `dvc repro` thinks all is up to date."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    dvc_text = "".join((REPO / name).read_text(encoding="utf-8") for name in DVC_FILES)
    declared = {d for spec in _stages().values() for d in spec.get("params", [])}
    interpolated = set(re.findall(r"\$\{([\w.]+)\}", dvc_text))
    prefixes = UNTRACKED_PREFIXES + tuple(f"{d}." for d in declared)  # a declared section covers its keys
    undeclared = {
        key
        for key in _leaf_keys(params) - declared - interpolated - set(UNTRACKED_PARAMS)
        if not key.startswith(prefixes)
    }
    assert not undeclared, f"params no stage declares: {sorted(undeclared)}"
