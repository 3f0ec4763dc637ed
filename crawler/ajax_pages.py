"""The review pages after the first two: the AJAX endpoint, in whichever of the known forms answers (crawler.urls
AJAX_FORMS; docs/zol-site.md, "Which AJAX form"). A mixin of the `zol` spider: it uses the spider's request,
counting and review-reading helpers and the product's ProductTally."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import scrapy
from parsel import Selector
from scrapy.http import Response

from crawler.attribution import tracked
from crawler.parse_list import review_nodes
from crawler.tally import ProductTally
from crawler.urls import AJAX_FORMS, ajax_review_url, review_list_url

logger = logging.getLogger("crawler.spiders.zol")
UNANSWERED_AJAX_PAGES = 2  # pages in a row that no AJAX form answers before a product's AJAX is given up


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


class AjaxPagesMixin:
    """AJAX pages 3.. of a product: asked first in the form that answered in this crawl, then in the others in
    their fixed order; a product keeps to the form that answered its previous page."""

    ajax_form: str | None = None  # the first AJAX form that answered in this crawl

    def _form_order(self, tried: tuple[str, ...] = ()) -> list[str]:
        """The forms to ask a page in: the crawl's answering form first, then AJAX_FORMS in order, less `tried`."""
        order = ([self.ajax_form] if self.ajax_form else []) + [f for f in AJAX_FORMS if f != self.ajax_form]
        return [form for form in order if form not in tried]

    def _ajax_request(
        self, tally: ProductTally, page: int, form: str | None = None, unanswered: int = 0, tried: tuple[str, ...] = ()
    ) -> scrapy.Request:
        """AJAX page `page` in `form` (default: the first of _form_order); `tried`: the forms that did not answer
        it, `unanswered`: the pages in a row before it that no form answered."""
        product_id = tally.product.product_id
        form = form or self._form_order()[0]
        return self._request(
            ajax_review_url(product_id, page, form),
            "ajax",
            self.parse_ajax,
            meta={
                "product_id": product_id,
                "page": page,
                "tally": tally,
                "ajax_form": form,
                "ajax_tried": (*tried, form),
                "ajax_unanswered": unanswered,
            },
            headers={"Referer": review_list_url(product_id), "X-Requested-With": "XMLHttpRequest"},
        )

    def _ajax_answered(self, form: str) -> None:
        self._count(f"ajax/{form}/answered")
        if self.ajax_form is None:
            self.ajax_form = form
            logger.info("the AJAX review pages answer in form %s; it is asked first from now on", form)

    def _ajax_unanswered(self, meta: dict, url: str, why: str) -> Iterator[scrapy.Request]:
        """An AJAX page that a form did not answer (an HTTP error, not its JSON): asked in the next untried form; a
        page no form answers is lost and the next page tried, and after UNANSWERED_AJAX_PAGES such pages in a row
        the product's remaining reviews are lost as `ajax_unavailable`."""
        tally, page = self._tally(meta), meta["page"]
        form = meta.get("ajax_form") or next(iter(AJAX_FORMS))
        tried = tuple(meta.get("ajax_tried") or (form,))
        self._count(f"ajax/{form}/{why}")
        untried = self._form_order(tried)
        if untried:
            yield self._ajax_request(tally, page, untried[0], meta.get("ajax_unanswered", 0), tried)
            return
        unanswered = meta.get("ajax_unanswered", 0) + 1
        if unanswered < UNANSWERED_AJAX_PAGES and page < self.review_pages and tally.more_after(page):
            held = tally.held_by_page(page)
            tally.lost_on_pages += held
            self._lost(
                "ajax_page_failed", held, "no AJAX form answers page %d of product %s", page, tally.product.product_id
            )
            yield self._ajax_request(tally, page + 1, unanswered=unanswered)
            return
        self._count("ajax/unavailable")
        rest = max(0, (tally.expected or 0) - tally.read - tally.lost_on_pages)
        tally.lost_on_pages += rest
        self._lost(
            "ajax_unavailable",
            rest,
            "no AJAX form (%s) answers the review pages of product %s after "
            "page %d (docs/zol-site.md: none is confirmed for 2026)",
            ", ".join(AJAX_FORMS),
            tally.product.product_id,
            page - 1,
        )
        self._end_product(tally)

    @tracked
    def parse_ajax(self, response: Response) -> Iterator[Any]:
        self._page_ok(response, "ajax")
        tally, page = self._tally(response.meta), response.meta["page"]
        try:
            data = json.loads(_json_text(response))
            html = data["list"]
            if not isinstance(html, str):
                raise TypeError("list is not a string")
        except (ValueError, KeyError, TypeError) as exc:
            self._count("parse_failures/ajax_json")
            logger.error("AJAX review page %s is not the expected JSON ({list, isEnd}): %s", response.url, exc)
            yield from self._ajax_unanswered(response.meta, response.url, "not_json")
            return
        self._ajax_answered(response.meta.get("ajax_form") or next(iter(AJAX_FORMS)))
        # 2018 marks the last page with isEnd; the 2019 form with an empty list holding div.empty-comment
        is_end = str(data.get("isEnd", "0")) == "1" or "empty-comment" in html
        nodes = review_nodes(Selector(text=html)) if html.strip() else []
        if not nodes and is_end:
            self._count("pages/ajax_empty_last")
            self._end_product(tally)
            return
        yield from self._reviews(nodes, tally, response, page=page)
        if nodes and not is_end and page < self.review_pages and (tally.expected is None or tally.more_after(page)):
            yield self._ajax_request(tally, page + 1, response.meta.get("ajax_form"))  # the product's form
        else:
            self._end_product(tally)

    def _ajax_page_lost(self, tally: ProductTally, page: int, url: str) -> Iterator[scrapy.Request]:
        """A failed AJAX page: its reviews are counted lost, and the next pages are still read."""
        held = tally.held_by_page(page)
        tally.lost_on_pages += held
        self._lost("ajax_page_failed", held, "AJAX page %s failed", url)
        if page < self.review_pages and tally.more_after(page):
            yield self._ajax_request(tally, page + 1)
        else:
            self._end_product(tally)
