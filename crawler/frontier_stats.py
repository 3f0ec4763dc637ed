"""A shared crawl's counters (`--backend redis`): each `zol/...` increment is kept with the request whose callback
(or whose item's image pipeline) made it, and reaches the crawl's counters in Redis once, with that request's ack
(crawler.redis_backend); what only this worker saw stays its own (`worker_stats.json` `local`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from scrapy.statscollectors import MemoryStatsCollector

ATTRIBUTED_PREFIX = "zol/"  # the spider's and the pipelines' counters: added to the crawl's once per request


@dataclass
class InFlight:
    """A request this worker popped: done when its callback's output is exhausted and its items are written."""

    member: bytes
    score: float = 0.0
    failed: bool = False  # its callback hit a Redis error: queued again to be redone, never acknowledged
    items: int = 0
    items_done: int = 0
    output_done: bool = False
    counters: Counter = field(default_factory=Counter)


class FrontierStatsCollector(MemoryStatsCollector):
    """Scrapy's stats, plus: a `zol/...` increment made while a tracked request's callback (or its item's image
    pipeline) runs is also kept with that request, and reaches the crawl's counters in Redis with its ack."""

    def __init__(self, crawler) -> None:
        super().__init__(crawler)
        self.current: InFlight | None = None
        self.item_entries: dict[int, InFlight] = {}
        self.unattributed: Counter = Counter()

    def inc_value(self, key: str, count: int = 1, start: int = 0, spider=None) -> None:
        super().inc_value(key, count, start)
        if key.startswith(ATTRIBUTED_PREFIX):
            if self.current is not None:
                self.current.counters[key] += count
            else:
                self.unattributed[key] += count

    @contextmanager
    def attributing_item(self, item: Any) -> Iterator[None]:
        before, self.current = self.current, self.item_entries.get(id(item))
        try:
            yield
        finally:
            self.current = before

    def local_counters(self) -> dict[str, Any]:
        """What only this worker saw: Scrapy's own counters and the `zol/` ones made outside any request."""
        local = {
            k: v
            for k, v in self.get_stats().items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith(ATTRIBUTED_PREFIX)
        }
        local.update(self.unattributed)
        return dict(sorted(local.items()))
