"""DVC stage `crawl`: run `scrapy crawl zol` with params.yaml's `crawl` section and rewrite `<out>/` whole.

    python -m crawler.crawl [--params params.yaml] [--jobdir DIR] [--backend local|redis] [--redis-url URL]
                            [--redis-key KEY] [--workers N]

With `mirror: ""` it crawls the live site politely; with `mirror` set to a folder or to http://127.0.0.1:PORT it
reads that offline mirror. `polite: auto` switches politeness off for a mirror folder only (nothing to be polite to);
an HTTP mirror is crawled with the live settings (delay, AutoThrottle, retry back-off), so it behaves as live.
The crawl writes into a staging folder beside `<out>` that replaces `<out>` only when the crawl succeeded, so stale
reviews or images never survive and a failed crawl leaves the previous output alone; a lock beside `<out>` refuses
a second crawl into it meanwhile (crawler.staging, the same for `scrapy crawl zol -a out=...` by hand). An `<out>`
holding anything but a crawl's output is refused, never replaced. A --jobdir holding a partial crawl made with other
arguments is refused too.
How the crawl runs is not a param (changing it re-runs nothing): with `--backend redis` (env ZOL_BACKEND) the stage
resets the frontier `--redis-key` (ZOL_REDIS_KEY, default zol) in the Redis at `--redis-url` (REDIS_URL, default
redis://127.0.0.1:6379/0), starts `--workers` (ZOL_CRAWL_WORKERS, default 2) `scrapy crawl zol` processes sharing it
(workers on other machines may join: docs/crawling.md, "Crawling on several machines"), waits for them and merges
their folders into `<out>` (crawler.merge).
Exit status: 0 ok, 2 bad params (or another crawl holds `<out>`'s lock), 3 the crawl yielded no reviews,
4 interrupted, 5 layout drift (a field a review format always carries below crawl.min_field_coverage, with
crawl.fail_on_layout_drift), 6 blocked by the site (verification page, stub, 403/429 after the retries), 7 the site
could not be reached (DNS, refused, timeout), 8 the shared Redis frontier failed (lost its state, or unreachable),
other = scrapy failed. For 5-7 the last line of stderr names the cause and the remedy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from common.contract import STATS_FILE
from common.errors import UserError
from common.stage import run_stage, stage_parser
from crawler.output import summary_line
from crawler.params import (
    MIRROR_SPEED_SETTINGS,
    CrawlParams,
    check_mirror,
    load_crawl_params,
    mirror_crawl_date,
)
from crawler.resume import ResumeMismatch, check_arguments
from crawler.run_options import RunOptions, add_run_options, run_options
from crawler.staging import CrawlOutput, previous_output_note

REPO = Path(__file__).resolve().parents[1]
EXIT_REASONS = {
    2: "bad arguments or output folder (see above)",
    3: "the crawl yielded no reviews (layout drift or an empty mirror)",
    4: "the crawl was interrupted",
    5: "layout drift (see the line above)",
    6: "the site blocked the crawl (see the line above)",
    7: "the site could not be reached (see the line above)",
    8: "the shared Redis frontier failed (see above)",
}


class CrawlFailed(Exception):
    """The crawl ended non-zero: the stage exits with its status, after one line saying why and where its output is."""

    def __init__(self, exit_code: int, line: str) -> None:
        super().__init__(line)
        self.exit_code = exit_code


def check_jobdir(jobdir: str | None, params: CrawlParams, mirror: str) -> None:
    try:
        check_arguments(jobdir, params.crawl_arguments(params.crawl_day(), mirror))
    except ResumeMismatch as exc:
        raise UserError(str(exc)) from None


def scrapy_command(
    args: dict[str, str],
    out: Path,
    mirror: str,
    jobdir: str | None,
    polite: bool = False,
    extra_settings: list[str] | tuple[str, ...] = (),
) -> list[str]:
    command = [sys.executable, "-m", "scrapy", "crawl", "zol"]
    for key, value in args.items():
        command += ["-a", f"{key}={value}"]
    settings = [f"ZOL_OUT={out}", f"ZOL_MIRROR={mirror}", *extra_settings]  # `scrapy crawl` stages <out> itself
    if not polite:
        settings += MIRROR_SPEED_SETTINGS
    if mirror:
        if args.get("crawl_date") and not os.environ.get("ZOL_CRAWLED_AT"):
            # a mirror is a snapshot taken on its crawl date: stamping that makes a re-crawl write the same bytes
            settings.append(f"ZOL_CRAWLED_AT={args['crawl_date']}T00:00:00+00:00")
    if jobdir:
        settings.append(f"JOBDIR={jobdir}")
    for setting in settings:
        command += ["-s", setting]
    return command


def worker_folders(staging: Path, workers: int) -> list[Path]:
    """The folders of the stage's redis workers, beside the staging folder (kept when a worker failed)."""
    return [staging.with_name(f"{staging.name}.worker{i}") for i in range(workers)]


