"""The shared crawl frontier in Redis (`--backend redis`): what every `scrapy crawl zol` worker shares.

Keys, under a namespace (the crawl's `--redis-key`, default `zol`):

| key | type | what |
|---|---|---|
| `<ns>:requests` | zset | the request queue (member: the request as JSON, crawler.request_codec; score: -priority) |
| `<ns>:dupefilter` | set | scrapy-redis's fingerprints of every request ever queued |
| `<ns>:inflight:<worker>` | hash | requests a worker popped and has not finished (member -> score) |
| `<ns>:workers`, `<ns>:alive:<worker>` | set, string with TTL | the workers; a worker whose alive key expired is dead |
| `<ns>:stats` | hash | the crawl's `zol/...` counters, added once per finished request |
| `<ns>:claims:review`, `<ns>:claims:long` | hash | review id -> page that listed it first; long URL -> its review |
| `<ns>:next:<host>` | string | the earliest time (ms, Redis clock) the next request to that host may start |
| `<ns>:arguments` | string | the spider arguments of this crawl (a worker with others is refused) |
| `<ns>:crawl_id` | string | the crawl's id, written by `reset`; a worker that finds it gone or changed aborts |
| `<ns>:poison` | set | queue members that are not requests of this crawl, moved aside (crawler.request_codec) |

A member of the queue is JSON (crawler.request_codec), never a pickle: whoever can write to the Redis cannot run
code on the workers. Still, a shared Redis should require a password and TLS (`rediss://user:password@host:6380/0`):
docs/scaling.md. A Redis that restarts empty mid-crawl loses the frontier's state: the workers notice the missing
crawl id on their next heartbeat and abort non-zero, so a partial crawl never passes for a whole one.

Reliable queue: a pop moves the request into the worker's in-flight hash in one step; the request leaves it (and
its counters are added to `<ns>:stats`, in the same step) only when its callback has run and every item it yielded
is in the worker's journal. A worker killed meanwhile stops refreshing its alive key; any other worker then moves
its in-flight requests back into the queue (`requeue_dead`). A request processed again yields the same items (the
merge keeps one of each review) and the same child requests, which the dupefilter already holds, so they are not
queued twice; its counters are added once, by whichever worker finishes it. The crawl is over when the queue and
every in-flight hash are empty. Scripts run on one Redis server (not Redis Cluster: they touch keys by name).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from common.errors import UserError, cli_entry
from crawler.run_options import check_key, env_redis_key, env_redis_url

_PUSH_NEW = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
  return 1
end
return 0
"""
_POP = """
local top = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #top == 0 then return false end
redis.call('ZREM', KEYS[1], top[1])
redis.call('HSET', KEYS[2], top[1], top[2])
return top[1]
"""
_ACK = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
for i = 2, #ARGV, 2 do
  if string.find(ARGV[i + 1], '[.eE]') then
    redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], ARGV[i + 1])
  else
    redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
return 1
"""
_REPLACE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""
_REQUEUE_DEAD = """
local moved = 0
for _, worker in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. ':alive:' .. worker) == 0 then
    local inflight = ARGV[1] .. ':inflight:' .. worker
    local entries = redis.call('HGETALL', inflight)
    for i = 1, #entries, 2 do
      redis.call('ZADD', KEYS[2], entries[i + 1], entries[i])
      moved = moved + 1
    end
    redis.call('DEL', inflight)
    redis.call('SREM', KEYS[1], worker)
  end
end
return moved
"""
_REQUEUE_UNKNOWN = """
local known = {}
for i = 1, #ARGV do known[ARGV[i]] = true end
local moved = 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  if not known[entries[i]] then
    redis.call('ZADD', KEYS[2], entries[i + 1], entries[i])
    redis.call('HDEL', KEYS[1], entries[i])
    moved = moved + 1
  end
