"""Scrapy side of the `redis` backend (`--backend redis`): scrapy-redis's scheduler made a reliable, shared frontier.

Enabled by ZOL_BACKEND=redis (crawler.settings). Every `scrapy crawl zol` worker started so, on any machine, shares
the queue, the dupefilter, the crawl's counters and the per-host delay in one Redis (crawler.frontier explains the
keys and why a killed worker loses nothing). Each worker writes its own folder (`-a out=...`): `journal.jsonl`,
one review a line, appended as each is written; `images/`; and at close `worker_stats.json`. `python -m
crawler.merge` combines the folders into one crawl output.

What is adapted from scrapy-redis 0.9.1 (built for Scrapy 1.x/2.x before 2.13), and why:
- pop/push: its PriorityQueue pops with ZRANGE+ZREMRANGEBYRANK, so a worker killed after a pop loses the request;
  here a Lua script moves it into the worker's in-flight hash, and it leaves only when done (reliable queue).
- the dupefilter is its RFPDupeFilter (key and fingerprint), but checked and queued in one script, and a
  duplicate is absorbed rather than dropped: every request this spider makes has its own URL (it de-duplicates
  products, reviews and long pages itself), so a duplicate is the replay of a requeued page, already queued.
  Retries and redirects replace their in-flight original and are never filtered.
- its scheduler calls `stats.inc_value(..., spider=...)`, deprecated in Scrapy 2.19, and `Spider.log()`: not here.
  Its idle handling closes a worker as soon as the queue is empty: here a worker waits while other workers still
  hold requests (they may queue more) and requeues the requests of dead workers.
- its queue pickles requests: here they are JSON (crawler.request_codec), and a member that is not a request of this
  crawl (junk, a pickle, another shape) is moved to `<key>:poison` and counted, never run, never left in flight.

What ends a worker non-zero (crawler.commands.crawl, exit 8): the frontier lost this crawl (its crawl id is gone or
another: Redis restarted empty, was flushed or reset), checked on every heartbeat and before the worker calls the
crawl finished; or Redis unreachable for longer than ZOL_REDIS_DOWN_TIMEOUT seconds (default 60), said in one line
(crawler.frontier_faults). A worker whose frontier holds another crawl id than ZOL_REDIS_CRAWL_ID ends at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import redis
from scrapy import Request, signals
from scrapy.exceptions import CloseSpider, DontCloseSpider, NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.scheduler import Scheduler
from twisted.internet import task

from common.atomic import write_json
from crawler.frontier import Frontier, FrontierLost, connect
from crawler.frontier_faults import FrontierFaults
from crawler.frontier_stats import InFlight
from crawler.output import WORKER_STATS_FILE
from crawler.request_codec import PoisonMember, decode_request, encode_request

logger = logging.getLogger(__name__)

TOKEN = "zol_frontier"  # request.meta key: which in-flight entry a popped request (or its retry) is
POISON_PER_CALL = 100  # junk members skipped in one next_request before giving the engine a turn


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class FrontierDupeFilter(RFPDupeFilter):
    """scrapy-redis's fingerprints and key; the check itself happens in the scheduler's push script."""

    def request_seen(self, request: Request) -> bool:  # not used by FrontierScheduler (atomic in its push)
        return bool(self.server.sismember(self.key, self.request_fingerprint(request)))

    def close(self, reason: str = "") -> None:  # the fingerprints belong to the crawl, not to one worker
        pass


class FrontierScheduler(FrontierFaults, Scheduler):
    """scrapy-redis's Scheduler on the reliable frontier (see the module doc)."""

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        namespace = settings.get("ZOL_REDIS_KEY")
        server = connect(settings.get("REDIS_URL"), worker=True)
        scheduler = cls(
            server,
            persist=True,
            queue_key=f"{namespace}:requests",
            dupefilter=FrontierDupeFilter(server, key=f"{namespace}:dupefilter"),
        )
        scheduler.stats = crawler.stats
        scheduler.crawler = crawler
        scheduler.frontier = Frontier(server, namespace, worker_id(), settings.getfloat("ZOL_REDIS_WORKER_TTL"))
        scheduler.entries = {}
        scheduler.crawl_finished = False
        scheduler.beat = None
        scheduler.expected_crawl_id = settings.get("ZOL_REDIS_CRAWL_ID")  # the stage passes the one it reset
        scheduler.down_timeout = settings.getfloat("ZOL_REDIS_DOWN_TIMEOUT")
        scheduler.down_since = None  # monotonic time of the first failed Redis call of an outage
        scheduler.abort_reason = None
        scheduler.in_idle = False
        return scheduler

    # ---- lifecycle ----------------------------------------------------------------------------------------
    def open(self, spider):
        # not Scheduler.open: it calls Spider.log(), deprecated in Scrapy 2.19, when the queue is not empty
        self.spider = spider
        self.queue = None  # scrapy-redis's pickling queue is not used: crawler.request_codec, crawler.frontier
        settings = self.crawler.settings
        self.crawler.signals.connect(self.spider_idle, signal=signals.spider_idle)
        try:
            self.frontier.join_crawl(self.expected_crawl_id)
        except FrontierLost as exc:  # reset or emptied before this worker came: it ends at once (spider_idle)
            self.abort_reason = "frontier_lost"
            logger.error("%s; this worker stops, the crawl is not complete", exc)
            return
        self.frontier.check_arguments(spider.crawl_arguments(settings.get("ZOL_MIRROR") or ""))
        self.frontier.heartbeat()
        spider.shared = self.frontier
        spider.frontier_tracker = self
        for signal in (signals.item_scraped, signals.item_dropped, signals.item_error):
            self.crawler.signals.connect(self.item_finished, signal=signal)
        self.beat = task.LoopingCall(self._beat)
        self.beat.start(min(1.0, self.frontier.ttl_ms / 3000), now=False)
        logger.info(
            "worker %s joined the Redis frontier %r (%d request(s) queued)",
            self.frontier.worker,
            self.frontier.ns,
            self.frontier.queued(),
        )

    def close(self, reason):
        if self.beat is not None and self.beat.running:
            self.beat.stop()
        out = Path(self.crawler.settings.get("ZOL_OUT") or ".")
        out.mkdir(parents=True, exist_ok=True)
        crawl = (self._redis(self.frontier.stats) or {}) if self.crawl_finished else {}
        write_json(
            {
                "worker": self.frontier.worker,
                "finish_reason": reason,
                "crawl_finished": self.crawl_finished,
                "crawl": crawl,
                "local": self.stats.local_counters(),
            },
            out / WORKER_STATS_FILE,
            sort_keys=False,
        )
        if self.abort_reason is None:  # a lost frontier holds nothing of this crawl to give back
            requeued = self._redis(self.frontier.retire)
            if requeued:
                logger.warning(
                    "worker %s left %d unfinished request(s) to the other workers", self.frontier.worker, requeued
                )

    def _beat(self) -> None:
        self._redis(self._beat_once)
        slot = getattr(self.crawler.engine, "_slot", None)  # wake the engine: others may have queued requests
        if slot is not None and self.abort_reason is None:
            slot.nextcall.schedule()

    def _beat_once(self) -> None:
        if self._check_crawl():
            self.frontier.heartbeat()
            self._requeue_dead()

    def _requeue_dead(self) -> None:
        moved = self.frontier.requeue_dead()
        if moved:
            self.stats.inc_value("frontier/requeued_from_dead_workers", moved)
            logger.warning("%d request(s) of dead worker(s) queued again", moved)

    def spider_idle(self, spider=None) -> None:
        """Nothing left here: close only when no worker holds a request (they may queue more), and only while the
        frontier still holds this crawl (else a restarted, empty Redis would look like a finished crawl)."""
        if self.abort_reason is not None:
            raise CloseSpider(self.abort_reason)
        self.in_idle = True
        try:
            for token in list(self.entries):  # the engine is idle, so everything this worker popped is done
                entry = self.entries[token]
                entry.output_done, entry.items_done = True, entry.items
                self._maybe_ack(token)
            pending = self._redis(self._idle_pending)
        finally:
            self.in_idle = False
        if self.abort_reason is not None:
            raise CloseSpider(self.abort_reason)
        if pending is None or pending > 0:  # Redis unreachable (bounded by _outage) or work left somewhere
            raise DontCloseSpider
        self.crawl_finished = True

    def _idle_pending(self) -> int | None:
        self._requeue_dead()
        if not self._check_crawl():
            return None
        # idle, this worker holds only the requests it knows of (those whose ack failed): any other was popped
        # without its answer reaching here (crawler.frontier.requeue_unknown)
        unknown = self.frontier.requeue_unknown([entry.member for entry in self.entries.values()])
        if unknown:
            self.stats.inc_value("frontier/requeued_unknown_in_flight", unknown)
            logger.warning("%d request(s) popped without the answer reaching this worker queued again", unknown)
        return self.frontier.pending()

    # ---- the queue ----------------------------------------------------------------------------------------
    def enqueue_request(self, request: Request) -> bool:
        if self.abort_reason is not None:
            return False
        token = request.meta.pop(TOKEN, None)
        member = encode_request(request, self.spider)
        score = -request.priority
        original = self.entries.get(token) if token else None
        try:
            if original is not None:  # a retry or redirect of a request this worker holds takes its place
                del self.entries[token]
                if not self.frontier.replace(original.member, score, member):
                    self.stats.inc_value("frontier/stale_replacements")
            elif request.dont_filter:
                self.frontier.push(score, member)
            elif not self.frontier.push_new(self.df.request_fingerprint(request), score, member):
                self.stats.inc_value("frontier/replayed_requests_absorbed")
                return True
        except redis.RedisError as exc:  # the request cannot be kept: this crawl cannot be whole any more
            self._abort(
                "redis_unreachable",
                f"Redis unreachable while queueing {request.url} (a request this crawl cannot keep): {exc}",
            )
            return False
        self.stats.inc_value("scheduler/enqueued/redis")
        return True

    def next_request(self) -> Request | None:
        if self.abort_reason is not None:
            return None
        for _ in range(POISON_PER_CALL):
            member = self._redis(self.frontier.pop)
            if member is None:
                return None
            try:
                request = decode_request(member, self.spider)
            except PoisonMember as exc:
                self._poisoned(member, exc)
                continue
            token = hashlib.sha1(member).hexdigest()
            request.meta[TOKEN] = token
            self.entries[token] = InFlight(member, score=-request.priority)
            self.stats.inc_value("scheduler/dequeued/redis")
            return request
        return None

    def _poisoned(self, member: bytes, exc: PoisonMember) -> None:
        self._redis(self.frontier.poison, member, exc.reason)
        self.stats.inc_value(f"frontier/poison/{exc.reason}")
        logger.error(
            "a member of %s is not a request of this crawl (%s, %d bytes): moved to %s",
            self.frontier.queue_key,
            exc,
            len(member),
            self.frontier.poison_key,
        )

    def has_pending_requests(self) -> bool:
        return len(self) > 0

    def __len__(self) -> int:
        return 0 if self.abort_reason is not None else self._redis(self.frontier.queued, default=0)

    # ---- tracking (crawler.attribution.tracked) -----------------------------------------------------------
    def follow(self, request: Request, output: Iterable[Any] | None):
        token = request.meta.get(TOKEN)
        if token not in self.entries:
            return output
        return self._follow(token, self.entries[token], output)

    def _follow(self, token: str, entry: InFlight, output: Iterable[Any] | None) -> Iterator[Any]:
        stats = self.stats
        values = iter(output or ())
        try:
            while True:
                stats.current = entry
                try:
                    value = next(values)
                except StopIteration:
                    return
                except redis.RedisError as exc:  # the spider's shared state (claims) was out of reach
                    entry.failed = True
                    self._outage(exc)
                    return
                finally:
                    stats.current = None
                if value is not None and not isinstance(value, Request):
                    entry.items += 1
                    stats.item_entries[id(value)] = entry
                yield value
        finally:
            entry.output_done = True
            self._maybe_ack(token)

    def item_finished(self, item: Any, response=None, spider=None, **kwargs: Any) -> None:
        self.stats.item_entries.pop(id(item), None)
        request = getattr(response, "request", None)
        token = request.meta.get(TOKEN) if request is not None else None
        if token in self.entries:
            self.entries[token].items_done += 1
            self._maybe_ack(token)

    def _maybe_ack(self, token: str) -> None:
        entry = self.entries.get(token)
        if entry is None or not entry.output_done or entry.items_done < entry.items:
            return
        if entry.failed:  # redone from the start (its items and requests so far are absorbed as duplicates)
            if self._redis(self.frontier.replace, entry.member, entry.score, entry.member):
                del self.entries[token]
                self.stats.inc_value("frontier/redone_after_redis_errors")
            return
        acked = self._redis(self.frontier.ack, entry.member, dict(entry.counters))
        if acked is None:  # Redis unreachable: the request stays in flight (requeued if this worker gives up)
            return
        del self.entries[token]
        if not acked:
            self.stats.inc_value("frontier/stale_acks")  # taken for dead meanwhile: another worker redoes it


