"""The shared entry of a DVC stage's `main()`: argument parsing (`--params` and the stage's own run-only
options), one call that does the work and returns its summary, one summary line with the wall time, and the
one-line error handling of `cli_entry`."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from common.errors import cli_entry
from common.params import DEFAULT_PARAMS


def stage_parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """A parser with the stage's docstring as its help and `--params`."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="params file (default: %(default)s)")
    return parser


def run_stage(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], str],
    argv: list[str] | None = None,
) -> int:
    """Parse argv, call run(args) and print the summary it returns with the seconds it took; a UserError
    becomes one `error:` line and exit status 2 (common.errors.cli_entry)."""

    @cli_entry
    def entry() -> int:
        args = parser.parse_args(argv)
        started = time.perf_counter()
        summary = run(args)
        print(f"{summary}; {time.perf_counter() - started:.1f} s")
        return 0

    return entry()


def count_argument(described: str, words: tuple[str, ...] = (), minimum: int = 0) -> Callable[[str], int | str]:
    """An argparse `type` for a run-only count option (processes, workers, batch rows): a whole number >= `minimum`
    or one of `words`; anything else is refused as "must be <described>, got '<text>'"."""

    def parse(text: str) -> int | str:
        if text in words:
            return text
        try:
            count = int(text)
        except ValueError:
            count = minimum - 1
        if count < minimum:
            raise argparse.ArgumentTypeError(f"must be {described}, got {text!r}")
        return count

    return parse
