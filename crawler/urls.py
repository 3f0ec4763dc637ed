"""URL patterns of ZOL's mobile-phone channel (ZOL-SITE.md), shared by the spider and the mirror generator."""
from __future__ import annotations

import re

DETAIL = "https://detail.zol.com.cn"
LONG_REVIEWS = "https://t.zol.com.cn"
ALLOWED_DOMAINS = ("zol.com.cn", "zol-img.com.cn")

PRODUCT_LINK_RE = re.compile(r"/cell_phone/index(\d+)\.shtml")
LONG_REVIEW_RE = re.compile(r"/evaluation_(\d+)\.html")


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


def ajax_review_url(product_id: str | int, page: int) -> str:
    """The AJAX endpoint for review page `page` (3.. ; pages 1-2 are embedded in review.shtml)."""
    return f"{DETAIL}/xhr4_Review_GetList_%5EproId={product_id}%5Epage={page}.html"


def short_review_url(product_id: str | int, review_id: str | int) -> str:
    return f"{DETAIL}/{product_dir(product_id)}/{product_id}/review_0_0_{review_id}_1.shtml"


def long_review_url(product_id: str | int, aid: str | int) -> str:
    return f"{LONG_REVIEWS}/57/{product_id}/evaluation_{aid}.html"


def absolute(url: str) -> str:
    """Protocol-relative (`//host/...`) and http URLs as https."""
    url = url.strip()
    if url.startswith("//"):
        return "https:" + url
    if url.startswith("http://"):
        return "https://" + url[len("http://"):]
    return url
