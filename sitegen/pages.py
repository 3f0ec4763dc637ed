"""HTML of the offline mirror, after ZOL's 2018 markup (tests/fixtures/zol-2018 and docs/zol-site.md).

Every function returns a `str`; the caller encodes pages as GBK. Tags, classes, nesting, attributes and
text formats (`续航：<em>10</em>`, `发表于：01月10日 11:21`, `348赞`, `1条评论`, `价格：4499元`) follow
the real pages, since the spider is written against those.
"""

from __future__ import annotations

import json
from html import escape

from crawler.urls import long_review_url, product_dir, product_url, ranking_url, review_list_url, short_review_url
from sitegen.plan import Image, Product, Review

LONG_PAGE_LABELS: dict[str, str] = {  # list-page label -> label on the long-review page
    "性价比": "性价比",
    "性能": "性能配置",
    "续航": "电池续航",
    "外观": "外观手感",
    "拍照": "拍照效果",
    "屏幕": "屏幕效果",
}
LONG_PAGE_ORDER: tuple[str, ...] = ("性价比", "性能", "续航", "外观", "拍照", "屏幕")


def _path(url: str) -> str:
    """The site-relative path of an absolute detail.zol.com.cn URL (links on the site are root-relative)."""
    return url.split(".com.cn", 1)[1]


def _score_text(score: float) -> str:
    return str(int(score)) if score == int(score) else f"{score:.1f}"


def _head(title: str, product: Product | None = None, sub_page: str = "Review") -> str:
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


def _breadcrumb(product: Product, last: str) -> str:
    return f"""<div class="wrapper clearfix">
    <div class="breadcrumb">
        <a href="/">ZOL报价首页</a><em>&gt;</em>
        <a href="/cell_phone_index/subcate57_list_1.html">手机</a><em>&gt;</em>
        <a id="_j_breadcrumb" data-subcateid="57" data-manuid="{product.manu_id}" class="breadcrumb__manu"
           href="/cell_phone_index/subcate57_{product.manu_id}_list_1.html">{escape(product.brand)}手机<i class="arrow"></i></a><em>&gt;</em>
        <a href="{_path(_product_url(product))}" target="_self">{escape(product.name)}</a><em>&gt;</em>
        <span>{last}</span>
    </div>
</div>
"""


def _product_url(product: Product) -> str:
    return product_url(product.product_id)


def product_score(product: Product) -> float:
    """The product's score, as its review list and its ranking card show it."""
    return round(sum(r.overall for r in product.reviews) / len(product.reviews), 1)


