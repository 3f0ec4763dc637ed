"""The `crawl` section of params.yaml: what the crawl reads and how it treats the site, one frozen dataclass.

The DVC stage (crawler.crawl) reads the section with `load_crawl_params`; `scrapy crawl zol` reads its `-a`
arguments, which are the params of the same names, with `spider_params`: one set of names, types, bounds and
defaults (the dataclass's, equal to the shipped params.yaml). How a crawl runs (backend, Redis, workers) is not
here: crawler.run_options.
"""

from __future__ import annotations

import json
import typing
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from common.errors import UserError
from common.params import DEFAULT_PARAMS, bounded, fail, load_params, read_section

# the params `scrapy crawl zol -a NAME=VALUE` takes (besides `out`, the spider's own, and `mirror`, the command's)
SPIDER_ARGUMENTS = ("list_pages", "review_pages", "products", "max_products", "max_images_per_review", "crawl_date")
# what crawl.backend, redis_url, redis_key and workers became (they change how a crawl runs, not what it writes)
MOVED_TO_OPTIONS = {
    "backend": "--backend (ZOL_BACKEND)",
    "redis_url": "--redis-url (REDIS_URL)",
    "redis_key": "--redis-key (ZOL_REDIS_KEY)",
    "workers": "--workers (ZOL_CRAWL_WORKERS)",
}
# a mirror folder is a file read, not a site: no delay, no AutoThrottle, no back-off, high concurrency
MIRROR_SPEED_SETTINGS = (
    "AUTOTHROTTLE_ENABLED=0",
    "DOWNLOAD_DELAY=0",
    "RETRY_BACKOFF_BASE=0",
    "CONCURRENT_REQUESTS=32",
    "CONCURRENT_REQUESTS_PER_DOMAIN=16",
    "ZOL_REDIS_HOST_DELAY=0",
)


def is_http(mirror: str) -> bool:
    return mirror.startswith(("http://", "https://"))


@dataclass(frozen=True)
class CrawlParams:
    """params.yaml `crawl` (docs/crawling.md, "Arguments and params")."""

    mirror: str = "data/sample_site"  # "" = the live site; a mirror folder or http://127.0.0.1:PORT
    out: str = "data/raw/zol"
    list_pages: int = bounded(50, 0)
    review_pages: int = bounded(20, 0)
    products: str | tuple[int | str, ...] = ""  # comma-separated product ids (or a list): only these, no ranking
    max_products: int = bounded(0, 0)  # 0 = no limit
    max_images_per_review: int = bounded(5, 0)  # 0 = all
    polite: bool | Literal["auto"] = "auto"
    crawl_date: str = ""  # ISO date for yearless dates; "" = the mirror's manifest date, else today (UTC)
    user_agent: str = "zol-mimn/0.1 (+research crawler; reproduces the Multi-ZOL data set of the MIMN paper, AAAI-19)"
    referer: str = "https://detail.zol.com.cn/"
    download_delay: float = bounded(1.0, 0)  # s between two requests to a host when polite
    min_field_coverage: float = bounded(0.9, 0, 1)
    fail_on_layout_drift: bool = True

    def check(self) -> None:
        if not all(p.isdigit() for p in self.product_ids):
            raise fail("crawl", "products", f"must be comma-separated product ids, got {self.products!r}")
        if self.crawl_date:
            try:
                date.fromisoformat(self.crawl_date)
            except ValueError:
                raise fail(
                    "crawl", "crawl_date", f'must be an ISO date (YYYY-MM-DD) or "", got {self.crawl_date!r}'
                ) from None

    @property
    def product_ids(self) -> tuple[str, ...]:
        items = self.products.split(",") if isinstance(self.products, str) else self.products
        return tuple(text for text in (str(p).replace(" ", "") for p in items) if text)

    def crawl_day(self) -> date:
        """`crawl_date` as a date; today (UTC) when it is unset."""
        return date.fromisoformat(self.crawl_date) if self.crawl_date else datetime.now(UTC).date()

    def is_polite(self, mirror: str) -> bool:
        """`polite: auto` is polite unless the crawl reads a mirror folder (nothing to be polite to)."""
        return (not mirror or is_http(mirror)) if self.polite == "auto" else self.polite

    def spider_arguments(self) -> dict[str, str]:
        """The spider's `-a` arguments (products and crawl_date only when set)."""
        args = {name: str(getattr(self, name)) for name in SPIDER_ARGUMENTS if name not in ("products", "crawl_date")}
        if self.product_ids:
            args["products"] = ",".join(self.product_ids)
        if self.crawl_date:
            args["crawl_date"] = self.crawl_date
        return args

    def crawl_arguments(self, crawl_date: date, mirror: str) -> dict[str, Any]:
        """What a JOBDIR's partial output or a Redis frontier must have been crawled with to be continued (with the
        crawl's resolved date: today's for a crawl without one)."""
        return {
            "list_pages": self.list_pages,
            "review_pages": self.review_pages,
            "products": list(self.product_ids),
            "max_products": self.max_products,
            "max_images_per_review": self.max_images_per_review,
            "crawl_date": crawl_date.isoformat(),
            "mirror": mirror,
        }

    def scrapy_settings(self, backend: str = "local") -> list[str]:
        """Scrapy settings: identification, Referer, delay (a redis crawl's is crawl-wide) and the drift threshold."""
        delay_setting = "ZOL_REDIS_HOST_DELAY" if backend == "redis" else "DOWNLOAD_DELAY"
        settings = [
            f"{delay_setting}={self.download_delay}",
            f"ZOL_MIN_FIELD_COVERAGE={self.min_field_coverage}",
            f"ZOL_FAIL_ON_LAYOUT_DRIFT={'1' if self.fail_on_layout_drift else '0'}",
        ]
        if self.user_agent.strip():
            settings.append(f"USER_AGENT={self.user_agent.strip()}")
        if self.referer.strip():
            settings.append(f"ZOL_REFERER={self.referer.strip()}")
        return settings


