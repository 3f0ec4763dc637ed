"""One clear message instead of a traceback for errors a user can cause."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable


class UserError(Exception):
    """Bad params, a missing input or a corrupt file: the message names the file and the fix."""


def cli_entry(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a stage's main(): a UserError prints `error: <message>` to stderr and exits 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return wrapper
