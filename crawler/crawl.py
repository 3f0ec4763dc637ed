"""DVC stage `crawl`: run `scrapy crawl zol` with params.yaml's `crawl` section and rewrite `<out>/` whole.

With `mirror: ""` it crawls the live site politely; with `mirror` set to a folder or to http://127.0.0.1:PORT it
reads that offline mirror. `polite: auto` switches politeness off for a mirror folder only (nothing to be polite to);
an HTTP mirror is crawled with the live settings (delay, AutoThrottle, retry back-off), so it behaves as live.
The crawl writes into a staging folder beside `<out>` that replaces `<out>` only when the crawl succeeded, so stale
reviews or images never survive and a failed crawl leaves the previous output alone; a lock beside `<out>` refuses
a second crawl into it meanwhile (crawler.staging, the same for `scrapy crawl zol -a out=...` by hand). An `<out>`
holding anything but a crawl's output is refused, never replaced. A --jobdir holding a partial crawl made with other
arguments is refused too.
With `backend: redis` the stage resets the frontier `redis_key` in the Redis at `redis_url`, starts `workers`
`scrapy crawl zol` processes sharing it (workers on other machines may join: docs/crawling.md, "Crawling on several
machines"), waits for them and merges their folders into `<out>` (crawler.merge).
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
import time
import urllib.request
from datetime import date
from pathlib import Path

from common.contract import STATS_FILE
from common.errors import UserError, cli_entry
from common.params import load_params, require
from crawler.resume import ResumeMismatch, check_arguments
from crawler.spiders.zol import ZolSpider
from crawler.staging import CrawlOutput, previous_output_note

REPO = Path(__file__).resolve().parents[1]
MIRROR_SPEED_SETTINGS = (
    "AUTOTHROTTLE_ENABLED=0",
    "DOWNLOAD_DELAY=0",
    "RETRY_BACKOFF_BASE=0",
    "CONCURRENT_REQUESTS=32",
    "CONCURRENT_REQUESTS_PER_DOMAIN=16",
    "ZOL_REDIS_HOST_DELAY=0",
)
BACKENDS = ("local", "redis")


def spider_arguments(params: dict, crawl_date: str) -> dict[str, str]:
    """The spider's -a arguments from the `crawl` params (validated)."""
    args = {}
    for key in ("list_pages", "review_pages", "max_products", "max_images_per_review"):
        value = require(params, key, "crawl", int)
        if value < 0:
            raise UserError(f"params.yaml: 'crawl.{key}' must be >= 0, got {value}")
        args[key] = str(value)
    products = params.get("products") or ""
    if isinstance(products, (list, tuple)):
        products = ",".join(str(p) for p in products)
    products = str(products).replace(" ", "")
    if products and not all(p.isdigit() for p in products.split(",")):
        raise UserError(f"params.yaml: 'crawl.products' must be comma-separated product ids, got {products!r}")
    if products:
        args["products"] = products
    if crawl_date:
        try:
            date.fromisoformat(crawl_date)
        except ValueError:
            raise UserError(
                f"params.yaml: 'crawl.crawl_date' must be an ISO date (YYYY-MM-DD) or \"\", got {crawl_date!r}"
            ) from None
        args["crawl_date"] = crawl_date
    return args


def resolve_crawl_date(params: dict, mirror: str) -> str:
    """`crawl.crawl_date`, else the mirror's manifest date (its yearless dates were written for it), else ''."""
    crawl_date = str(params.get("crawl_date") or "")
    if crawl_date or not mirror:
        return crawl_date
    try:
        if mirror.startswith(("http://", "https://")):  # a loopback server whose root is a mirror folder
            with urllib.request.urlopen(f"{mirror.rstrip('/')}/manifest.json", timeout=10) as answer:
                manifest = json.loads(answer.read().decode("utf-8"))
        else:
            path = Path(mirror) / "manifest.json"
            manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):  # no manifest (a hand-made mirror): dates fall back to today
        return ""
    return str(manifest.get("crawl_date") or "")


def is_polite(params: dict, mirror: str) -> bool:
    """`crawl.polite`: true, false, or auto (polite unless the crawl reads a mirror folder)."""
    value = params.get("polite", "auto")
    if value == "auto":
        return not mirror or mirror.startswith(("http://", "https://"))
    if not isinstance(value, bool):
        raise UserError(f"params.yaml: 'crawl.polite' must be true, false or auto, got {value!r}")
    return value


