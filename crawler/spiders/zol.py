"""`scrapy crawl zol`: hot ranking -> ranked products -> review list + AJAX pages -> long reviews, as the paper crawled.

Arguments (-a): the `crawl` params list_pages, review_pages, products ("id,id": only these, no ranking), max_products,
max_images_per_review and crawl_date (default today UTC), with the params' defaults (crawler.params); out (output
folder, else setting ZOL_OUT).

Every review the site lists is either written (with the list's data when its long page cannot be had) or counted as
lost by reason (`zol/lost/<reason>`, logged at ERROR), and layout drift is loud (`zol/layout/<kind>`, ERROR): see
docs/zol-site.md for the pages (both eras: 2018 and 2026) and docs/crawling.md for what crawl_stats.json counts.
A refusal is not drift: a page the site keeps refusing (`zol/blocked/<kind>`, crawler.blocking), or a ranking or
review list the network never delivers, ends the crawl with `crawl_failure`, one line naming cause and remedy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import scrapy
from parsel import Selector
from scrapy import signals
from scrapy.http import Response

from common.contract import IMAGES_DIR
from crawler.ajax_pages import AjaxPagesMixin
from crawler.attribution import tracked
from crawler.items import ReviewItem
from crawler.page_failures import PageFailuresMixin
from crawler.params import SPIDER_ARGUMENTS, CrawlParams, spider_params
from crawler.parse_list import (
    ListedReview,
    declared_rating_count,
    has_more_reviews,
    parse_product,
    parse_review,
    review_nodes,
)
from crawler.parse_long import looks_like_long_review, parse_long_review
from crawler.parse_ranking import RankedProduct, next_ranking_page, parse_card, ranked_cards, ranking_list_links
from crawler.parse_text import unique
from crawler.resume import ResumeState, load_resume
from crawler.tally import ProductTally, RankingState
from crawler.urls import ALLOWED_DOMAINS, is_allowed_host, ranking_url, review_list_url

logger = logging.getLogger(__name__)

FIRST_AJAX_PAGE = 3  # pages 1-2 are embedded in review.shtml
FAR_SHORT = 0.1  # a product missing more than this share of its declared reviews is layout drift
PRIORITY = {"ranking": 0, "review_list": 10, "ajax": 20, "long": 30}


class ZolSpider(AjaxPagesMixin, PageFailuresMixin, scrapy.Spider):
    name = "zol"
    allowed_domains = list(ALLOWED_DOMAINS)
    arguments = (*SPIDER_ARGUMENTS, "out")  # the -a names it takes (crawler.commands.crawl refuses others)

    def __init__(self, params: CrawlParams | None = None, out: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.params = params = params or CrawlParams()
        self.list_pages, self.review_pages = params.list_pages, params.review_pages
        self.max_products, self.max_images_per_review = params.max_products, params.max_images_per_review
        self.only_products = list(params.product_ids)
        self.crawl_date = params.crawl_day()
        self.out = out
        self.ranking = RankingState()
        self.tallies: dict[str, ProductTally] = {}
        self.seen_review_ids: set[str] = set()
        self.long_urls: dict[str, str] = {}  # long-review URL -> the review whose page it is
        self.resume = ResumeState()
        # a shared crawl (backend redis): the frontier (crawler.frontier) shares the first listing of each review and
        # the holder of each long page between workers; the request state (ranking, tallies) travels in meta
        self.shared = None
        self.frontier_tracker = None

    @property
    def product_ids(self) -> list[str]:
        return self.ranking.product_ids

    def crawl_arguments(self, mirror: str) -> dict[str, Any]:
        """What a JOBDIR's partial output must have been crawled with to be resumed by this crawl."""
        return self.params.crawl_arguments(self.crawl_date, mirror)

    @classmethod
    def from_crawler(cls, crawler, *args: Any, out: str = "", **arguments: Any):
        """The -a arguments (text) are read once, here, as the `crawl` params of the same names (crawler.params)."""
        spider = super().from_crawler(crawler, *args, params=spider_params(arguments), out=out or "")
        # settings are not frozen yet: the spider argument wins over ZOL_OUT, and images always go to <out>/images
        if not crawler.settings.frozen:
            out = spider.out or crawler.settings.get("ZOL_OUT")
            crawler.settings.set("ZOL_OUT", out, priority="spider")
            crawler.settings.set("FILES_STORE", str(Path(out) / IMAGES_DIR), priority="spider")
        jobdir = crawler.settings.get("JOBDIR")
        if jobdir:
            spider.resume = load_resume(
                jobdir,
                spider.crawl_arguments(crawler.settings.get("ZOL_MIRROR") or ""),
                Path(crawler.settings.get("FILES_STORE")),
            )
        if spider.resume.untrusted:
            crawler.stats.set_value("zol/resume/untrusted_records", len(spider.resume.untrusted))
            logger.warning(
                "resuming: %d partial review(s) lost image files and are crawled again", len(spider.resume.untrusted)
            )
        crawler.signals.connect(spider.request_dropped, signal=signals.request_dropped)
        return spider

    # ---- helpers -------------------------------------------------------------------------------------------
    def _count(self, key: str, amount: int = 1) -> None:
        self.crawler.stats.inc_value(f"zol/{key}", amount)

    def _lost(self, reason: str, amount: int, message: str, *args: Any) -> None:
        """Reviews the site lists that this crawl cannot write: counted by reason, logged at ERROR."""
        if amount <= 0:
            return
        self._count(f"lost/{reason}", amount)
        logger.error("%d review(s) lost (%s): " + message, amount, reason, *args)

    def _request(self, url: str, kind: str, callback, **kwargs: Any) -> scrapy.Request:
        # zol_kind also exempts the request from the dupefilter (crawler.resume.MemoryDupeFilter): pages are
        # de-duplicated here (products, review ids, long URLs), and a dropped request gets no callback nor errback
        meta = {"zol_kind": kind, **kwargs.pop("meta", {})}
        return scrapy.Request(
            url, callback=callback, errback=self.page_failed, meta=meta, priority=PRIORITY[kind], **kwargs
        )

    def _page_ok(self, response: Response, kind: str) -> None:
        self._count(f"pages/{kind}")
        bad_chars = response.text.count("\ufffd") if hasattr(response, "text") else 0
        if bad_chars:
            self._count("decode_errors/pages")
            self._count("decode_errors/chars", bad_chars)
            logger.warning("%d undecodable byte sequence(s) replaced in %s", bad_chars, response.url)

    def _layout_error(self, kind: str, message: str, *args: Any) -> None:
        self._count(f"layout/{kind}")
        logger.error("layout drift (%s): " + message, kind, *args)

    # ---- ranking -------------------------------------------------------------------------------------------
    async def start(self):
        if self.only_products:
            for product_id in self.only_products:
                if self._take_product(product_id, self.ranking):
                    yield self._review_list_request(
                        RankedProduct(product_id, None, None, None, review_list_url(product_id)), rank=None
                    )
        elif self.list_pages > 0:
            yield self._ranking_request(ranking_url(1), 1, self.ranking)

    def _ranking_request(self, url: str, page: int, state: RankingState, guessed: bool = False) -> scrapy.Request:
        return self._request(
            url, "ranking", self.parse_ranking, meta={"page": page, "guessed_url": guessed, "ranking": state}
        )

    def _full(self, state: RankingState) -> bool:
        return bool(self.max_products) and len(state.product_ids) >= self.max_products

    def _take_product(self, product_id: str, state: RankingState) -> bool:
        if product_id in state.product_ids or self._full(state):
            return False
        state.product_ids.append(product_id)
        return True

    def _review_list_request(self, ranked: RankedProduct, rank: int | None) -> scrapy.Request:
        return self._request(
            ranked.review_list_url, "review_list", self.parse_review_list, meta={"ranked": ranked, "rank": rank}
        )

    @tracked
    def parse_ranking(self, response: Response) -> Iterator[scrapy.Request]:
        self._page_ok(response, "ranking")
        page, state = response.meta["page"], response.meta.get("ranking", self.ranking)
        ranked = [product for card in ranked_cards(response.selector) if (product := parse_card(card, response.url))]
        if not ranked:
            ranked = ranking_list_links(response.selector, response.url)
            self._layout_error(
                "ranking_without_cards",
                "no ranked product card (ul#J_PicMode > li[data-follow-id]) "
                "on %s; %d product link(s) inside the ranking list taken instead",
                response.url,
                len(ranked),
            )
        for product in ranked:
            state.cards_seen += 1
            if self._take_product(product.product_id, state):
                yield self._review_list_request(product, rank=state.cards_seen)
        next_url = next_ranking_page(response.selector, response.url)
        if next_url and page < self.list_pages and not self._full(state):
            yield self._ranking_request(next_url, page + 1, state)

    # ---- review pages --------------------------------------------------------------------------------------
    @tracked
    def parse_review_list(self, response: Response) -> Iterator[Any]:
        self._page_ok(response, "review_list")
        ranked: RankedProduct = response.meta["ranked"]
        product = parse_product(response.selector, ranked.product_id, response.meta["rank"], ranked.listed_score)
        nodes = review_nodes(response.selector)
        declared = declared_rating_count(response.selector)
        if declared is None:
            self._layout_error(
                "declared_count_missing",
                "no review count (人评分) on %s; the card's %s is used",
                response.url,
                ranked.listed_reviews,
            )
            declared = ranked.listed_reviews
        tally = self.tallies[product.product_id] = ProductTally(product, declared, self.review_pages)
        yield from self._reviews(nodes, tally, response, page=1)
        link = has_more_reviews(response.selector)
        wanted = declared is not None and declared > len(nodes)
        if nodes and wanted and not link:
            self._layout_error(
                "view_more_link_missing",
                "%s declares %d reviews and shows %d, but has no 查看更多 link; the AJAX pages are asked for anyway",
                response.url,
                declared,
                len(nodes),
            )
        more = wanted if declared is not None else link  # the count decides; without one, the 查看更多 link
        if nodes and more and self.review_pages >= FIRST_AJAX_PAGE:
            yield self._ajax_request(tally, FIRST_AJAX_PAGE)
        else:
            self._end_product(tally)

    def _tally(self, meta: dict) -> ProductTally:
        """The product's tally: the one its requests carry (any worker's), else this spider's."""
        return meta.get("tally") or self.tallies[meta["product_id"]]

    def _end_product(self, tally: ProductTally) -> None:
        """The product's pages are done: compare what was read with what it declares."""
        if tally.done:
            return
        tally.done = True
        expected = tally.expected
        if expected is None:
            return
        short = expected - tally.read - tally.lost_on_pages
        if short <= 0:
            return
        self._lost(
            "short_of_declared",
            short,
            "product %s declares %d review(s) (up to %d pages), %d read",
            tally.product.product_id,
            tally.declared,
            self.review_pages,
            tally.read,
        )
        if short > FAR_SHORT * expected:
            self._layout_error(
                "fewer_reviews_than_declared",
                "product %s: %d of %d expected review(s) read",
                tally.product.product_id,
                tally.read,
                expected,
            )

    def _reviews(self, nodes: list[Selector], tally: ProductTally, response: Response, page: int) -> Iterator[Any]:
        if not nodes and tally.declared == 0:  # a product nobody has rated yet: no drift, nothing to read
            self._count("pages/review_list_empty_product")
            return
        if not nodes:
            self._layout_error(
                "review_page_without_reviews",
                "no review on %s (page %d, product claims %s ratings)",
                response.url,
                page,
                tally.declared,
            )
            return
        tally.read += len(nodes)
        for node in nodes:
            try:
                listed = parse_review(node, tally.product, self.crawl_date, response.url)
            except Exception:  # one odd review must not take the rest of its page with it
                self._count("parse_failures/review_exception")
                logger.exception("a review on %s could not be parsed", response.url)
                self._lost("review_parse_error", 1, "on %s", response.url)
                continue
            if listed is None:
                self._count("parse_failures/review_without_id")
                self._lost("review_without_id", 1, "a review on %s has no review id", response.url)
                continue
            yield from self._listed(listed, f"{tally.product.product_id}:{page}")

    def _first_listing(self, review_id: str, page: str) -> bool:
        """Whether this is the review's first listing; shared between workers by page, so a page read again
        (its worker died) still holds the reviews it listed first."""
        if review_id in self.seen_review_ids:
            return False
        if self.shared is not None and self.shared.claim("review", review_id, page) != page:
            return False
        self.seen_review_ids.add(review_id)
        return True

    def _long_page_holder(self, url: str, review_id: str) -> str:
        """The review whose long page `url` is: the first that links it."""
        if self.shared is not None:
            return self.shared.claim("long", url, review_id)
        return self.long_urls.setdefault(url, review_id)

    def _listed(self, listed: ListedReview, page: str) -> Iterator[Any]:
        review_id = listed.item.review_id
        if not self._first_listing(review_id, page):
            self._count("reviews/duplicates_skipped")
            return
        if review_id in self.resume.records:
            self._count("reviews/resumed_skipped")
            return
        if not listed.long_url:
            yield self._finish(listed.item, listed.unknown_labels)
        elif not is_allowed_host(listed.long_url):
            self._count("long/offsite")
            yield self._fallback(listed, "its long page %s is off-site", listed.long_url)
        elif (holder := self._long_page_holder(listed.long_url, review_id)) != review_id:
            self._count("long/shared_url")
            yield self._fallback(listed, "its long page %s is the page of review %s", listed.long_url, holder)
        else:
            yield self._request(
                listed.long_url,
                "long",
                self.parse_long,
                meta={"listed": listed},
                headers={"Referer": review_list_url(listed.item.product_id)},
            )

    # ---- long reviews --------------------------------------------------------------------------------------
    @tracked
    def parse_long(self, response: Response) -> Iterator[ReviewItem]:
        self._page_ok(response, "long")
        listed: ListedReview = response.meta["listed"]
        try:
            long = parse_long_review(response.selector, self.crawl_date, response.url)
        except Exception:
            self._count("parse_failures/long_exception")
            logger.exception("long review page %s could not be parsed", response.url)
            yield self._fallback(listed, "its long page %s could not be parsed", response.url)
            return
        if not looks_like_long_review(long):
            self._layout_error("long_page_without_review", "no article body on %s; list data kept", response.url)
            yield self._fallback(listed, "its long page %s has no article", response.url)
            return
        item = listed.item
        merged = replace(
            item,
            url=response.url,
            title=long.title or item.title,
            author=long.author or item.author,
            published=long.published or item.published,
            likes=long.likes if long.likes is not None else item.likes,
            replies=long.replies if long.replies is not None else item.replies,
            overall_score=long.overall_score if long.overall_score is not None else item.overall_score,
            scores=long.scores or item.scores,
            pros=long.pros or item.pros,
            cons=long.cons or item.cons,
            body=long.body or item.body,
            # the long page's figures, then the list's own pictures of the review (its cover) not among them
            image_urls=unique([*long.image_urls, *item.image_urls]),
        )
        yield self._finish(merged, long.unknown_labels if long.scores else listed.unknown_labels)

    def _fallback(self, listed: ListedReview, why: str, *args: Any) -> ReviewItem:
        self._count("long/fallback_to_list")
        logger.warning("review %s keeps its list data: " + why, listed.item.review_id, *args)
        return self._finish(listed.item, listed.unknown_labels)

    def _finish(self, item: ReviewItem, unknown_labels: tuple[str, ...]) -> ReviewItem:
        self._count(f"layouts/{item.layout}")
        if item.layout == "2026-short":  # a review without aspect scores by design: clean rejects it as no_score
            self._count("reviews/without_scores")
        elif not item.scores:
            self._layout_error("review_without_scores", "review %s (%s) has no aspect scores", item.review_id, item.url)
        for key in item.scores:
            self._count(f"aspects/{key}")
        for label in unknown_labels:
            self._count(f"unknown_labels/{label}")
            logger.warning("unknown score label %r in review %s", label, item.review_id)
        self._count("reviews/scraped")
        self._count("image_urls", len(item.image_urls))
        return item