def _side_links(title: str, css: str, products: list[Product]) -> str:
    links = "".join(f'<li><a href="{_path(_product_url(p))}">{escape(p.name)}</a></li>' for p in products)
    return f'    <div class="{css}"><h3 class="module-title">{title}</h3><ul>{links}</ul></div>\n' if products else ""


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
        href = _path(_product_url(product))
        items.append(f"""        <li data-follow-id="p{product.product_id}" data-rank="{rank}">
            <a class="pic" href="{href}" target="_blank"><img width="220" height="165" alt="{escape(product.name)}" src="//2f.zol-img.com.cn/product/default_220x165.jpg"></a>
            <h3><a href="{href}" title="{escape(product.name)}">{escape(product.name)}</a></h3>
            <div class="price-row"><span class="price price-normal"><b class="price-sign">￥</b><b class="price-type">{product.price}</b></span></div>
            <div class="comment-row"><span class="score">{product_score(product):.1f}</span><a href="{(review_links or {}).get(product.product_id) or _path(review_list_url(product.product_id))}" class="comment-num">{len(product.reviews)}人点评</a></div>
        </li>""")
    hot_words = "".join(f'<a href="{_path(_product_url(p))}">{escape(p.name)}</a>' for p in unranked[:2])
    header = f'<div class="search-box"><input type="text"/><div class="hot-words">{hot_words}</div></div>\n'
    left = _side_links("手机新品", "new-products", [*unranked[2:], *elsewhere[:1]])
    right = _side_links("新增点评产品", "new-reviews", unranked[1:2]) + _side_links(
        "大家说", "people-say", [*elsewhere[1:2], *unranked[:1]]
    )
    pager = [
        f'<span class="sel">{page}</span>' if n == page else f'<a href="{_path(ranking_url(n))}" target="_self">{n}</a>'
        for n in range(1, pages + 1)
    ]
    if page > 1:
        pager.insert(0, f'<a class="prev" href="{_path(ranking_url(page - 1))}" target="_self">上一页</a>')
    if page < pages:
        pager.append(f'<a class="next" href="{_path(ranking_url(page + 1))}" target="_self">下一页</a>')
    return (
        _head("【手机大全】热门手机排行-ZOL中关村在线")
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
        + "".join(pager)
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
    reviews = _path(review_list_url(product.product_id))
    return (
        _head(f"【{product.name}】报价_参数_图片_论坛-ZOL中关村在线", product, "Index")
        + _breadcrumb(product, "综述介绍")
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


def _ref(url: str, image: Image, page_host: str, protocol_relative: bool) -> str:
    """How a page writes an image URL: root-relative when the image asks for it and sits on the page's host,
    else protocol-relative (`//host/...`) or absolute."""
    if image.relative:
        host, path = url.removeprefix("https://").split("/", 1)
        return f"/{path}" if host == page_host else f"//{host}/{path}"
    return url.removeprefix("https:") if protocol_relative else url


def _images_html(review: Review) -> str:
    shown = review.list_images
    if not shown:
        return ""
    rid = review.review_id
    list_host = "detail.zol.com.cn"
    if review.long:  # protocol-relative, first one wide, as on the real page
        lis = []
        for i, image in enumerate(shown):
            url = _ref(image.url, image, list_host, True)
            wide = i == 0
            size, middle = ("t_s608x182c5", "t_s660x495c5") if wide else ("t_s120x90c5", "t_s660x495")
            w, h = ("608", "182") if wide else ("120", "90")
            lis.append(f"""                        <li class="{"first " if wide else ""}bigcursor" action-type="group_zoom_in" action-target="media_slide_box_{rid}"
                            idx="{i}"><img node-type="small"
                                         data-middleurl="{_ref(image.thumbnail(middle), image, list_host, True)}"
                                         data-bigurl="{url}"
                                         width="{w}" height="{h}"
                                         src="{_ref(image.thumbnail(size), image, list_host, True)}"><span
                                class="loading hide"></span></li>""")
        return (
            f'                    <ul class="media-group-haoshuo clearfix" node-type="media_group_prev_{rid}">\n'
            + "\n".join(lis)
            + f"""
                    </ul>
                    <div class="media-expand hide" node-type="media_slide_box_{rid}"></div>
"""
        )
    lis = [
        f"""                            <li class="bigcursor" action-type="group_zoom_in" action-target="media_slide_box_{rid}"
                                idx="{i}"><img node-type="small"
                                             data-middleurl="{_ref(image.thumbnail("t_s660x495"), image, list_host, False)}"
                                             data-bigurl="{_ref(image.url, image, list_host, False)}"
                                             width="120" height="90"
                                             src="{_ref(image.thumbnail("t_s120x90c5"), image, list_host, False)}"><span
                                    class="loading hide"></span></li>"""
        for i, image in enumerate(shown)
    ]
    return (
        f"""                    <div class="media-group" node-type="media_group_prev_{rid}">
                        <ul class="clearfix">
"""
        + "\n".join(lis)
        + f"""
                        </ul>
                    </div>
                    <div class="media-expand hide" node-type="media_slide_box_{rid}"></div>
"""
    )


def _words(css: str, label: str, lines: list[str], long: bool) -> str:
    body = "\n                            ".join(escape(x) for x in lines) if long else escape("，".join(lines) + "。")
    return f"""                    <div class="words">
                        <strong class="{css}">{label}</strong>
                        <p>{body}</p>
                    </div>
"""


def _date_text(review: Review) -> str:
    when = review.published
    if review.date_has_year:
        return f"发表于：{when.year}年{when.month:02d}月{when.day:02d}日 {when.hour:02d}:{when.minute:02d}"
    return f"发表于：{when.month:02d}月{when.day:02d}日 {when.hour:02d}:{when.minute:02d}"


def comments_item(review: Review, ajax_page: int | None = None) -> str:
    """One `div.comments-item`: the same markup in review.shtml and in the AJAX fragment."""
    text, rid, pid = review.text, review.review_id, review.review_product_id
    aid = review.aid or "0"
    user = [
        f'                    <a href="{review.author_url}" class="face"><img width="60" height="60"\n'
        f'                          src="https://icon.zol-img.com.cn/group/default_zoler/zoler_50.jpg"></a>',
        f'                    <a href="{review.author_url}" class="name">{escape(review.author)}</a>',
    ]
    if review.badge:
        user.append(f'                    <div class="tag">{review.badge}</div>')
    if review.purchase:
        user.append("                    <p>购买信息</p>")
        user += [f"                    <p>{line}</p>" for line in review.purchase]
    if review.long:
        href = long_review_url(pid, review.aid).replace("https:", "" if review.protocol_relative_link else "http:")
        icon = '                        <div class="icon-long"><i></i>长篇</div>\n' if review.show_long_icon else ""
    else:
        href = _path(short_review_url(pid, rid)) + "#tagNav"
        icon = ""
    aspects = "".join(f"<span>{label}：<em>{_score_text(score)}</em></span>" for label, score in review.scores)
    overall = review.overall
    words = _words("good", "优点：", text.pros, review.long) + _words("bad", "缺点：", text.cons, review.long)
    if text.summary and not review.long:
        words += _words("summary", "总结：", [text.summary], False)
    if review.long:
        content = (
            words
            + f"""                    <div class="words-article">
                        <p>{escape(text.excerpt)}</p>
                    </div>
                    <div class="view-more"><a href="{href}">查看全文<i
                            class="icon-rarr"></i></a></div>
"""
        )
    else:
        page_attr = f' page="{ajax_page}"' if ajax_page else ""
        content = f"""                    <div class="_j_CommentContent comment-height-limit"{page_attr}>
                        <div class="content-inner">
{words}                        </div>
                        <div class="view-more hide"><a role="view_more_row" data-fold="1" href="javascript:void(0);"
                                                       target="_self">展开全文<i class="icon-darr"></i></a></div>
                    </div>
"""
    handle = f'data-proid="{pid}" data-rid="{rid}" data-aid="{aid}" href="javascript:;" target="_self"\n                           onclick="return false;"'
    return f"""            <div class="comments-item">
                <div class="comments-user">
{chr(10).join(user)}
                </div>
                <div class="comment-list-content">
                    <div class="title">
{icon}                        <a href="{href}">{escape(text.title)}</a></div>

                    <div class="single-score">
                        <div class="score clearfix">
                            <div class="star"><em style="width:{round(overall * 10)}%"></em></div>
                            <span>{overall:.1f}</span>
                        </div>
                        <p>{aspects}
                        </p>
                    </div>
{content}{_images_html(review)}                    <div class="function-handle clearfix">
                        <span class="date">{_date_text(review)}</span>
                        <!--<a href="#" class="share"><i></i>分享</a>-->
                        <a {handle} class="_j_review_vote"><i class="icon-vote"></i>{review.likes}赞</a>
                        <a {handle} class="_j_review_reply"><i class="icon-reply"></i>{review.replies}条评论<i
                                class="icon-r-on"></i></a>
                    </div>
                    <div class="comment-expand hide" node-type="feed_comment_box_{rid}"
                         data-review-id="{rid}"></div>
                </div>
            </div>
"""


def review_list_page(product: Product, embedded: list[Review]) -> str:
    """review.shtml: product info, product-level scores, the first 20 reviews and the 查看更多 link."""
    overall = product_score(product)
    d = product_dir(product.product_id)
    return (
        _head(f"【{product.name}怎么样】{product.name}好不好_好吗-ZOL中关村在线", product)
        + _breadcrumb(product, "点评")
        + f"""<div class="product-model page-title clearfix">
    <h1 class="product-model__name">{escape(product.name)}点评</h1>
</div>
<div id="_j_tag_nav" class="nav">
    <ul class="nav__list clearfix">
        <li class=""><a href="{_path(_product_url(product))}" target="_self">综述介绍</a></li>
        <li class=""><a href="/{d}/{product.product_id}/param.shtml" target="_self">参数</a></li>
        <li class="nav__item--comment nav__item--active"><span><i class="icon"></i>点评<em>({len(product.reviews)})</em></span></li>
    </ul>
</div>
<div class="wrapper">
    <div class="review-comments-score clearfix">
        <div class="total-score">
            <strong>{overall:.1f}</strong>
            <div class="total-score-star">
                <em style="width:{round(overall * 10)}%"></em>
            </div>
            <div class="total-num total-num-tip">
                <span>{len(product.reviews)}人评分<i id="_j_score_notes"></i></span>
            </div>
        </div>
    </div>
</div>
<div class="wrapper clearfix">
    <div class="content">
        <div id="_j_comment_list" class="comments-list">
"""
        + "".join(comments_item(r) for r in embedded)
        + """        </div>
        <div class="view-more-comments">
            <a id="_j_view_more_comments" href="javascript:void(0);" target="_self" data-ajax="">查看更多<i></i></a>
            <span>正在加载中...</span>
        </div>
    </div>
</div>
<script src="//s.zol-img.com.cn/d/Pro/Pro_review_v4.js?v=38373"></script>
</body>
</html>
"""
    )


def ajax_reviews(reviews: list[Review], page: int, is_end: bool) -> str:
    """The AJAX answer: JSON whose `list` is the HTML fragment, escaped as ZOL serves it (`\\uXXXX`, `\\/`)."""
    fragment = "".join(comments_item(r, ajax_page=page) for r in reviews)
    payload = json.dumps({"list": fragment, "isEnd": int(is_end)}, ensure_ascii=True, separators=(",", ":"))
    return payload.replace("/", "\\/")


def long_review_page(product: Product, review: Review) -> str:
    """t.zol.com.cn/57/{proId}/evaluation_{aid}.html: the full 长篇 with every figure."""
    text = review.text
    when = review.published
    labels = dict(review.scores)
    score_items = []
    for short in LONG_PAGE_ORDER:
        if short in labels:
            score_items.append(
                f'                <li><span class="label">{LONG_PAGE_LABELS[short]}</span>'
                f'<span class="score-num">{_score_text(labels[short])}</span></li>'
            )
    for label, score in review.scores:  # labels this page does not rename (unknown ones) keep their text
        if label not in LONG_PAGE_LABELS:
            score_items.append(
                f'                <li><span class="label">{escape(label)}</span>'
                f'<span class="score-num">{_score_text(score)}</span></li>'
            )
    # figures are spread over the sections, in order; leftovers go to the last one
    figures = [
        f'<div class="figure"><img src="{_ref(image.url, image, "t.zol.com.cn", True)}" alt=""></div>'
        for image in review.images
    ]
    sections = text.sections
    per_section = -(-len(figures) // max(1, len(sections) - 1)) if figures else 0
    items = []
    for index, (heading, paragraphs) in enumerate(sections):
        chunk = (
            figures[index * per_section : (index + 1) * per_section]
            if index < len(sections) - 1
            else figures[index * per_section :]
        )
        body = "\n".join(f"                <p>{escape(p)}</p>" for p in paragraphs)
        pics = "".join(f"\n                {f}" for f in chunk)
        # the 2018 markup: the heading one level down, in div.article-header; the text in div.article-content
        items.append(f"""        <div class="article-item">
            <div class="article-header"><h4>{escape(heading)}</h4></div>
            <div class="article-content">
{body}{pics}
            </div>
        </div>""")
    purchase = "".join(f"<p>{line.split('：')[0]}：<em>{line.split('：', 1)[1]}</em></p>" for line in review.purchase)
    merits = "".join(f"<li>{escape(x)}</li>" for x in text.pros)
    faults = "".join(f"<li>{escape(x)}</li>" for x in text.cons)
    return (
        _head(f"{text.title}_{product.name}_ZOL好说", product, "LongReview")
        + f"""<div class="wrapper clearfix">
    <div class="article-header">
        <h1 class="title">{escape(text.title)}</h1>
        <div class="user-info">
            <a href="{review.author_url}" class="avatar"><img src="https://icon.zol-img.com.cn/group/default_zoler/zoler_50.jpg"></a>
            <span class="name">{escape(review.author)}</span>
            <span class="time">{when:%Y-%m-%d %H:%M:%S}</span>
        </div>
        <div class="handle">
            <a href="javascript:;" class="_j_vote" data-aid="{review.aid}"><span class="_j_vote_num">{review.likes}</span>赞</a>
            <div class="discuss-btn">{review.replies}</div>
        </div>
    </div>
    <div class="comments-pro">
        <a href="{review_list_url(product.product_id)}">{escape(product.name)}</a>
        {purchase}
    </div>
    <div class="comments-score">
        <div class="total-score"><strong>{review.overall:.1f}</strong></div>
        <ul class="score-list">
{chr(10).join(score_items)}
        </ul>
    </div>
    <div class="merits-and-faults">
        <div class="merits"><h3>优点</h3><ol>{merits}</ol></div>
        <div class="faults"><h3>缺点</h3><ol>{faults}</ol></div>
    </div>
    <div class="article-box">
{chr(10).join(items)}
    </div>
</div>
</body>
</html>
"""
    )