def check_mirror(mirror: str) -> str:
    """A mirror folder (made absolute) or an http(s):// mirror; "" = the live site."""
    mirror = mirror.strip()
    if mirror and not mirror.startswith(("http://", "https://")):
        if not Path(mirror).is_dir():
            raise UserError(
                f"crawl.mirror {mirror} is not a folder: generate it "
                f"(dvc repro sources/zol/dvc.yaml:sample_site, or python -m sitegen.mirror --out {mirror}) "
                f'or set crawl.mirror to "" for the live site'
            )
        mirror = str(Path(mirror).resolve())
    return mirror


def check_jobdir(jobdir: str | None, args: dict[str, str], mirror: str) -> None:
    try:
        check_arguments(jobdir, ZolSpider(**args).crawl_arguments(mirror))
    except ResumeMismatch as exc:
        raise UserError(str(exc)) from None


def crawl_settings(params: dict, backend: str = "local") -> list[str]:
    """Scrapy settings from the `crawl` params: identification, Referer, delay (a redis crawl's is crawl-wide) and
    the drift threshold. A mirror folder's speed settings (polite false) come after them and win."""
    user_agent = str(params.get("user_agent") or "").strip()
    referer = str(params.get("referer") or "").strip()
    delay = params.get("download_delay", 1.0)
    coverage = params.get("min_field_coverage", 0.9)
    fail = params.get("fail_on_layout_drift", True)
    if not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0:
        raise UserError(f"params.yaml: 'crawl.download_delay' must be a number of seconds >= 0, got {delay!r}")
    if not isinstance(coverage, (int, float)) or isinstance(coverage, bool) or not 0 <= coverage <= 1:
        raise UserError(f"params.yaml: 'crawl.min_field_coverage' must be a share from 0 to 1, got {coverage!r}")
    if not isinstance(fail, bool):
        raise UserError(f"params.yaml: 'crawl.fail_on_layout_drift' must be true or false, got {fail!r}")
    delay_setting = "ZOL_REDIS_HOST_DELAY" if backend == "redis" else "DOWNLOAD_DELAY"
    settings = [
        f"{delay_setting}={delay}",
        f"ZOL_MIN_FIELD_COVERAGE={coverage}",
        f"ZOL_FAIL_ON_LAYOUT_DRIFT={'1' if fail else '0'}",
    ]
    if user_agent:
        settings.append(f"USER_AGENT={user_agent}")
    if referer:
        settings.append(f"ZOL_REFERER={referer}")
    return settings


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


def check_backend(params: dict) -> str:
    backend = params.get("backend", "local")
    if backend not in BACKENDS:
        raise UserError(f"params.yaml: 'crawl.backend' must be local or redis, got {backend!r}")
    return backend


def check_params(params: dict) -> None:
    """The `crawl` section as main checks it, without touching the disk or the network: the mirror folder is the
    sample_site stage's output (it may not exist before `dvc repro`), a mirror's manifest date is not read."""
    backend = check_backend(params)
    if backend == "redis":
        redis_options(params)
    require(params, "out", "crawl", str)
    mirror = str(params.get("mirror") or "").strip()
    is_polite(params, mirror)
    crawl_settings(params, backend)
    spider_arguments(params, str(params.get("crawl_date") or ""))


def redis_options(params: dict) -> tuple[str, str, int]:
    """(redis_url, redis_key, workers) of `backend: redis`, validated."""
    url = str(params.get("redis_url") or "")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise UserError(f"params.yaml: 'crawl.redis_url' must be a redis:// URL, got {url!r}")
    from crawler.frontier import KEY_RE

    key = str(params.get("redis_key") or "")
    if not KEY_RE.match(key):
        raise UserError(f"params.yaml: 'crawl.redis_key' must be letters, digits, '_', '.' or '-', got {key!r}")
    workers = require(params, "workers", "crawl", int)
    if workers < 1:
        raise UserError(f"params.yaml: 'crawl.workers' must be >= 1, got {workers}")
    return url, key, workers


def worker_folders(staging: Path, workers: int) -> list[Path]:
    """The folders of the stage's redis workers, beside the staging folder (kept when a worker failed)."""
    return [staging.with_name(f"{staging.name}.worker{i}") for i in range(workers)]