def read_crawl_params(values: Any, source: str | Path = DEFAULT_PARAMS) -> CrawlParams:
    """The `crawl` section as CrawlParams; a run-only key of old params files is named with its option."""
    if isinstance(values, Mapping):
        moved = [key for key in MOVED_TO_OPTIONS if key in values]
        if moved:
            raise UserError(
                f"{source}: {', '.join(f'crawl.{key}' for key in moved)} moved out of params.yaml (changing how a "
                f"crawl runs re-runs nothing): give {', '.join(MOVED_TO_OPTIONS[key] for key in moved)} instead"
            )
        if isinstance(values.get("crawl_date"), date):  # YAML reads an unquoted 2018-09-15 as a date
            values = {**values, "crawl_date": values["crawl_date"].isoformat()}
    return read_section(CrawlParams, values, "crawl", source)


def load_crawl_params(path: str | Path = DEFAULT_PARAMS) -> CrawlParams:
    return read_crawl_params(load_params("crawl", path), path)


_INT_FIELDS = {f.name for f in fields(CrawlParams) if typing.get_type_hints(CrawlParams)[f.name] is int}


def spider_params(arguments: Mapping[str, Any]) -> CrawlParams:
    """The spider's `-a` arguments (text) read as the params they name; one left out takes the params' default."""
    unknown = sorted(set(arguments) - set(SPIDER_ARGUMENTS))
    if unknown:
        raise UserError(f"unknown spider argument(s) {', '.join(unknown)}; known: {', '.join(SPIDER_ARGUMENTS)}")
    values = {}
    for name, value in arguments.items():
        if value is None or value == "":
            continue
        if name in _INT_FIELDS and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        values[name] = value
    return read_section(CrawlParams, values, "crawl", source="spider arguments")


def check_mirror(mirror: str) -> str:
    """A mirror folder (made absolute) or an http(s):// mirror; "" = the live site."""
    mirror = mirror.strip()
    if mirror and not is_http(mirror):
        if not Path(mirror).is_dir():
            raise UserError(
                f"crawl.mirror {mirror} is not a folder: generate it "
                f"(dvc repro sources/zol/dvc.yaml:sample_site, or python -m sitegen.mirror --out {mirror}) "
                f'or set crawl.mirror to "" for the live site'
            )
        mirror = str(Path(mirror).resolve())
    return mirror


def mirror_crawl_date(mirror: str) -> str:
    """The mirror's manifest date (its yearless dates were written for it), else '' (the live site, no manifest)."""
    if not mirror:
        return ""
    try:
        if is_http(mirror):  # a loopback server whose root is a mirror folder
            with urllib.request.urlopen(f"{mirror.rstrip('/')}/manifest.json", timeout=10) as answer:
                manifest = json.loads(answer.read().decode("utf-8"))
        else:
            path = Path(mirror) / "manifest.json"
            manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):  # no manifest (a hand-made mirror): dates fall back to today
        return ""
    return str(manifest.get("crawl_date") or "")
