"""Run every benchmark in turn: `python -m bench [--only crawl,segment,...]`."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).parent
RESULTS = BENCH_DIR / "results"


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(available())}")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or available()
    failed = []
    for name in names:
        print(f"== bench {name}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(BENCH_DIR / f"bench_{name}.py")])
        print(f"== bench {name}: exit {rc} in {time.perf_counter() - start:.0f} s", flush=True)
        if rc:
            failed.append(name)
    summary = {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json")) if p.stem != "summary"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
