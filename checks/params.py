"""Check every section of params.yaml before `dvc repro` touches an output.

    python -m checks.params [--params params.yaml]

DVC deletes a stage's outputs before running its command, so a typo found by the stage itself (say
`split.train: 1.5`) costs the split outputs and everything the stages before it recomputed. This runs each stage's
own validation of its section (the same functions the stages call, nothing re-implemented), in pipeline order, and
stops at the first error: one line naming the key, exit status 2. It reads no data and writes nothing; inputs that
only a run can check (a mirror folder, the Multi-ZOL release, lexicon files) are left to their stages.
`make run` runs it first.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from common.errors import cli_entry
from common.params import DEFAULT_PARAMS, load_params, read_section, section_of
from crawler.params import read_crawl_params
from model.settings import Settings
from pipeline.clean import CleanParams
from pipeline.features.config import FeatureConfig
from pipeline.import_multizol import MultizolParams
from pipeline.paths import DataParams
from pipeline.segment import SegmentParams
from pipeline.split import SplitParams
from sitegen.mirror import SampleParams
from tools.paper_grid import base_params, plan_from_params

# (sections it reads, check of the whole params file): each reads its sections the way its stage does
CHECKS: list[tuple[tuple[str, ...], Callable[[dict], object]]] = [
    (("sample",), lambda p: read_section(SampleParams, p["sample"], "sample")),
    (("crawl",), lambda p: read_crawl_params(p["crawl"])),
    (("multizol",), lambda p: read_section(MultizolParams, p["multizol"], "multizol")),
    (("data",), lambda p: read_section(DataParams, p["data"], "data")),
    (("clean",), lambda p: read_section(CleanParams, p["clean"], "clean")),
    (("split",), lambda p: read_section(SplitParams, p["split"], "split")),
    (("segment",), lambda p: read_section(SegmentParams, p["segment"], "segment")),
    (("features",), lambda p: read_section(FeatureConfig, p["features"], "features")),
    (("model", "embeddings", "train"), Settings.from_params),
    (("paper", "model"), lambda p: plan_from_params(p["paper"], p["model"], base_params(p))),
]


def check_params(path: str = str(DEFAULT_PARAMS)) -> list[str]:
    """Validate every section of the params file; returns the sections checked. The first bad value raises a
    UserError naming it (a missing section too)."""
    params = load_params(None, path)
    checked: list[str] = []
    for sections, check in CHECKS:
        for section in sections:
            section_of(params, section, path)  # a missing section: the stages' own message
        check(params)
        checked += [s for s in sections if s not in checked]
    return checked


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m checks.params",
        description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 all valid, 2 the first error (one line on stderr).",
    )
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="params file (default: %(default)s)")
    args = parser.parse_args(argv)
    checked = check_params(args.params)
    print(f"params: {args.params} valid ({', '.join(checked)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
