"""How a worker of a shared crawl (crawler.redis_backend) meets a lost frontier or an unreachable Redis.

- Each Redis call the scheduler makes goes through `_redis`: a failure starts (or continues) an outage, logged once;
  Redis answering again ends it, logged once. An outage longer than ZOL_REDIS_DOWN_TIMEOUT seconds (default 60)
  ends the worker (`redis_unreachable`) with one ERROR line, instead of a traceback every heartbeat.
- `_check_crawl` compares the frontier's crawl id with the one this worker joined: gone or another (Redis restarted
  empty, flushed, reset) ends the worker (`frontier_lost`).
Both reasons make `scrapy crawl` exit 8 (crawler.commands.crawl), so a partial crawl never passes for a whole one.
"""

from __future__ import annotations

import logging
import time

import redis
from scrapy.utils.defer import deferred_from_coro

from crawler.frontier import FrontierLost

logger = logging.getLogger("crawler.redis_backend")  # one logger for the worker's frontier messages


class FrontierFaults:
    """Mixed into FrontierScheduler, which sets: frontier, crawler, beat, down_timeout, down_since, abort_reason,
    in_idle."""

    def _redis(self, call, *args, default=None):
        """`call(*args)`, or `default` while Redis is unreachable (bounded: see _outage) or once this worker ended
        (each call could take seconds of retries, and the worker's closing would wait for every one)."""
        if self.abort_reason is not None:
            return default
        try:
            result = call(*args)
        except redis.RedisError as exc:
            self._outage(exc)
            return default
        if self.down_since is not None:
            logger.warning("Redis is reachable again after %.1f s", time.monotonic() - self.down_since)
            self.down_since = None
        return result

    def _outage(self, exc: Exception) -> None:
        if self.abort_reason is not None:  # already said, in one line
            return
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
            logger.warning("Redis unreachable (%s): retrying for up to %.0f s", exc, self.down_timeout)
        elif now - self.down_since > self.down_timeout:
            self._abort(
                "redis_unreachable",
                f"Redis unreachable for {now - self.down_since:.0f} s "
                f"(ZOL_REDIS_DOWN_TIMEOUT={self.down_timeout:.0f}): {exc}",
            )

    def _abort(self, reason: str, message: str) -> None:
        """End this worker non-zero, said once in one line (crawler.commands.crawl maps the reason to exit 8).
        Inside spider_idle the close is left to its CloseSpider."""
        if self.abort_reason is not None:
            return
        self.abort_reason = reason
        self.frontier.give_up()
        logger.error("%s; this worker stops, the crawl is not complete", message)
        if self.beat is not None and self.beat.running:
            self.beat.stop()
        if not self.in_idle:
            deferred_from_coro(self.crawler.engine.close_spider_async(reason=reason))

    def _check_crawl(self) -> bool:
        try:
            self.frontier.check_crawl()
        except FrontierLost as exc:
            self._abort("frontier_lost", str(exc))
            return False
        return True
