"""The crawl's state that travels with its requests (a shared crawl's worker may read the next page): one product's
review pages against the count it declares, and the ranking walk so far."""

from __future__ import annotations

from dataclasses import dataclass, field

from crawler.parse_list import Product

REVIEWS_PER_PAGE = 10
EMBEDDED_REVIEWS = 20  # pages 1-2 are embedded in review.shtml


@dataclass
class ProductTally:
    """What one product's review pages gave, to compare with what the product declares ("33人评分")."""

    product: Product
    declared: int | None  # the review list's count, else the ranking card's
    review_pages: int
    read: int = 0  # review nodes read on its pages (duplicates included)
    lost_on_pages: int = 0  # reviews held by pages that failed (already counted as lost)
    done: bool = False

    @property
    def expected(self) -> int | None:
        """Reviews the crawl should see: the declared count, capped by the pages it may read."""
        if self.declared is None:
            return None
        return min(self.declared, max(EMBEDDED_REVIEWS, REVIEWS_PER_PAGE * self.review_pages))

    def held_by_page(self, page: int) -> int:
        """Reviews a page (1-based, 10 a page) holds by the declared count; 0 when unknown."""
        if self.expected is None:
            return 0
        return max(0, min(REVIEWS_PER_PAGE, self.expected - REVIEWS_PER_PAGE * (page - 1)))

    def more_after(self, page: int) -> bool:
        return self.expected is not None and self.expected > REVIEWS_PER_PAGE * page


@dataclass
class RankingState:
    """The ranking walk so far; it travels with the ranking requests (page n+1 is asked for by page n), so any
    worker of a shared crawl can read the next page."""

    product_ids: list[str] = field(default_factory=list)
    cards_seen: int = 0