end
return moved
"""
_PENDING = """
local total = redis.call('ZCARD', KEYS[1])
for _, worker in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  total = total + redis.call('HLEN', ARGV[1] .. ':inflight:' .. worker)
end
return total
"""
_RESERVE_HOST = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local start = math.max(now_ms, tonumber(redis.call('GET', KEYS[1]) or '0'))
local delay = tonumber(ARGV[1])
redis.call('SET', KEYS[1], start + delay, 'PX', start + delay - now_ms + 60000)
return start - now_ms
"""
_POISON = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
return 1
"""
_CLAIM = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then return ARGV[2] end
return redis.call('HGET', KEYS[1], ARGV[1])
"""


POISON_COUNTER = "frontier/poison/"  # + reason: in `<ns>:stats`, counted once per member


class FrontierLost(RuntimeError):
    """The frontier no longer holds this crawl (its id is gone or another): Redis restarted, flushed or reset."""


# a worker's command gives up after this long without an answer: a Redis that accepts connections and never answers
# (stopped, a network dropping packets) must not hold a worker far beyond ZOL_REDIS_DOWN_TIMEOUT; the frontier's
# scripts are small and answer in milliseconds
WORKER_SOCKET_TIMEOUT_S = 5.0


def connect(url: str, worker: bool = False) -> redis.Redis:
    """A client for `url`, checked with a PING: an unreachable Redis is a clear error, not a hang. Each command is
    retried 5 times over about 2.5 s (a blip, a restart); a longer outage is the scheduler's to bound. A `worker`'s
    client waits WORKER_SOCKET_TIMEOUT_S for an answer and retries no timeout (a Redis that did not answer in time
    will not answer the retry either, and each retry would wait again), else 30 s, retried."""
    retried = (redis.ConnectionError,) if worker else (redis.ConnectionError, redis.TimeoutError, TimeoutError)
    timeout = WORKER_SOCKET_TIMEOUT_S if worker else 30
    try:
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=min(timeout, 10),
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), 5, supported_errors=retried),
            retry_on_error=list(retried),
        )
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise UserError(f"cannot reach Redis at {url}: {exc}") from None
    return client


