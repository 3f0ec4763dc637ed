"""The offline mirror's catalogue pages, the same in either era: the hot ranking (ranked cards, pager, and the
links to unranked phones that the real page carries) and each product's overview page.

Every function returns a `str`; the caller encodes pages as GBK.
"""

from __future__ import annotations

from html import escape

from crawler.urls import ranking_url, review_list_url
from sitegen.page_frame import breadcrumb, page_head, product_link, product_score, root_relative
from sitegen.plan import Product


def _side_links(title: str, css: str, products: list[Product]) -> str:
    links = "".join(f'<li><a href="{product_link(p)}">{escape(p.name)}</a></li>' for p in products)
    return f'    <div class="{css}"><h3 class="module-title">{title}</h3><ul>{links}</ul></div>\n' if products else ""


def _pager(page: int, pages: int) -> str:
    """`div.pagebar`'s links: 上一页 but on the first page, every page number, 下一页 but on the last."""
    pager = [
        f'<span class="sel">{page}</span>'
        if n == page
        else f'<a href="{root_relative(ranking_url(n))}" target="_self">{n}</a>'
        for n in range(1, pages + 1)
    ]
    if page > 1:
        pager.insert(0, f'<a class="prev" href="{root_relative(ranking_url(page - 1))}" target="_self">上一页</a>')
    if page < pages:
        pager.append(f'<a class="next" href="{root_relative(ranking_url(page + 1))}" target="_self">下一页</a>')
    return "".join(pager)


def ranking_page(
    page: int,
    pages: int,
    products: list[Product],
    unranked: list[Product],
    first_rank: int = 1,
    elsewhere: list[Product] = (),
    review_links: dict[str, str] | None = None,
) -> str:
    """One page of the hot ranking: the ranked cards (`ul#J_PicMode > li[data-follow-id]`, with score and review
    count), the pager (`div.pagebar a.next` 下一页 but on the last), and, as on the real page, links to products
    that are not ranked here: search hot words, the 手机新品 sidebar, 新增点评产品 and 大家说 (`unranked`, and on
    page 1 also ranked products of later pages, `elsewhere`). `review_links`: a card's 人点评 link other than the
    canonical review list (product id -> site-relative URL)."""
    items = []
    for rank, product in enumerate(products, start=first_rank):
        href = product_link(product)
        items.append(f"""        <li data-follow-id="p{product.product_id}" data-rank="{rank}">
            <a class="pic" href="{href}" target="_blank"><img width="220" height="165" alt="{escape(product.name)}" src="//2f.zol-img.com.cn/product/default_220x165.jpg"></a>
            <h3><a href="{href}" title="{escape(product.name)}">{escape(product.name)}</a></h3>
            <div class="price-row"><span class="price price-normal"><b class="price-sign">￥</b><b class="price-type">{product.price}</b></span></div>
            <div class="comment-row"><span class="score">{product_score(product):.1f}</span><a href="{(review_links or {}).get(product.product_id) or root_relative(review_list_url(product.product_id))}" class="comment-num">{len(product.reviews)}人点评</a></div>
        </li>""")
    hot_words = "".join(f'<a href="{product_link(p)}">{escape(p.name)}</a>' for p in unranked[:2])
    header = f'<div class="search-box"><input type="text"/><div class="hot-words">{hot_words}</div></div>\n'
    left = _side_links("手机新品", "new-products", [*unranked[2:], *elsewhere[:1]])
    right = _side_links("新增点评产品", "new-reviews", unranked[1:2]) + _side_links(
        "大家说", "people-say", [*elsewhere[1:2], *unranked[:1]]
    )
    return (
        page_head("【手机大全】热门手机排行-ZOL中关村在线")
        + header
        + """<div class="wrapper clearfix">
"""
        + left
        + """    <div class="content">
    <ul id="J_PicMode" class="clearfix">
"""
        + "\n".join(items)
        + """
    </ul>
    <div class="pagebar">"""
        + _pager(page, pages)
        + """</div>
    </div>
"""
        + right
        + """</div>
</body>
</html>
"""
    )


def product_page(product: Product) -> str:
    """The product's overview page (minimal): name, brand and the link to its reviews."""
    reviews = root_relative(review_list_url(product.product_id))
    return (
        page_head(f"【{product.name}】报价_参数_图片_论坛-ZOL中关村在线", product, "Index")
        + breadcrumb(product, "综述介绍")
        + f"""<div class="product-model page-title clearfix">
    <h1 class="product-model__name">{escape(product.name)}</h1>
</div>
<div id="_j_tag_nav" class="nav">
    <ul class="nav__list clearfix">
        <li class="nav__item--active"><span>综述介绍</span></li>
        <li class=""><a href="{reviews}" target="_self">点评<em>({len(product.reviews)})</em></a></li>
    </ul>
</div>
<div class="wrapper"><div class="product-price"><span class="price-type">{product.price}</span></div></div>
</body>
</html>
"""
    )
