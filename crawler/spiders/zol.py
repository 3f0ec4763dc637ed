"""`scrapy crawl zol`: hot ranking -> products -> review list + AJAX pages -> long reviews, as the paper crawled.

Arguments (-a): list_pages (50), review_pages (20), products ("id,id": only these, no ranking), max_products (0 = all),
crawl_date (ISO date for yearless dates; default today UTC), out (output folder, else setting ZOL_OUT).
Layout drift is loud: pages without reviews and reviews without scores are logged as ERROR and counted (zol/layout/*).
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import scrapy
from parsel import Selector
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError

from common.contract import IMAGES_DIR
from crawler.items import ReviewItem
from crawler.parse_list import ListedReview, Product, declared_rating_count, has_more_reviews, parse_product, \
    parse_review, review_nodes
from crawler.parse_long import parse_long_review, looks_like_long_review
from crawler.resume import partial_path, read_partial
from crawler.urls import ALLOWED_DOMAINS, PRODUCT_LINK_RE, ajax_review_url, ranking_url, review_list_url

logger = logging.getLogger(__name__)

FIRST_AJAX_PAGE = 3  # pages 1-2 are embedded in review.shtml
PRIORITY = {"ranking": 0, "review_list": 10, "ajax": 20, "long": 30}


def _positive_int(value: Any, name: str, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"spider argument {name} must be an integer, got {value!r}") from None
    if number < 0:
        raise ValueError(f"spider argument {name} must be >= 0, got {number}")
    return number


def _json_text(response: Response) -> str:
    """The AJAX body as text: ZOL escapes everything to ASCII; otherwise the declared charset, else UTF-8, else GBK."""
    body = response.body
    content_type = response.headers.get(b"Content-Type", b"").decode("latin-1").lower()
    if body.isascii() or "charset=" in content_type:
        return response.text
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("gb18030", errors="replace")


class ZolSpider(scrapy.Spider):
    name = "zol"
    allowed_domains = list(ALLOWED_DOMAINS)

    def __init__(self, list_pages: Any = 50, review_pages: Any = 20, products: str = "", max_products: Any = 0,
                 crawl_date: str = "", out: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.list_pages = _positive_int(list_pages, "list_pages", 50)
        self.review_pages = _positive_int(review_pages, "review_pages", 20)
        self.max_products = _positive_int(max_products, "max_products", 0)
        self.only_products = [p.strip() for p in str(products or "").split(",") if p.strip()]
        self.crawl_date = date.fromisoformat(crawl_date) if crawl_date else datetime.now(timezone.utc).date()
        self.out = out
        self.product_ids: list[str] = []
        self.seen_review_ids: set[str] = set()
        self.resumed_ids: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler, *args: Any, **kwargs: Any):
        spider = super().from_crawler(crawler, *args, **kwargs)
        # settings are not frozen yet: the spider argument wins over ZOL_OUT, and images always go to <out>/images
        if not crawler.settings.frozen:
            out = spider.out or crawler.settings.get("ZOL_OUT")
            crawler.settings.set("ZOL_OUT", out, priority="spider")
            crawler.settings.set("FILES_STORE", str(Path(out) / IMAGES_DIR), priority="spider")
        spider.resumed_ids = set(read_partial(partial_path(crawler.settings.get("JOBDIR"))))
        return spider

    # ---- helpers -------------------------------------------------------------------------------------------
    def _count(self, key: str, amount: int = 1) -> None:
        self.crawler.stats.inc_value(f"zol/{key}", amount)

    def _request(self, url: str, kind: str, callback, **kwargs: Any) -> scrapy.Request:
        meta = {"zol_kind": kind, **kwargs.pop("meta", {})}
        return scrapy.Request(url, callback=callback, errback=self.page_failed, meta=meta,
                              priority=PRIORITY[kind], **kwargs)

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

    # ---- flow ----------------------------------------------------------------------------------------------
    async def start(self):
        if self.only_products:
            for product_id in self.only_products:
                if self._take_product(product_id):
                    yield self._review_list_request(product_id)
        elif self.list_pages > 0:
            yield self._request(ranking_url(1), "ranking", self.parse_ranking, meta={"page": 1})

    def _take_product(self, product_id: str) -> bool:
        if product_id in self.product_ids or (self.max_products and len(self.product_ids) >= self.max_products):
            return False
        self.product_ids.append(product_id)
        return True

    def _review_list_request(self, product_id: str) -> scrapy.Request:
        return self._request(review_list_url(product_id), "review_list", self.parse_review_list,
                             meta={"product_id": product_id})

    def parse_ranking(self, response: Response) -> Iterator[scrapy.Request]:
        self._page_ok(response, "ranking")
        page = response.meta["page"]
        found = 0
        for href in response.css("a::attr(href)").getall():
            match = PRODUCT_LINK_RE.search(href)
            if match:
                found += 1
                if self._take_product(match.group(1)):
                    yield self._review_list_request(match.group(1))
        if not found:
            self._layout_error("ranking_without_products", "no product link on ranking page %s", response.url)
        full = bool(self.max_products) and len(self.product_ids) >= self.max_products
        next_href = response.css("div.pagebar a.next::attr(href)").get() or \
            response.xpath("//a[contains(., '下一页')]/@href").get()
        if next_href and page < self.list_pages and not full:
            yield self._request(response.urljoin(next_href), "ranking", self.parse_ranking, meta={"page": page + 1})

    def parse_review_list(self, response: Response) -> Iterator[Any]:
        self._page_ok(response, "review_list")
        product = parse_product(response.selector, response.meta["product_id"])
        nodes = review_nodes(response.selector)
        declared = declared_rating_count(response.selector)
        yield from self._reviews(nodes, product, response, page=1, declared=declared)
        more = has_more_reviews(response.selector) and (declared is None or declared > len(nodes))
        if nodes and more and self.review_pages >= FIRST_AJAX_PAGE:
            yield self._ajax_request(product, FIRST_AJAX_PAGE)

    def _ajax_request(self, product: Product, page: int) -> scrapy.Request:
        return self._request(
            ajax_review_url(product.product_id, page), "ajax", self.parse_ajax,
            meta={"product": product, "page": page},
            headers={"Referer": review_list_url(product.product_id), "X-Requested-With": "XMLHttpRequest"})

    def parse_ajax(self, response: Response) -> Iterator[Any]:
        self._page_ok(response, "ajax")
        product, page = response.meta["product"], response.meta["page"]
        try:
            data = json.loads(_json_text(response))
            html = data["list"]
            if not isinstance(html, str):
                raise TypeError("list is not a string")
        except (ValueError, KeyError, TypeError) as exc:
            self._count("parse_failures/ajax_json")
            logger.error("AJAX review page %s is not the expected JSON ({list, isEnd}): %s", response.url, exc)
            return
        is_end = str(data.get("isEnd", "0")) == "1"
        nodes = review_nodes(Selector(text=html)) if html.strip() else []
        if not nodes and is_end:
            self._count("pages/ajax_empty_last")
            return
        yield from self._reviews(nodes, product, response, page=page, declared=None)
        if nodes and not is_end and page < self.review_pages:
            yield self._ajax_request(product, page + 1)

    def _reviews(self, nodes: list[Selector], product: Product, response: Response, page: int,
                 declared: int | None) -> Iterator[Any]:
        if not nodes and declared == 0:  # a product nobody has rated yet: no drift, nothing to read
            self._count("pages/review_list_empty_product")
            return
        if not nodes:
            self._layout_error("review_page_without_reviews", "no review on %s (page %d, product claims %s ratings)",
                               response.url, page, declared)
            return
        for node in nodes:
            listed = parse_review(node, product, self.crawl_date)
            if listed is None:
                self._count("parse_failures/review_without_id")
                logger.error("a review on %s has no review id; skipped", response.url)
                continue
            yield from self._listed(listed, product)

    def _listed(self, listed: ListedReview, product: Product) -> Iterator[Any]:
        review_id = listed.item.review_id
        if review_id in self.seen_review_ids:
            self._count("reviews/duplicates_skipped")
            return
        self.seen_review_ids.add(review_id)
        if review_id in self.resumed_ids:
            self._count("reviews/resumed_skipped")
            return
        if listed.long_url:
            yield self._request(listed.long_url, "long", self.parse_long, meta={"listed": listed},
                                headers={"Referer": review_list_url(product.product_id)})
        else:
            yield self._finish(listed.item, listed.unknown_labels)

    def parse_long(self, response: Response) -> Iterator[ReviewItem]:
        self._page_ok(response, "long")
        listed: ListedReview = response.meta["listed"]
        long = parse_long_review(response.selector, self.crawl_date)
        if not looks_like_long_review(long):
            self._layout_error("long_page_without_review", "no article body on %s; list data kept", response.url)
            self._count("long/fallback_to_list")
            yield self._finish(listed.item, listed.unknown_labels)
            return
        item = listed.item
        merged = replace(
            item,
            url=response.url,
            title=long.title or item.title, author=long.author or item.author,
            published=long.published or item.published,
            likes=long.likes if long.likes is not None else item.likes,
            replies=long.replies if long.replies is not None else item.replies,
            overall_score=long.overall_score if long.overall_score is not None else item.overall_score,
            scores=long.scores or item.scores,
            pros=long.pros or item.pros, cons=long.cons or item.cons,
            body=long.body or item.body,
            image_urls=long.image_urls or item.image_urls,
        )
        yield self._finish(merged, long.unknown_labels if long.scores else listed.unknown_labels)

    def page_failed(self, failure) -> Iterator[ReviewItem]:
        request = failure.request
        kind = request.meta.get("zol_kind", "other")
        status = failure.value.response.status if failure.check(HttpError) else None
        self._count(f"page_failures/{kind}")
        logger.error("%s page failed: %s (%s)", kind, request.url, status or repr(failure.value))
        if kind == "long":  # the list page's data stands in for the long page
            listed: ListedReview = request.meta["listed"]
            self._count("long/fallback_to_list")
            yield self._finish(listed.item, listed.unknown_labels)

    def _finish(self, item: ReviewItem, unknown_labels: tuple[str, ...]) -> ReviewItem:
        if not item.scores:
            self._layout_error("review_without_scores", "review %s (%s) has no aspect scores", item.review_id, item.url)
        for key in item.scores:
            self._count(f"aspects/{key}")
        for label in unknown_labels:
            self._count(f"unknown_labels/{label}")
            logger.warning("unknown score label %r in review %s", label, item.review_id)
        self._count("reviews/scraped")
        self._count("image_urls", len(item.image_urls))
        return item
