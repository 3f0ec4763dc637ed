"""Atomic writes: every file and folder the project produces appears whole or not at all.

A temporary sibling (a dot-name ending in `.tmp`, so DVC and readers can tell it from an output) is
written first and renamed over the target only when writing succeeded; on any failure it is removed.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common.errors import UserError

AT_FDCWD = -100
RENAME_EXCHANGE = 2  # linux/fs.h: swap two existing paths in one step


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
    restore_interrupted_replace(target)  # before the glob below, which would delete the old folder
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


def old_dir_of(target: Path) -> Path:
    """Where the fallback of `replace_dir` parks the old folder between its two renames."""
    return target.with_name(f".{target.name}.old.tmp")


def restore_interrupted_replace(target: str | Path) -> bool:
    """Put the old folder back when a kill between the two renames of `replace_dir` left no `target`."""
    target = Path(target)
    old = old_dir_of(target)
    if os.path.lexists(target) or not old.is_dir():
        return False
    os.replace(old, target)
    return True


def _load_renameat2():
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28 (musl, macOS): the fallback is used
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _load_renameat2()


def exchange_paths(first: Path, second: Path) -> bool:
    """Swap two existing paths in one system call (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):  # the file system cannot do it
        return False
    raise OSError(code, os.strerror(code), str(second))


def replace_dir(built: str | Path, target: str | Path) -> None:
    """Replace folder `target` by the finished folder `built` (the old one is deleted).

    One atomic exchange where the system has it; elsewhere two renames, and a kill between them is undone by
    the next `replace_dir` or `remove_leftovers` of `target` (the old folder comes back)."""
    built, target = Path(built), Path(target)
    restore_interrupted_replace(target)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} exists and is not a folder")
    if not target.exists():
        os.replace(built, target)
        return
    if exchange_paths(built, target):
        shutil.rmtree(built, ignore_errors=True)  # it holds the old folder now
        return
    old = old_dir_of(target)
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    os.replace(built, target)
    shutil.rmtree(old, ignore_errors=True)


def check_output_folder(out: str | Path, entries: Collection[str], what: str) -> None:
    """A stage's output folder is replaced whole: refuse one that holds anything but the `entries` the stage
    writes (a user's other files would be lost), and one that is or holds the working folder (`--out .`).

    `what` names the setting in the one-line error (e.g. "crawl.out", "--out")."""
    out = Path(out)
    if os.path.lexists(out) and not out.is_dir():
        raise UserError(f"{what} {out} exists and is not a folder")
    resolved = out.resolve()
    if Path.cwd().resolve().is_relative_to(resolved):
        raise UserError(
            f"{what} {out} is or holds the working folder; it would be replaced whole: choose an empty or new folder"
        )
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in entries)
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise UserError(
                f"{what} {out} holds other things than this stage's output ({shown}); it would be "
                f"replaced whole: choose an empty or new folder"
            )
