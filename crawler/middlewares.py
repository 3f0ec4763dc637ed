"""Downloader middlewares of the `zol` crawler: robots.txt checked for every request, a Referer on every request,
retries spaced out, and refusals (verification page, stub, 403/429) retried and then failed as blocked."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.http import Request, Response
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from crawler.blocking import BlockedPage, blocked_kind

logger = logging.getLogger(__name__)


class EveryRequestRobotsTxtMiddleware(RobotsTxtMiddleware):
    """Scrapy's RobotsTxtMiddleware, with its race fixed: while a host's robots.txt is being fetched, every request
    to that host waits on one Deferred, whose first waiter's callback returns None, so all later waiters get no
    parser and pass unchecked. Here each waiter gets a Deferred of its own, fired with the parser."""

    async def robot_parser(self, request: Request):
        netloc = urlparse_cached(request).netloc
        pending = self._parsers.get(netloc)
        if not isinstance(pending, Deferred):
            return await super().robot_parser(request)
        waiter: Deferred = Deferred()

        def hand_over(parser):
            waiter.callback(parser)
            return parser  # unchanged for the next waiter

        pending.addBoth(hand_over)
        return await maybe_deferred_to_future(waiter)


def retry_after_seconds(response: Response | None) -> float | None:
    """`Retry-After` in seconds (a number or an HTTP date), None when absent or unreadable."""
    if response is None:
        return None
    value = response.headers.get(b"Retry-After")
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        return max(0.0, (parsedate_to_datetime(text) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


class DefaultRefererMiddleware:
    """A `Referer` on every request (ZOL_REFERER, `crawl.referer`): the site serves its pages to browsers that come
    from its own pages. A request that names its own referer (AJAX, images, Scrapy's RefererMiddleware) keeps it."""

    def __init__(self, referer: str) -> None:
        self.referer = referer

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.settings.get("ZOL_REFERER") or "")

    def process_request(self, request: Request, spider=None) -> None:
        if self.referer and not request.headers.get(b"Referer"):
            request.headers[b"Referer"] = self.referer


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's RetryMiddleware, but a retry waits first: `Retry-After` when the server sends one, else
    RETRY_BACKOFF_BASE * 2^(attempt-1) seconds with jitter, at most RETRY_BACKOFF_MAX. The wait holds the request's
    downloader slot, so the whole host is given a rest, as a polite crawler should after a 429 or a 5xx."""

    def __init__(self, settings):
        super().__init__(settings)
        self.backoff_base = settings.getfloat("RETRY_BACKOFF_BASE", 0.0)
        self.backoff_max = settings.getfloat("RETRY_BACKOFF_MAX", 60.0)

    def _delay(self, request: Request, response: Response | None) -> float:
        attempt = request.meta.get("retry_times", 0) + 1
        hinted = retry_after_seconds(response)
        if hinted is not None:
            return min(hinted, self.backoff_max)
        if self.backoff_base <= 0:
            return 0.0
        return min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1) * random.uniform(0.75, 1.25))

    async def _wait(self, delay: float) -> None:
        if delay > 0:
            from twisted.internet import reactor  # the one Scrapy installed (imported late on purpose)

            self.crawler.stats.inc_value("zol/retry_backoff_s", round(delay, 3))
            await maybe_deferred_to_future(deferLater(reactor, delay, lambda: None))

    async def process_response(self, request: Request, response: Response, spider=None):
        result = super().process_response(request, response)
        if isinstance(result, Request):
            await self._wait(self._delay(request, response))
        return result

    async def process_exception(self, request: Request, exception: Exception, spider=None):
        result = super().process_exception(request, exception)
        if isinstance(result, Request):
            await self._wait(self._delay(request, None))
        return result


class BlockedPageMiddleware(BackoffRetryMiddleware):
    """A refusal (crawler.blocking: verification page, stub, 403, 429) to a page request is counted
    (`zol/blocked/<kind>`) and retried after the back-off, through the retry machinery (RETRY_TIMES, `retry/...`
    stats); when the retries are spent the request fails with BlockedPage, which the spider reports as blocked,
    never as layout drift. It sits before the redirect middlewares (a stub may be a meta refresh to the home page,
    which must not be followed as if it were the page); other answers and all exceptions pass through untouched."""

    async def process_response(self, request: Request, response: Response, spider=None):
        kind = blocked_kind(request.meta.get("zol_kind"), response)
        if not kind:
            return response
        self.crawler.stats.inc_value(f"zol/blocked/{kind}")
        logger.warning("the site refused %s (%s, %d bytes)", request.url, kind, len(response.body))
        retry = None if request.meta.get("dont_retry") else self._retry(request, f"blocked_{kind}")
        if retry is None:
            raise BlockedPage(kind, request.url)
        await self._wait(self._delay(request, response))
        return retry

    async def process_exception(self, request: Request, exception: Exception, spider=None):
        return None
