"""Atomic writes: every file and folder the project produces appears whole or not at all.

A temporary sibling (a dot-name ending in `.tmp`, so DVC and readers can tell it from an output) is
written first and renamed over the target only when writing succeeded; on any failure it is removed.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are ordinary readable files
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(data: bytes, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(text: str, path: str | Path) -> None:
    """UTF-8 with '\\n' line ends whatever the platform."""
    with atomic_path(path) as tmp:
        with tmp.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)


def write_json(obj: Any, path: str | Path, sort_keys: bool = True) -> None:
    """JSON (UTF-8, indented; keys sorted unless the order is meaningful) so re-runs write identical bytes."""
    write_text(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=sort_keys) + "\n", path)


def new_staging_dir(target: str | Path) -> Path:
    """An empty temporary folder beside `target`, to be filled and then swapped in with `replace_dir`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    staging.chmod(0o755)
    return staging


def remove_leftovers(target: str | Path) -> list[Path]:
    """Delete the temporary siblings of `target` that a killed writer left behind; return what was deleted.

    A SIGKILL skips the cleanup above, so each stage calls this for its outputs before writing them.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    removed = []
    for leftover in sorted(target.parent.glob(f".{target.name}.*.tmp")):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder; it replaces folder `target` whole only if the block succeeds.

    For outputs made of several files that must change together (the three split files): readers and DVC
    see either all the old files or all the new ones.
    """
    remove_leftovers(target)
    staging = new_staging_dir(target)
    try:
        yield staging
        replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_dir(built: str | Path, target: str | Path) -> None:
    """Replace folder `target` by the finished folder `built` with renames only (the old one is deleted)."""
    built, target = Path(built), Path(target)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} exists and is not a folder")
    if not target.exists():
        os.replace(built, target)
        return
    old = target.with_name(f".{target.name}.old.tmp")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    os.replace(built, target)
    shutil.rmtree(old, ignore_errors=True)
