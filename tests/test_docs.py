"""The docs hold: README.md fits on a screen, every relative link and #anchor in README.md and docs/*.md resolves,
every `python -m MODULE` they name answers --help, and no doc points outside the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 200

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+).*?\1")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target "title"), not images
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
PYTHON_M = re.compile(r"\bpython3?(?:\.\d+)? -m ([A-Za-z_][\w.]*)")
OUTSIDE = ("../shared", "/work/")


def prose_lines(path: Path) -> list[str]:
    """The lines of a markdown file outside fenced code blocks (a `#` there is a shell comment, not a heading)."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lower case, punctuation removed, spaces made hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.lower().strip()
    text = re.sub(r"[^\w\- ]", "", text)  # unicode letters, digits, _ and - stay
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in `path`, repeated headings numbered as GitHub does (x, x-1, x-2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    """The link targets of `path`'s prose (inline code and fenced blocks left out)."""
    targets = []
    for line in prose_lines(path):
        targets += LINK.findall(INLINE_CODE.sub("", line))
    return targets


def broken_link(source: Path, target: str) -> str | None:
    """Why `target`, linked from `source`, does not resolve; None when it does or is not a relative link."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:: not checked (no network in tests)
        return None
    file_part, _, anchor = target.partition("#")
    linked = (source.parent / file_part).resolve() if file_part else source
    if not linked.exists():
        return f"{source.relative_to(REPO)}: {target}: no such file"
    if REPO not in linked.parents and linked != REPO:
        return f"{source.relative_to(REPO)}: {target}: outside the repository"
    if anchor and linked.suffix == ".md" and anchor not in anchors(linked):
        return f"{source.relative_to(REPO)}: {target}: no heading with anchor #{anchor} in {linked.relative_to(REPO)}"
    return None


def test_readme_fits_on_a_screen():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move details into docs/"


def test_slug_follows_github():
    assert (
        slug("What `crawl_stats.json` and the exit status add for this")
        == "what-crawl_statsjson-and-the-exit-status-add-for-this"
    )
    assert slug("The offline mirror's eras") == "the-offline-mirrors-eras"
    assert (
        slug("Training on several processes or machines (torchrun)")
        == "training-on-several-processes-or-machines-torchrun"
    )
    assert slug("7. The Multi-ZOL release") == "7-the-multi-zol-release"


def test_every_relative_link_and_anchor_resolves():
    assert len(DOCS) > 5, "README.md and docs/*.md not found"
    checked = [(doc, target) for doc in DOCS for target in links(doc)]
    assert len(checked) > 20, "too few links found: is the link pattern still right?"
    broken = [why for doc, target in checked if (why := broken_link(doc, target))]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_a_broken_link_or_anchor_is_reported():
    page = REPO / "docs" / "pipeline.md"
    assert broken_link(page, "no-such-page.md") is not None
    assert broken_link(page, "crawling.md#no-such-heading") is not None
    assert broken_link(page, "crawling.md#exit-status") is None
    assert broken_link(page, "#when-a-stage-fails") is None


def test_no_doc_points_outside_the_repository():
    offending = [
        f"{doc.relative_to(REPO)}:{number}: {line.strip()}"
        for doc in DOCS
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
        if any(mark in line for mark in OUTSIDE)
    ]
    assert not offending, "docs must not reference paths outside the repository:\n" + "\n".join(offending)


def named_modules() -> list[str]:
    modules = {m.rstrip(".") for doc in DOCS for m in PYTHON_M.findall(doc.read_text(encoding="utf-8"))}
    return sorted(modules)


def help_of(module: str) -> tuple[str, int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    return module, proc.returncode, (proc.stderr or proc.stdout)[-500:]


def test_every_python_m_module_in_the_docs_answers_help():
    modules = named_modules()
    assert "tools.predict" in modules and "crawler.crawl" in modules, modules
    with ThreadPoolExecutor(max_workers=4) as pool:  # most import torch: seconds each, so side by side
        results = list(pool.map(help_of, modules))
    failed = [f"python -m {module} --help: exit {code}\n{tail}" for module, code, tail in results if code != 0]
    assert not failed, "\n\n".join(failed)
