"""`scrapy crawl` that exits non-zero when the spider wrote no reviews (3), was interrupted (4), met layout drift in
its field coverage (5), was blocked by the site (6) or could not reach it (7), so DVC stops; for 5-7 the last line
on stderr names the cause and the remedy (crawler.blocking)."""
from __future__ import annotations

import sys

from scrapy import signals
from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError

EXIT_NO_REVIEWS = 3
EXIT_INTERRUPTED = 4


class Command(ScrapyCrawlCommand):
    def run(self, args, opts) -> None:
        if len(args) != 1:
            raise UsageError("running 'scrapy crawl' needs exactly one spider name")
        crawler = self._create_crawler(args[0])
        outcome: dict[str, str] = {}

        def on_closed(spider, reason: str) -> None:
            outcome["reason"] = reason

        crawler.signals.connect(on_closed, signal=signals.spider_closed)
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        failure = getattr(crawler.spider, "crawl_failure", None)
        if self.crawler_process.bootstrap_failed:
            self.exitcode = 1
        elif failure is not None:  # blocked, network or layout drift: one line with the cause and the remedy
            print(f"error: {failure.line}", file=sys.stderr, flush=True)
            self.exitcode = failure.exit_code
        elif outcome.get("reason") not in (None, "finished"):  # first: an interrupted crawl may have written nothing yet
            self.exitcode = EXIT_INTERRUPTED
        elif crawler.spider is not None and getattr(crawler.spider, "reviews_written", None) == 0:
            self.exitcode = EXIT_NO_REVIEWS
