"""What a failed page costs the `zol` spider: each failure counted by page kind, the reviews it held counted as
lost (or the list's data standing in for a long page), and a refusal or an unreachable site ending the crawl with
`crawl_failure`, one line naming cause and remedy (crawler.blocking). A mixin of the spider: it uses the spider's
request, counting and product helpers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import scrapy
from scrapy.exceptions import CloseSpider
from scrapy.spidermiddlewares.httperror import HttpError

from crawler.attribution import tracked
from crawler.blocking import BlockedPage, CrawlFailure, blocked_failure, is_network_failure, network_failure
from crawler.parse_list import Product
from crawler.parse_ranking import RankedProduct
from crawler.tally import ProductTally
from crawler.urls import ranking_url

logger = logging.getLogger("crawler.spiders.zol")
FATAL_WHEN_UNREACHABLE = ("ranking", "review_list")  # a network failure of these ends the crawl


class PageFailuresMixin:
    """page_failed (every request's errback) and request_dropped (the scheduler's signal)."""

    crawl_failure: CrawlFailure | None = None  # why the crawl must exit non-zero (crawler.commands.crawl)

    @tracked
    def page_failed(self, failure) -> Iterator[Any]:
        request = failure.request
        kind = request.meta.get("zol_kind", "other")
        status = failure.value.response.status if failure.check(HttpError) else None
        self._count(f"page_failures/{kind}")
        logger.error("%s page failed: %s (%s)", kind, request.url, status or repr(failure.value))
        fatal = self._failure_cause(failure, kind, request.url)
        for out in self._page_lost(kind, request, status):
            if fatal is None or not isinstance(out, scrapy.Request):
                yield out
        if fatal is not None:  # stop asking a site that refuses us (or cannot be reached)
            raise CloseSpider(fatal)

    def _failure_cause(self, failure, kind: str, url: str) -> str | None:
        """'blocked' or 'network' when the failure ends the crawl (then `crawl_failure` says why), else None."""
        if failure.check(BlockedPage):
            self._fail(blocked_failure(failure.value.kind, url, self.settings.get("USER_AGENT") or ""))
            return "blocked"
        if is_network_failure(failure.value):
            self._count(f"network/{kind}")
            if kind in FATAL_WHEN_UNREACHABLE:
                self._fail(network_failure(failure.value, url))
                return "network"
        return None

    def _fail(self, failure: CrawlFailure) -> None:
        if self.crawl_failure is None:
            self.crawl_failure = failure
            logger.error("%s", failure.line)

    def _page_lost(self, kind: str, request: scrapy.Request, status: int | None) -> Iterator[Any]:
        """What a failed page costs: the long page's list data stands in, an AJAX page answering an HTTP error is
        asked in the other AJAX forms (crawler.ajax_pages) and its reviews are lost when none answers, a review
        list's product is lost."""
        if kind == "long":  # the list page's data stands in for the long page
            yield self._fallback(request.meta["listed"], "its long page failed")
        elif kind == "ajax" and status is not None:  # the form may not exist: the others are asked
            yield from self._ajax_unanswered(
                request.meta, request.url, "missing" if status == 404 else f"http_{status}"
            )
        elif kind == "ajax":
            yield from self._ajax_page_lost(self._tally(request.meta), request.meta["page"], request.url)
        elif kind == "review_list":
            ranked: RankedProduct = request.meta["ranked"]
            tally = ProductTally(
                Product(ranked.product_id, ranked.name, None), ranked.listed_reviews, self.review_pages
            )
            self.tallies[ranked.product_id] = tally
            if tally.expected is None:
                self._count("products_of_unknown_size_failed")
                logger.error("the reviews of product %s are lost; how many is unknown", ranked.product_id)
            tally.lost_on_pages = tally.expected or 0
            self._lost(
                "review_list_failed",
                tally.lost_on_pages,
                "the review list of product %s failed (its ranking card counts %s)",
                ranked.product_id,
                ranked.listed_reviews,
            )
            self._end_product(tally)
        elif kind == "ranking" and not request.meta.get("guessed_url"):
            page, state = request.meta["page"], request.meta.get("ranking", self.ranking)
            if page < self.list_pages and not self._full(state):  # its pager is lost with it: the next by pattern
                yield self._ranking_request(ranking_url(page + 1), page + 1, state, guessed=True)

    def request_dropped(self, request: scrapy.Request, spider=None) -> None:
        """A request dropped by the scheduler gets no callback and no errback: counted, never silent."""
        kind = request.meta.get("zol_kind")
        if not kind:
            return
        self._count(f"requests_dropped/{kind}")
        logger.error("%s request dropped by the scheduler: %s", kind, request.url)
        if kind == "long":
            self._lost("long_request_dropped", 1, "review %s", request.meta["listed"].item.review_id)
