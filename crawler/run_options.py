"""How a crawl runs, as opposed to what it writes (crawler.params): given on the command line or in the environment,
never in params.yaml, so changing them re-runs nothing.

| option | environment | default | what |
|---|---|---|---|
| `--backend` | `ZOL_BACKEND` | `local` | `local`: one scrapy process; `redis`: workers sharing a Redis frontier |
| `--redis-url` | `REDIS_URL` | `redis://127.0.0.1:6379/0` | the shared Redis (backend redis) |
| `--redis-key` | `ZOL_REDIS_KEY` | `zol` | the crawl's namespace in that Redis |
| `--workers` | `ZOL_CRAWL_WORKERS` | `2` | scrapy processes the stage starts on this machine (backend redis) |

`scrapy crawl zol` by hand reads the first three from the environment (crawler.settings).
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass

from common.errors import UserError

BACKENDS = ("local", "redis")
DEFAULT_BACKEND = "local"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_REDIS_KEY = "zol"
DEFAULT_WORKERS = 2
KEY_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_key(key: str) -> str:
    """A crawl's namespace: letters, digits, `_`, `.`, `-` (no glob character, so a reset deletes only its keys)."""
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise UserError(f"the Redis key {key!r} must be letters, digits, '_', '.' or '-' (no spaces, no '*')")
    return key


def env_redis_url() -> str:
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def env_redis_key() -> str:
    return os.environ.get("ZOL_REDIS_KEY") or DEFAULT_REDIS_KEY


@dataclass(frozen=True)
class RunOptions:
    backend: str = DEFAULT_BACKEND
    redis_url: str = DEFAULT_REDIS_URL
    redis_key: str = DEFAULT_REDIS_KEY
    workers: int = DEFAULT_WORKERS

    def check(self) -> RunOptions:
        """One line naming the option (and its variable) for a bad value; Redis options only for backend redis."""
        if self.backend not in BACKENDS:
            raise UserError(f"--backend (ZOL_BACKEND) must be local or redis, got {self.backend!r}")
        if self.backend == "redis":
            if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
                raise UserError(f"--redis-url (REDIS_URL) must be a redis:// URL, got {self.redis_url!r}")
            if not KEY_RE.match(self.redis_key):
                raise UserError(
                    f"--redis-key (ZOL_REDIS_KEY) must be letters, digits, '_', '.' or '-', got {self.redis_key!r}"
                )
            if self.workers < 1:
                raise UserError(f"--workers (ZOL_CRAWL_WORKERS) must be >= 1, got {self.workers}")
        return self


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """--backend, --redis-url, --redis-key, --workers, each defaulting to its environment variable."""
    parser.add_argument(
        "--backend",
        default=os.environ.get("ZOL_BACKEND") or DEFAULT_BACKEND,
        help="local: one scrapy process; redis: workers sharing a Redis frontier "
        "(default: %(default)s; env ZOL_BACKEND, else local)",
    )
    parser.add_argument(
        "--redis-url",
        default=env_redis_url(),
        help=f"backend redis: the shared Redis (default: %(default)s; env REDIS_URL, else {DEFAULT_REDIS_URL})",
    )
    parser.add_argument(
        "--redis-key",
        default=env_redis_key(),
        help="backend redis: the crawl's namespace, reset when the stage starts "
        f"(default: %(default)s; env ZOL_REDIS_KEY, else {DEFAULT_REDIS_KEY})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.environ.get("ZOL_CRAWL_WORKERS") or DEFAULT_WORKERS,
        help="backend redis: scrapy processes started here "
        f"(default: %(default)s; env ZOL_CRAWL_WORKERS, else {DEFAULT_WORKERS})",
    )


def run_options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(args.backend, args.redis_url, args.redis_key, args.workers).check()