def run_redis_workers(
    args: dict[str, str],
    output: CrawlOutput,
    mirror: str,
    polite: bool,
    env: dict,
    url: str,
    key: str,
    workers: int,
    extra_settings: list[str] | tuple[str, ...] = (),
) -> int:
    """Reset the frontier, run `workers` scrapy processes on it and merge their folders into the staging folder."""
    from crawler.frontier import Frontier, connect
    from crawler.merge import merge

    frontier = Frontier(connect(url), key)
    frontier.reset()  # a new crawl id: a worker that finds it gone (Redis restarted or flushed) aborts
    staging = output.staging
    folders = worker_folders(staging, workers)
    env = {
        **env,
        "ZOL_BACKEND": "redis",
        "REDIS_URL": url,
        "ZOL_REDIS_KEY": key,
        "ZOL_REDIS_CRAWL_ID": frontier.crawl_id,
    }
    processes = []
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        processes.append(
            subprocess.Popen(scrapy_command(args, folder, mirror, None, polite, extra_settings), cwd=REPO, env=env)
        )
    codes = [process.wait() for process in processes]
    failed = next((code for code in codes if code != 0), 0)
    if failed:
        return failed
    summary = merge(folders, staging)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if summary["reviews"] else 3


def summary_line(stats: dict, seconds: float) -> str:
    pages = sum(stats.get("pages", {}).values())
    failures = sum(stats.get("page_failures", {}).values()) + sum(stats.get("parse_failures", {}).values())
    layout = sum(stats.get("layout_errors", {}).values())
    lost = sum(stats.get("reviews_lost", {}).values())
    images = stats.get("images", {})
    line = (
        f"crawl: {pages} pages -> {stats.get('reviews', 0)} reviews ({lost} lost), images {images.get('ok', 0)} ok / "
        f"{images.get('failed', 0)} failed, {failures} page/parse failures, {layout} layout errors, "
        f"{stats.get('retries', {}).get('count', 0)} retries, {seconds:.1f}s"
    )
    poison = sum(stats.get("frontier_poison", {}).values())
    if poison:  # set aside unread: were any this crawl's own requests, the reviews behind them are missing
        line += f"; {poison} Redis queue member(s) set aside as poison, unread (crawl_stats.json frontier_poison)"
    return line


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.crawl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default="params.yaml", help="parameter file (section `crawl`)")
    parser.add_argument("--jobdir", default=None, help="Scrapy JOBDIR: a killed crawl resumes from here")
    opts = parser.parse_args(argv)

    params = load_params("crawl", opts.params)
    backend = check_backend(params)
    redis = redis_options(params) if backend == "redis" else None
    if redis and opts.jobdir:
        raise UserError("--jobdir is for crawl.backend local; the Redis frontier is a redis crawl's resume state")
    mirror = check_mirror(str(params.get("mirror") or ""))
    out = Path(require(params, "out", "crawl", str)).resolve()
    output = CrawlOutput(out)
    output.probe()  # another crawl into `out`, or a foreign `out`: one line now, before anything starts
    polite = is_polite(params, mirror)
    extra = crawl_settings(params, backend)
    args = spider_arguments(params, resolve_crawl_date(params, mirror))
    check_jobdir(opts.jobdir, args, mirror)
    started = time.monotonic()
    env = {
        **os.environ,
        "ZOL_MIRROR": mirror,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
    }
    where = "mirror " + mirror if mirror else "the live site (polite: expect hours)"
    print(f"crawl: {where} -> {out}" + (f" ({redis[2]} worker(s) on {redis[0]})" if redis else ""), flush=True)
    if redis:  # the stage stages and locks; with the local backend `scrapy crawl` does (crawler.commands.crawl)
        with output.acquire():
            returncode = run_redis_workers(args, output, mirror, polite, env, *redis, extra_settings=extra)
            if returncode == 0:
                output.commit()
    else:
        returncode = subprocess.call(scrapy_command(args, out, mirror, opts.jobdir, polite, extra), cwd=REPO, env=env)
    stats_path = (out if returncode == 0 else output.staging) / STATS_FILE
    stats = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.is_file() else {}
    if returncode != 0:
        reason = {
            2: "bad arguments or output folder (see above)",
            3: "the crawl yielded no reviews (layout drift or an empty mirror)",
            4: "the crawl was interrupted",
            5: "layout drift (see the line above)",
            6: "the site blocked the crawl (see the line above)",
            7: "the site could not be reached (see the line above)",
            8: "the shared Redis frontier failed (see above)",
        }.get(returncode, "scrapy failed")
        kept = str(output.staging)
        if redis and returncode != 3:  # a worker failed: nothing was merged, its output is in the worker folders
            folders = worker_folders(output.staging, redis[2])
            kept = f"{folders[0]}" + (f" to {folders[-1].name}" if len(folders) > 1 else "")
        print(f"error: {reason}; {previous_output_note(out)}; this run's output is in {kept}", file=sys.stderr)
        return returncode
    print(summary_line(stats, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
