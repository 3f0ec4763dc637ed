"""Which frontier request a callback's output and counters belong to (`--backend redis` only).

With the Redis frontier a request is acknowledged, and its `zol/...` counters added to the crawl's, only when its
callback has run and every item it yielded was written (crawler.frontier). The spider's callbacks are wrapped by
`tracked`, which hands their output to the frontier's tracker when there is one; the local backend has none, and
the wrapper returns the output untouched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any


def tracked(method: Callable) -> Callable:
    """Decorate a spider callback or errback (its first argument: the Response or the Failure)."""

    @functools.wraps(method)
    def wrapper(spider, result, *args: Any, **kwargs: Any):
        output = method(spider, result, *args, **kwargs)
        tracker = getattr(spider, "frontier_tracker", None)
        return output if tracker is None else tracker.follow(result.request, output)

    return wrapper


def attributed(stats, item: Any):
    """Counters incremented inside count for the request that yielded `item` (a no-op without a frontier)."""
    attributing = getattr(stats, "attributing_item", None)
    return attributing(item) if attributing is not None else nullcontext()
