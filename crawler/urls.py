"""URL patterns of ZOL's mobile-phone channel (docs/zol-site.md), shared by the spider and the mirror generator."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

DETAIL = "https://detail.zol.com.cn"
LONG_REVIEWS = "https://t.zol.com.cn"
ALLOWED_DOMAINS = ("zol.com.cn", "zol-img.com.cn")

PRODUCT_LINK_RE = re.compile(r"/cell_phone/index(\d+)\.shtml")
REVIEW_LIST_LINK_RE = re.compile(r"/\d+/(\d+)/review\.shtml")
LONG_REVIEW_RE = re.compile(r"/evaluation_(\d+)\.html")
LONG_REVIEW_PRODUCT_RE = re.compile(r"/57/(\d+)/evaluation_\d+\.html")


def ranking_url(page: int) -> str:
    """Hot-ranking page `page` (1-based) of the mobile-phone channel."""
    if page == 1:
        return f"{DETAIL}/cell_phone_index/subcate57_list_1.html"
    return f"{DETAIL}/cell_phone_index/subcate57_0_list_1_0_1_2_0_{page}.html"


def product_dir(product_id: str | int) -> int:
    """The directory number in review URLs: proId // 1000 + 1 (1184692 -> 1185)."""
    return int(product_id) // 1000 + 1


def product_url(product_id: str | int) -> str:
    return f"{DETAIL}/cell_phone/index{product_id}.shtml"


def review_list_url(product_id: str | int) -> str:
    return f"{DETAIL}/{product_dir(product_id)}/{product_id}/review.shtml"


# The AJAX forms public crawlers used, in the order a crawl tries them (docs/zol-site.md): 2018's, then 2019's
AJAX_FORMS: dict[str, str] = {
    "2018": "xhr4_Review_GetList_%5EproId={product_id}%5Epage={page}.html",
    "2019": "xhr4_Review_GetList_proId={product_id}%5Elevel=0%5Efilter=1%5Epage={page}.html",
}


def ajax_review_url(product_id: str | int, page: int, form: str = "2018") -> str:
    """The AJAX endpoint for review page `page` (3.. ; pages 1-2 are embedded in review.shtml) in AJAX form `form`."""
    return f"{DETAIL}/" + AJAX_FORMS[form].format(product_id=product_id, page=page)


def redirecting_review_list_url(product_id: str | int) -> str:
    """`/0/{proId}/review.shtml`: the site answers it with a 301 to review_list_url (seen in 2026)."""
    return f"{DETAIL}/0/{product_id}/review.shtml"


def short_review_url(product_id: str | int, review_id: str | int) -> str:
    return f"{DETAIL}/{product_dir(product_id)}/{product_id}/review_0_0_{review_id}_1.shtml"


def long_review_url(product_id: str | int, aid: str | int) -> str:
    return f"{LONG_REVIEWS}/57/{product_id}/evaluation_{aid}.html"


def long_review_product_id(url: str) -> str | None:
    """The product a long review is filed under: the `{proId}` of `/57/{proId}/evaluation_{aid}.html`."""
    match = LONG_REVIEW_PRODUCT_RE.search(url)
    return match.group(1) if match else None


def absolute(url: str) -> str:
    """Protocol-relative (`//host/...`) and http URLs as https."""
    url = url.strip()
    if url.startswith("//"):
        return "https:" + url
    if url.startswith("http://"):
        return "https://" + url[len("http://") :]
    return url


def resolve(base: str, url: str | None) -> str | None:
    """`url` as found in an attribute of the page at `base` -> an absolute https URL; None when it is empty or
    cannot be one (`javascript:`, `#`, no host). Relative (`/1185/...`, `x.jpg`) and protocol-relative
    (`//pro-fd...`) URLs are resolved like a browser does."""
    if not url or not url.strip() or any(c.isspace() for c in url.strip()):
        return None
    try:
        joined = absolute(urljoin(base, url.strip()))
        parts = urlsplit(joined)
        host = parts.hostname
    except ValueError:  # e.g. `http://[bad`
        return None
    if parts.scheme != "https" or not host:
        return None
    return joined


def is_allowed_host(url: str) -> bool:
    """The URL's host is one of ALLOWED_DOMAINS or below one (what Scrapy's offsite filter lets through)."""
    host = (urlsplit(url).hostname or "").lower()
    return any(host == domain or host.endswith("." + domain) for domain in ALLOWED_DOMAINS)