class Frontier:
    """One worker's handle on the shared frontier (see the module doc)."""

    def __init__(self, client: redis.Redis, namespace: str, worker: str = "", worker_ttl_s: float = 30.0) -> None:
        self.client, self.ns, self.worker = client, check_key(namespace), worker
        self.crawl_id = ""
        self.given_up = False  # give_up(): this worker ended; its calls fail at once (no retries, no waits)
        self.crawl_id_key, self.poison_key = f"{namespace}:crawl_id", f"{namespace}:poison"
        self.ttl_ms = max(1, int(worker_ttl_s * 1000))
        self.queue_key, self.dupefilter_key = f"{namespace}:requests", f"{namespace}:dupefilter"
        self.workers_key, self.stats_key = f"{namespace}:workers", f"{namespace}:stats"
        self.inflight_key = f"{namespace}:inflight:{worker}"
        self.alive_key = f"{namespace}:alive:{worker}"
        self._push_new = client.register_script(_PUSH_NEW)
        self._pop = client.register_script(_POP)
        self._ack = client.register_script(_ACK)
        self._replace = client.register_script(_REPLACE)
        self._requeue_dead = client.register_script(_REQUEUE_DEAD)
        self._requeue_unknown = client.register_script(_REQUEUE_UNKNOWN)
        self._pending = client.register_script(_PENDING)
        self._reserve_host = client.register_script(_RESERVE_HOST)
        self._claim = client.register_script(_CLAIM)
        self._poison = client.register_script(_POISON)

    # ---- the crawl's identity ---------------------------------------------------------------------------------
    def join_crawl(self, expected: str = "") -> str:
        """Adopt the crawl id: `expected` (the stage's, which must be there), else the frontier's, else a new one
        (the first worker of a crawl started by hand)."""
        if not expected:
            self.client.set(self.crawl_id_key, secrets.token_hex(8), nx=True)
        found = self.client.get(self.crawl_id_key)
        found = found.decode("utf-8", "replace") if found is not None else ""
        if expected and found != expected:
            raise FrontierLost(
                f"the Redis frontier {self.ns!r} does not hold this crawl (crawl id {found or 'gone'}, "
                f"expected {expected}): it was reset, flushed or restarted"
            )
        self.crawl_id = found
        return found

    def check_crawl(self) -> None:
        """FrontierLost when the frontier's crawl id is no longer the one this worker joined."""
        found = self.client.get(self.crawl_id_key)
        if found is None or found.decode("utf-8", "replace") != self.crawl_id:
            raise FrontierLost(
                f"the Redis frontier {self.ns!r} lost this crawl's state (crawl id "
                f"{'gone' if found is None else 'changed'}): Redis restarted, was flushed or reset"
            )

    # ---- workers ------------------------------------------------------------------------------------------
    def heartbeat(self) -> None:
        """Register (again) and refresh this worker's alive key."""
        with self.client.pipeline() as pipe:
            pipe.sadd(self.workers_key, self.worker)
            pipe.set(self.alive_key, 1, px=self.ttl_ms)
            pipe.execute()

    def retire(self) -> int:
        """This worker leaves: what it still holds goes back into the queue for the others."""
        self.client.delete(self.alive_key)
        return self.requeue_dead()

    def requeue_dead(self) -> int:
        """Move the in-flight requests of every dead worker back into the queue; returns how many."""
        return int(self._requeue_dead(keys=[self.workers_key, self.queue_key], args=[self.ns]))

    def requeue_unknown(self, known: list[bytes]) -> int:
        """Move this worker's in-flight requests other than `known` back into the queue; returns how many. Such a
        request was popped in Redis while its answer never reached the worker (a timeout, a connection cut after
        the command): the worker does not know it holds it, and the crawl would wait for it for ever."""
        return int(self._requeue_unknown(keys=[self.inflight_key, self.queue_key], args=known))

    # ---- the queue ----------------------------------------------------------------------------------------
    def push_new(self, fingerprint: str, score: float, member: bytes) -> bool:
        """Queue a request unless the dupefilter holds its fingerprint (then False: it was queued before)."""
        return bool(self._push_new(keys=[self.dupefilter_key, self.queue_key], args=[fingerprint, score, member]))

    def push(self, score: float, member: bytes) -> None:
        self.client.zadd(self.queue_key, {member: score})

    def pop(self) -> bytes | None:
        """The highest-priority request, moved into this worker's in-flight hash."""
        return self._pop(keys=[self.queue_key, self.inflight_key])

    def ack(self, member: bytes, counters: dict[str, float]) -> bool:
        """The request is finished: out of the in-flight hash, its counters added. False when this worker was
        taken for dead and the request requeued meanwhile (its counters are then left to the worker that
        finishes it)."""
        args: list = [member]
        for key, value in counters.items():
            args += [key, repr(float(value)) if isinstance(value, float) else str(int(value))]
        return bool(self._ack(keys=[self.inflight_key, self.stats_key], args=args))

    def replace(self, member: bytes, score: float, new_member: bytes) -> bool:
        """A retry or redirect of an in-flight request takes its place in the queue."""
        return bool(self._replace(keys=[self.inflight_key, self.queue_key], args=[member, score, new_member]))

    def poison(self, member: bytes, reason: str) -> None:
        """A popped member that is no request: out of the in-flight hash into `<ns>:poison`, counted."""
        self._poison(keys=[self.inflight_key, self.poison_key, self.stats_key], args=[member, POISON_COUNTER + reason])

    def queued(self) -> int:
        return int(self.client.zcard(self.queue_key))

    def pending(self) -> int:
        """Requests queued or in flight anywhere: 0 means the crawl is over."""
        return int(self._pending(keys=[self.queue_key, self.workers_key], args=[self.ns]))

    # ---- shared state -------------------------------------------------------------------------------------
    def give_up(self) -> None:
        """This worker stops (Redis lost or out of reach): the spider's claims fail at once from now on, instead of
        each one retrying for seconds while the worker closes (its partial output is not merged)."""
        self.given_up = True

    def _live(self) -> None:
        if self.given_up:
            raise redis.ConnectionError(f"the frontier {self.ns!r} was given up by this worker")

    def claim(self, kind: str, key: str, value: str) -> str:
        """The first value stored for `key` (this one when it is the first)."""
        self._live()
        holder = self._claim(keys=[f"{self.ns}:claims:{kind}"], args=[key, value])
        return holder.decode("utf-8") if isinstance(holder, bytes) else str(holder)

    def reserve_host(self, host: str, delay_s: float) -> float:
        """Seconds to wait before a request to `host` may start, `delay_s` after the previous one of the crawl."""
        return int(self._reserve_host(keys=[f"{self.ns}:next:{host}"], args=[int(delay_s * 1000)])) / 1000

    def check_arguments(self, arguments: dict) -> None:
        """The first worker records the crawl's arguments; a worker started with others is refused."""
        text = json.dumps(arguments, sort_keys=True)
        key = f"{self.ns}:arguments"
        if not self.client.set(key, text, nx=True):
            stored = self.client.get(key)
            if stored is not None and stored.decode("utf-8") != text:
                before = json.loads(stored)
                differ = sorted(k for k in set(before) | set(arguments) if before.get(k) != arguments.get(k))
                raise UserError(
                    f"the Redis frontier {self.ns!r} holds a crawl made with other arguments "
                    f"({', '.join(differ)}); run `python -m crawler.frontier reset` first or use "
                    f"another --redis-key"
                )

    def stats(self) -> dict[str, float]:
        """The crawl's counters added so far (ints, floats where a counter is fractional)."""
        out: dict[str, float] = {}
        for key, value in self.client.hgetall(self.stats_key).items():
            number = float(value)
            out[key.decode("utf-8")] = int(number) if number.is_integer() else number
        return dict(sorted(out.items()))

    def reset(self) -> int:
        """Delete every key of the namespace and start a new crawl (a new crawl id); returns how many were deleted."""
        keys = list(self.client.scan_iter(match=f"{self.ns}:*", count=1000))
        if keys:
            self.client.delete(*keys)
        self.crawl_id = secrets.token_hex(8)
        self.client.set(self.crawl_id_key, self.crawl_id)
        return len(keys)

    def status(self) -> dict:
        workers = sorted(w.decode("utf-8") for w in self.client.smembers(self.workers_key))
        return {
            "queued": self.queued(),
            "pending": self.pending(),
            "workers": workers,
            "alive": [w for w in workers if self.client.exists(f"{self.ns}:alive:{w}")],
            "seen_requests": int(self.client.scard(self.dupefilter_key)),
            "poison": int(self.client.scard(self.poison_key)),
            "stats": self.stats(),
        }


def check_key_arg(key: str) -> str:
    try:
        return check_key(key)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.frontier", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "action",
        choices=("status", "reset"),
        help="status: the frontier as JSON; reset: delete the namespace's keys (a new crawl)",
    )
    parser.add_argument(
        "--redis-url", default=env_redis_url(), help="the shared Redis (default: %(default)s; env REDIS_URL)"
    )
    parser.add_argument(
        "--key",
        default=env_redis_key(),
        type=check_key_arg,
        help="the crawl's namespace, the crawl's --redis-key (default: %(default)s; env ZOL_REDIS_KEY): letters, "
        "digits, '_', '.', '-'",
    )
    opts = parser.parse_args(argv)
    frontier = Frontier(connect(opts.redis_url), opts.key)
    if opts.action == "reset":
        deleted = frontier.reset()
        print(
            f"frontier {opts.key}: {deleted} key(s) deleted; new crawl id {frontier.crawl_id} "
            f"(workers may check it: ZOL_REDIS_CRAWL_ID={frontier.crawl_id})"
        )
    else:
        print(json.dumps(frontier.status(), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
