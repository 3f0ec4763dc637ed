"""The code's shape (docs/testing.md): no module over 400 lines and no function over 60 (tests aside), no import
cycle (imports inside functions count), a stage module never imports another stage module, and params are read
through common.params.read_section only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "crawler", "pipeline", "model", "tools", "sitegen", "bench", "checks")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _sources() -> dict[str, Path]:
    """Dotted module name -> file, for every project module outside tests."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _sources()


def _imports(name: str, path: Path) -> set[str]:
    """Project modules `name` imports anywhere in its file (top level, functions, TYPE_CHECKING blocks)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in MODULES and m != name}


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(REPO)): n
        for path in MODULES.values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_over_60_lines() -> None:
    long = {}
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(REPO)}:{node.lineno} {node.name}"] = lines
    assert long == {}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    # a package's __init__ importing its own modules is no cycle of jobs: leave package-to-member edges out
    graph = {name: {m for m in deps if not m.startswith(name + ".")} for name, deps in graph.items()}
    assert _cycles(graph) == []


def _stage_modules() -> dict[str, str]:
    stages = {}
    for dvc_file in (REPO / "dvc.yaml", *sorted(REPO.glob("sources/*/dvc.yaml"))):
        for stage, spec in yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["stages"].items():
            match = re.search(r"python -m ([\w.]+)", spec["cmd"])
            if match:
                stages[stage] = match.group(1)
    return stages


@pytest.mark.parametrize("stage", sorted(_stage_modules()))
def test_a_stage_module_never_imports_another_stage_module(stage: str) -> None:
    stage_modules = _stage_modules()
    module = stage_modules[stage]
    others = {m for s, m in stage_modules.items() if s != stage and m != module}
    # a stage that is a package (pipeline.features) owns its members
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_imports(name, MODULES[name]))
    reached = {m for m in seen for other in others if m == other or m.startswith(other + ".")}
    assert reached == set(), f"{module} reaches other stages' modules"


def test_params_are_read_through_one_helper() -> None:
    """No field-by-field reads of a params section: every section is one dataclass through read_section."""
    offenders = [
        str(path.relative_to(REPO))
        for name, path in MODULES.items()
        if name != "common.params" and re.search(r"\brequire(_int_in)?\(", path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
