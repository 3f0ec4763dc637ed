"""Telling a refusal from a page: the site's verification page, near-empty stubs and refusing statuses are
"blocked", network failures are "network"; neither is layout drift (docs/zol-site.md, "What to expect from the
live site today"). Pure functions of a response or a failure, plus the one line a failed crawl ends with."""

from __future__ import annotations

from dataclasses import dataclass

from scrapy import exceptions as scrapy_errors
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from twisted.internet import error as net_error
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived

PAGE_KINDS = ("ranking", "review_list", "ajax", "long")  # what a refusal is checked on (not images, not robots.txt)
VERIFICATION_MARK = "防刷验证"  # the verification page's title: 您正在进行防刷验证...
STUB_MAX_BYTES = 1024  # public crawlers of 2026 report ~150-byte stubs for clients they refuse
REFUSING_STATUSES = {403: "http_403", 429: "http_429"}
# what every real page of a kind carries: a small page without any of these is a stub, not a page. AJAX answers are
# left out: no AJAX form is confirmed for 2026, and a small answer there is a form that does not answer (counted
# `ajax/<form>/not_json`), not proof of a refusal; the review list on the same host shows a refusal anyway
SKELETON = {
    "ranking": (b"J_PicMode", b"subcate57", b"cell_phone"),
    "review_list": (
        b"comments-item",
        b"comment-item",
        b"_j_comment_list",
        b"_PRO_",
        b"product-model",
        b"total-num",
        b"_j_filter_tab",
    ),
    "long": (b"article", b"<h1"),
}
# Twisted's errors, and the ones Scrapy (2.14+) wraps them in
NETWORK_ERRORS = (
    net_error.DNSLookupError,
    net_error.ConnectError,
    net_error.ConnectionRefusedError,
    net_error.TimeoutError,
    net_error.TCPTimedOutError,
    net_error.ConnectionLost,
    ResponseNeverReceived,
    ResponseFailed,
    *(
        getattr(scrapy_errors, name)
        for name in (
            "DownloadConnectionRefusedError",
            "CannotResolveHostError",
            "DownloadTimeoutError",
            "DownloadFailedError",
        )
        if hasattr(scrapy_errors, name)
    ),
)

EXIT_LAYOUT_DRIFT = 5
EXIT_BLOCKED = 6
EXIT_NETWORK = 7


class BlockedPage(IgnoreRequest):
    """A page the site kept refusing (verification page, stub, 403/429) after every retry."""

    def __init__(self, kind: str, url: str) -> None:
        super().__init__(f"blocked ({kind}): {url}")
        self.kind = kind
        self.url = url


def _has_verification_mark(body: bytes) -> bool:
    head = body[:8192]
    return any(VERIFICATION_MARK.encode(encoding) in head for encoding in ("utf-8", "gb18030"))


def blocked_kind(page_kind: str | None, response: Response) -> str | None:
    """`verification`, `stub`, `http_403`, `http_429` when the answer to a page request is a refusal; else None."""
    if page_kind not in PAGE_KINDS:
        return None
    if response.status in REFUSING_STATUSES:
        return REFUSING_STATUSES[response.status]
    if response.status != 200:
        return None
    body = response.body
    if _has_verification_mark(body):
        return "verification"
    if page_kind in SKELETON and len(body) < STUB_MAX_BYTES and not any(mark in body for mark in SKELETON[page_kind]):
        return "stub"
    return None


def is_network_failure(exception: BaseException) -> bool:
    return isinstance(exception, NETWORK_ERRORS)


@dataclass(frozen=True)
class CrawlFailure:
    """Why a crawl must end non-zero: the exit status and the one line that says the cause and the remedy."""

    exit_code: int
    line: str


def blocked_failure(kind: str, url: str, user_agent: str) -> CrawlFailure:
    return CrawlFailure(
        EXIT_BLOCKED,
        (
            f"blocked by the site ({kind}) at {url}: this is not layout drift; the site refused the client "
            f"(User-Agent {user_agent!r}). Remedy: set crawl.user_agent to what the site serves, a slower "
            f"crawl.download_delay, or try later (resume with --jobdir)"
        ),
    )


def network_failure(exception: BaseException, url: str) -> CrawlFailure:
    return CrawlFailure(
        EXIT_NETWORK,
        (
            f"network failure ({type(exception).__name__}) at {url}: the site could not be reached; this is not "
            f"layout drift. Remedy: check the connection / DNS / proxy, raise DOWNLOAD_TIMEOUT, or try later "
            f"(resume with --jobdir)"
        ),
    )


def layout_failure(problems: list[str]) -> CrawlFailure:
    return CrawlFailure(
        EXIT_LAYOUT_DRIFT,
        (
            f"layout drift: {'; '.join(problems)} (below crawl.min_field_coverage): the site's markup changed; see "
            f"crawl_stats.json field_coverage and docs/zol-site.md (crawl.fail_on_layout_drift: false to keep going)"
        ),
    )
