"""`scrapy crawl` as the project runs it: checked arguments, a staged output, and an exit status that reflects the
crawl.

- A spider argument the spider does not take (`-a mirorr=...`) is refused with one line naming the known ones.
- `-a mirror=FOLDER|http://127.0.0.1:PORT` reads an offline mirror as `crawl.mirror` does in the DVC stage (a folder
  mirror is crawled without politeness delays, and its manifest's date is the crawl date unless one is given).
- The output (`-a out=DIR`, else the setting ZOL_OUT) is written through crawler.staging.CrawlOutput: into a staging
  folder beside DIR, under a lock, swapped in only when the crawl succeeded; a failed or empty crawl leaves DIR as it
  was. (A worker of a shared crawl, ZOL_BACKEND=redis, writes its own journal folder directly; crawler.merge stages.)
- Exit status: 0 ok, 1 Scrapy could not start, 2 bad arguments or output folder, 3 no reviews, 4 interrupted,
  5 layout drift in the field coverage, 6 blocked by the site, 7 the site could not be reached (network),
  8 the shared Redis frontier failed (lost its state or stayed unreachable). For 5-7 the last line on stderr names
  the cause and the remedy (crawler.blocking).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from scrapy import signals
from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError

from common.contract import IMAGES_DIR
from common.errors import UserError
from crawler.params import (
    MIRROR_SPEED_SETTINGS,
    SPIDER_ARGUMENTS,
    CrawlParams,
    check_mirror,
    mirror_crawl_date,
    spider_params,
)

EXIT_NO_REVIEWS = 3
EXIT_INTERRUPTED = 4
EXIT_FRONTIER_FAILED = 8  # 5-7: crawler.blocking (layout drift, blocked, network)
FRONTIER_REASONS = ("frontier_lost", "redis_unreachable")
COMMAND_ARGUMENTS = ("mirror",)  # taken by this command, not passed to the spider


def known_arguments(spidercls) -> list[str]:
    """The -a names a spider takes (its `arguments`), and this command's own."""
    return sorted({*getattr(spidercls, "arguments", ()), *COMMAND_ARGUMENTS})


def apply_mirror(spargs: dict, set_setting: Callable[[str, str, str], None]) -> None:
    """`-a mirror=...`: what `crawl.mirror` does in the DVC stage (crawler.crawl), with `polite: auto`."""
    mirror = check_mirror(spargs.pop("mirror"))
    set_setting("ZOL_MIRROR", mirror, "cmdline")
    if not CrawlParams(polite="auto").is_polite(mirror):
        for setting in MIRROR_SPEED_SETTINGS:
            name, value = setting.split("=", 1)
            set_setting(name, value, "project")  # an explicit -s still wins
    if mirror and not spargs.get("crawl_date"):
        spargs["crawl_date"] = mirror_crawl_date(mirror)
    if mirror and spargs.get("crawl_date") and not os.environ.get("ZOL_CRAWLED_AT"):
        set_setting("ZOL_CRAWLED_AT", f"{spargs['crawl_date']}T00:00:00+00:00", "project")


class Command(ScrapyCrawlCommand):
    def run(self, args, opts) -> None:
        if len(args) != 1:
            raise UsageError("running 'scrapy crawl' needs exactly one spider name")
        try:
            crawler, output = self._prepare(args[0], opts.spargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            self.exitcode = 2
            return
        try:
            reason = self._crawl(crawler, opts.spargs)
            self.exitcode = self._exit_code(crawler, reason)
            if output is not None:
                self._finish(output, crawler)
            elif self.exitcode != 0:
                self._explain_failure(crawler)
        finally:
            if output is not None:
                output.release()

    def _prepare(self, name: str, spargs: dict):
        from crawler.staging import CrawlOutput

        crawler = self._create_crawler(name)
        unknown = sorted(set(spargs) - set(known_arguments(crawler.spidercls)))
        if unknown:
            raise UserError(
                f"unknown spider argument(s) {', '.join(unknown)}; known: "
                f"{', '.join(known_arguments(crawler.spidercls))}"
            )
        if "mirror" in spargs:
            apply_mirror(spargs, self._setter(crawler))
        spider_params({k: v for k, v in spargs.items() if k in SPIDER_ARGUMENTS})  # a bad value: one line, now
        if crawler.settings.get("ZOL_BACKEND") == "redis":
            return crawler, None
        output = CrawlOutput(spargs.get("out") or crawler.settings.get("ZOL_OUT"))
        output.acquire(keep_partial=bool(crawler.settings.get("JOBDIR")))  # a resume keeps its images
        spargs["out"] = str(output.staging)
        for name, value in (("ZOL_OUT", output.staging), ("FILES_STORE", output.staging / IMAGES_DIR)):
            self._setter(crawler)(name, str(value), "cmdline")  # over a `-s ZOL_OUT=` too
        return crawler, output

    def _setter(self, crawler) -> Callable[[str, str, str], None]:
        """set(name, value, priority) for this crawl: Scrapy copies the process's settings into the crawler again
        when it starts it (2.19), so a change goes to both."""
        targets = {id(s): s for s in (crawler.settings, self.crawler_process.settings)}.values()

        def set_both(name: str, value: str, priority: str) -> None:
            for settings in targets:
                settings.set(name, value, priority=priority)

        return set_both

    def _crawl(self, crawler, spargs: dict) -> str | None:
        outcome: dict[str, str] = {}

        def on_closed(spider, reason: str) -> None:
            outcome["reason"] = reason

        crawler.signals.connect(on_closed, signal=signals.spider_closed)
        self.crawler_process.crawl(crawler, **spargs)
        self.crawler_process.start()
        return outcome.get("reason")

    def _exit_code(self, crawler, reason: str | None) -> int:
        if self.crawler_process.bootstrap_failed:
            return 1
        if reason in FRONTIER_REASONS:
            return EXIT_FRONTIER_FAILED
        failure = getattr(crawler.spider, "crawl_failure", None)
        if failure is not None:  # blocked, network or layout drift
            return failure.exit_code
        if reason not in (None, "finished"):  # first: an interrupted crawl may have written nothing yet
            return EXIT_INTERRUPTED
        if crawler.spider is not None and getattr(crawler.spider, "reviews_written", None) == 0:
            return EXIT_NO_REVIEWS
        return 0

    @staticmethod
    def _explain_failure(crawler) -> None:
        """The last line on stderr: the cause and the remedy of a blocked, unreachable or drifted crawl."""
        failure = getattr(crawler.spider, "crawl_failure", None)
        if failure is not None:
            print(f"error: {failure.line}", file=sys.stderr, flush=True)

    def _finish(self, output, crawler) -> None:
        from crawler.resume import forget
        from crawler.staging import previous_output_note

        if self.exitcode != 0:
            print(
                f"error: the crawl failed (exit {self.exitcode}); {previous_output_note(output.out)}; this run's "
                f"output is in {output.staging}",
                file=sys.stderr,
            )
            self._explain_failure(crawler)
            return
        try:
            output.commit()
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            self.exitcode = 1
            return
        forget(crawler.settings.get("JOBDIR"))  # finished: the next crawl with this JOBDIR starts afresh
