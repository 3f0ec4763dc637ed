"""What every page of the offline mirror shares, in either era: the `<head>` with ZOL's `_PRO_` script, the
breadcrumb, root-relative links, score texts and the product's listed score.

Every function returns a `str`; the caller encodes pages as GBK.
"""

from __future__ import annotations

from html import escape

from crawler.urls import product_url
from sitegen.plan import Product


def root_relative(url: str) -> str:
    """The site-relative path of an absolute detail.zol.com.cn URL (links on the site are root-relative)."""
    return url.split(".com.cn", 1)[1]


def product_link(product: Product) -> str:
    """The root-relative link to the product's overview page."""
    return root_relative(product_url(product.product_id))


def score_text(score: float) -> str:
    """`8` for a whole score, `8.2` for an editor's decimal one."""
    return str(int(score)) if score == int(score) else f"{score:.1f}"


def product_score(product: Product) -> float:
    """The product's score, as its review list and its ranking card show it."""
    return round(sum(r.overall for r in product.reviews) / len(product.reviews), 1)


def page_head(title: str, product: Product | None = None, sub_page: str = "Review") -> str:
    """The page up to `<body>`; a product's page also declares it in `var _PRO_`."""
    pro = ""
    if product is not None:
        pro = f"""
    <script type="text/javascript">
        var pv_subcatid = '57';
        var isTopic = 0;
        var _PRO_ = {{
            pageType: 'Detail',
            subPageType: '{sub_page}',
            proId: '{product.product_id}',
            manuId: '{product.manu_id}',
            mainId: '',
            subcateId: '57',
            seriesId: '',
            subcateName: '手机',
            manuName: '{product.brand}',
            reviewId: '0'
        }}
    </script>"""
    return f"""<!DOCTYPE html>
<html>
<head>
    <meta charset="GBK"/>
    <title>{escape(title)}</title>{pro}
    <base target="_blank"/>
</head>
<body>
"""


def breadcrumb(product: Product, last: str) -> str:
    return f"""<div class="wrapper clearfix">
    <div class="breadcrumb">
        <a href="/">ZOL报价首页</a><em>&gt;</em>
        <a href="/cell_phone_index/subcate57_list_1.html">手机</a><em>&gt;</em>
        <a id="_j_breadcrumb" data-subcateid="57" data-manuid="{product.manu_id}" class="breadcrumb__manu"
           href="/cell_phone_index/subcate57_{product.manu_id}_list_1.html">{escape(product.brand)}手机<i class="arrow"></i></a><em>&gt;</em>
        <a href="{product_link(product)}" target="_self">{escape(product.name)}</a><em>&gt;</em>
        <span>{last}</span>
    </div>
</div>
"""
