"""Scrapy settings of the `zol` crawler: polite by default; `crawler.crawl` switches politeness off for the mirror.

The defaults that are `crawl` params (identification, Referer, delay, drift threshold) are the params' own defaults
(crawler.params.CrawlParams); how the crawl runs (backend, Redis) comes from the environment (crawler.run_options).
"""

from __future__ import annotations

import os

from crawler import run_options
from crawler.params import CrawlParams

_crawl_defaults = CrawlParams()  # the defaults of the `crawl` params

BOT_NAME = "zol-mimn"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

USER_AGENT = _crawl_defaults.user_agent
ZOL_REFERER = _crawl_defaults.referer  # sent with every request that names no referer of its own
ROBOTSTXT_OBEY = True

# politeness towards the live site
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 1
DOWNLOAD_DELAY = _crawl_defaults.download_delay
DOWNLOAD_DELAY_JITTER = 0.5
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 2.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
DOWNLOAD_TIMEOUT = 30

RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
# a retry waits Retry-After, else RETRY_BACKOFF_BASE * 2^(attempt-1) s (crawler.middlewares.BackoffRetryMiddleware)
RETRY_BACKOFF_BASE = 5.0
RETRY_BACKOFF_MAX = 120.0

HTTPCACHE_ENABLED = False
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False

DOWNLOAD_MAXSIZE = 10 * 1024 * 1024
DOWNLOAD_WARNSIZE = 4 * 1024 * 1024

DEFAULT_REQUEST_HEADERS = {
    "Accept": "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8",
    "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5",
}

# ZOL_MIRROR: a mirror folder or http://127.0.0.1:PORT serving one ("" = the live site)
ZOL_MIRROR = os.environ.get("ZOL_MIRROR", "")
# ZOL_OUT: where reviews.jsonl, crawl_stats.json and images/ go
ZOL_OUT = os.environ.get("ZOL_OUT", "data/raw/zol")
# ZOL_CRAWLED_AT: fixes every record's crawled_at (tests, reproducible bytes); "" = the time of scraping
ZOL_CRAWLED_AT = os.environ.get("ZOL_CRAWLED_AT", "")

DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "crawler.middlewares.EveryRequestRobotsTxtMiddleware": 100,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawler.middlewares.BackoffRetryMiddleware": 550,
    # answers reach it decompressed (590) and before MetaRefresh (580) acts: a stub's refresh is a refusal
    "crawler.middlewares.BlockedPageMiddleware": 585,
    "crawler.middlewares.DefaultRefererMiddleware": 595,
}
# the offline mirror (ZOL_MIRROR) sits where the network would: every middleware and the downloader's per-host
# slots (delay, AutoThrottle, concurrency) act as live; with ZOL_MIRROR empty it is Scrapy's HTTP handler
DOWNLOAD_HANDLERS = {
    "http": "crawler.mirror.MirrorDownloadHandler",
    "https": "crawler.mirror.MirrorDownloadHandler",
}
ITEM_PIPELINES = {
    "crawler.pipelines.ReviewImagesPipeline": 100,
    "crawler.pipelines.ReviewJsonlPipeline": 800,
}
FILES_STORE = os.path.join(ZOL_OUT, "images")
FILES_URLS_FIELD = "image_urls"
FILES_RESULT_FIELD = "images"
FILES_EXPIRES = 3650
MEDIA_ALLOW_REDIRECTS = True

# JOBDIR resume keeps the scraped items, not Scrapy's request state (see crawler.resume)
DUPEFILTER_CLASS = "crawler.resume.MemoryDupeFilter"
SCHEDULER = "crawler.resume.MemoryQueueScheduler"

# ZOL_BACKEND=redis: this process is one worker of a crawl shared through Redis (crawler.redis_backend); several
# workers on any machines share the queue, the dupefilter, the counters and the per-host delay
ZOL_BACKEND = os.environ.get("ZOL_BACKEND") or run_options.DEFAULT_BACKEND
REDIS_URL = run_options.env_redis_url()
ZOL_REDIS_KEY = run_options.env_redis_key()  # the crawl's namespace in Redis
ZOL_REDIS_CRAWL_ID = os.environ.get("ZOL_REDIS_CRAWL_ID", "")  # the crawl id a worker must find ("" = any)
ZOL_REDIS_WORKER_TTL = float(os.environ.get("ZOL_REDIS_WORKER_TTL", "30"))  # s without a heartbeat: dead
ZOL_REDIS_DOWN_TIMEOUT = float(os.environ.get("ZOL_REDIS_DOWN_TIMEOUT") or 60)  # s of Redis outage a worker bears
# s between two requests to a host, crawl-wide (replaces DOWNLOAD_DELAY); 0 = none
ZOL_REDIS_HOST_DELAY = _crawl_defaults.download_delay
if ZOL_BACKEND == "redis":
    SCHEDULER = "crawler.redis_backend.FrontierScheduler"
    STATS_CLASS = "crawler.frontier_stats.FrontierStatsCollector"
    DOWNLOAD_DELAY = 0.0  # the shared delay below holds for all workers together
    DOWNLOADER_MIDDLEWARES["crawler.redis_backend.SharedHostDelayMiddleware"] = 560
elif ZOL_BACKEND != "local":
    raise ValueError(f"ZOL_BACKEND must be local or redis, got {ZOL_BACKEND!r}")

# drift measured (crawler.coverage): a field a review format always carries, present on fewer than this share of
# that format's reviews, is a layout error; with ZOL_FAIL_ON_LAYOUT_DRIFT the crawl then exits non-zero
ZOL_MIN_FIELD_COVERAGE = _crawl_defaults.min_field_coverage
ZOL_FAIL_ON_LAYOUT_DRIFT = _crawl_defaults.fail_on_layout_drift

LOG_LEVEL = os.environ.get("ZOL_LOG_LEVEL", "INFO")
FEED_EXPORT_ENCODING = "utf-8"
COMMANDS_MODULE = "crawler.commands"