class SharedHostDelayMiddleware:
    """Politeness for the crawl as a whole: a request to a host starts ZOL_REDIS_HOST_DELAY seconds after the
    previous one of any worker (the next allowed time per host is reserved atomically in Redis, on its clock)."""

    def __init__(self, crawler, delay: float, frontier: Frontier) -> None:
        self.crawler, self.delay, self.frontier = crawler, delay, frontier

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        delay = settings.getfloat("ZOL_REDIS_HOST_DELAY")
        if delay <= 0:
            raise NotConfigured
        return cls(
            crawler, delay, Frontier(connect(settings.get("REDIS_URL"), worker=True), settings.get("ZOL_REDIS_KEY"))
        )

    async def process_request(self, request: Request, spider=None):
        shared = getattr(self.crawler.spider, "shared", None)  # the scheduler's frontier (FrontierScheduler.open)
        if shared is not None and shared.given_up:  # the worker is closing: no Redis call (seconds of retries each)
            return None
        try:
            wait = self.frontier.reserve_host(urlparse_cached(request).hostname or "", self.delay)
        except redis.RedisError:  # the scheduler bounds the outage; meanwhile this worker keeps the delay alone
            wait = self.delay
        if wait > 0:
            from twisted.internet import reactor  # the one Scrapy installed

            self.crawler.stats.inc_value("frontier/host_delay_s", round(wait, 3))
            await maybe_deferred_to_future(task.deferLater(reactor, wait, lambda: None))
        return None