def run_redis_workers(command: Callable[[Path], list[str]], output: CrawlOutput, env: dict, run: RunOptions) -> int:
    """Reset the frontier, run `run.workers` scrapy processes on it (`command(folder)`, each writing a folder of its
    own) and merge their folders into the staging folder."""
    from crawler.frontier import Frontier, connect  # redis: imported only for a shared crawl
    from crawler.merge import merge

    frontier = Frontier(connect(run.redis_url), run.redis_key)
    frontier.reset()  # a new crawl id: a worker that finds it gone (Redis restarted or flushed) aborts
    staging = output.staging
    folders = worker_folders(staging, run.workers)
    env = {
        **env,
        "ZOL_BACKEND": "redis",
        "REDIS_URL": run.redis_url,
        "ZOL_REDIS_KEY": run.redis_key,
        "ZOL_REDIS_CRAWL_ID": frontier.crawl_id,
    }
    processes = []
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        processes.append(subprocess.Popen(command(folder), cwd=REPO, env=env))
    codes = [process.wait() for process in processes]
    failed = next((code for code in codes if code != 0), 0)
    if failed:
        return failed
    summary = merge(folders, staging)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if summary["reviews"] else 3


def failure(returncode: int, output: CrawlOutput, run: RunOptions) -> CrawlFailed:
    """The crawl's status, with the line saying why it failed and where this run's output is."""
    kept = str(output.staging)
    if run.backend == "redis" and returncode != 3:  # a worker failed: nothing merged, the output is in their folders
        folders = worker_folders(output.staging, run.workers)
        kept = f"{folders[0]}" + (f" to {folders[-1].name}" if len(folders) > 1 else "")
    reason = EXIT_REASONS.get(returncode, "scrapy failed")
    return CrawlFailed(returncode, f"{reason}; {previous_output_note(output.out)}; this run's output is in {kept}")


def crawl(args: argparse.Namespace) -> str:
    """The stage: check everything that can be checked first, crawl, and return the summary line."""
    params = load_crawl_params(args.params)
    run = run_options(args)
    if run.backend == "redis" and args.jobdir:
        raise UserError("--jobdir is for --backend local; the Redis frontier is a redis crawl's resume state")
    mirror = check_mirror(params.mirror)
    output = CrawlOutput(Path(params.out).resolve())
    output.probe()  # another crawl into `out`, or a foreign `out`: one line now, before anything starts
    if not params.crawl_date:
        params = replace(params, crawl_date=mirror_crawl_date(mirror))
        params.check()
    check_jobdir(args.jobdir, params, mirror)
    env = {
        **os.environ,
        "ZOL_MIRROR": mirror,
        "ZOL_BACKEND": run.backend,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
    }
    where = "mirror " + mirror if mirror else "the live site (polite: expect hours)"
    shared = f" ({run.workers} worker(s) on {run.redis_url})" if run.backend == "redis" else ""
    print(f"crawl: {where} -> {output.out}{shared}", flush=True)
    spider, polite, settings = params.spider_arguments(), params.is_polite(mirror), params.scrapy_settings(run.backend)
    if run.backend == "redis":  # the stage stages and locks; with the local backend `scrapy crawl` does

        def command(folder: Path) -> list[str]:
            return scrapy_command(spider, folder, mirror, None, polite, settings)

        with output.acquire():
            returncode = run_redis_workers(command, output, env, run)
            if returncode == 0:
                output.commit()
    else:
        returncode = subprocess.call(
            scrapy_command(spider, output.out, mirror, args.jobdir, polite, settings), cwd=REPO, env=env
        )
    if returncode != 0:
        raise failure(returncode, output, run)
    return summary_line(json.loads((output.out / STATS_FILE).read_text(encoding="utf-8")))


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("python -m crawler.crawl", __doc__)
    parser.add_argument("--jobdir", default=None, help="Scrapy JOBDIR: a killed crawl resumes from here")
    add_run_options(parser)
    try:
        return run_stage(parser, crawl, argv)
    except CrawlFailed as failed:  # exit statuses 3-8 (and scrapy's own) pass through: see the module doc
        print(f"error: {failed}", file=sys.stderr)
        return failed.exit_code


if __name__ == "__main__":
    sys.exit(main())
