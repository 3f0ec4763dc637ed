"""HTML of the offline mirror's 2018 review pages, after ZOL's 2018 markup (tests/fixtures/zol-2018 and
docs/zol-site.md): the review list (review.shtml), the AJAX fragment of its later pages, and the long review
(长篇) page with every figure.

Every function returns a `str`; the caller encodes pages as GBK (the AJAX answer is ASCII JSON). Tags, classes,
nesting, attributes and text formats (`续航：<em>10</em>`, `发表于：01月10日 11:21`, `348赞`, `1条评论`,
`价格：4499元`) follow the real pages, since the spider is written against those.
"""

from __future__ import annotations

import json
from html import escape

from crawler.urls import long_review_url, product_dir, review_list_url, short_review_url
from sitegen.page_frame import breadcrumb, page_head, product_link, product_score, root_relative, score_text
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


def _user_html(review: Review) -> str:
    """The `div.comments-user` lines: avatar, name, the 优质点评人 badge and the purchase info."""
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
    return "\n".join(user)


def _title_link(review: Review) -> tuple[str, str]:
    """(href, icon): a long review links its evaluation page (http: or protocol-relative, as the real list does)
    and mostly shows the 长篇 icon; a short one links its own page."""
    pid = review.review_product_id
    if review.long:
        href = long_review_url(pid, review.aid).replace("https:", "" if review.protocol_relative_link else "http:")
        icon = '                        <div class="icon-long"><i></i>长篇</div>\n' if review.show_long_icon else ""
        return href, icon
    return root_relative(short_review_url(pid, review.review_id)) + "#tagNav", ""


def _content_html(review: Review, href: str, ajax_page: int | None) -> str:
    """The review's words: a long one's merits, faults and excerpt with 查看全文; a short one's 优点/缺点/总结 in
    the folded `div._j_CommentContent` (with `page` inside an AJAX fragment)."""
    text = review.text
    words = _words("good", "优点：", text.pros, review.long) + _words("bad", "缺点：", text.cons, review.long)
    if text.summary and not review.long:
        words += _words("summary", "总结：", [text.summary], False)
    if review.long:
        return (
            words
            + f"""                    <div class="words-article">
                        <p>{escape(text.excerpt)}</p>
                    </div>
                    <div class="view-more"><a href="{href}">查看全文<i
                            class="icon-rarr"></i></a></div>
"""
        )
    page_attr = f' page="{ajax_page}"' if ajax_page else ""
    return f"""                    <div class="_j_CommentContent comment-height-limit"{page_attr}>
                        <div class="content-inner">
{words}                        </div>
                        <div class="view-more hide"><a role="view_more_row" data-fold="1" href="javascript:void(0);"
                                                       target="_self">展开全文<i class="icon-darr"></i></a></div>
                    </div>
"""


def comments_item(review: Review, ajax_page: int | None = None) -> str:
    """One `div.comments-item`: the same markup in review.shtml and in the AJAX fragment."""
    rid, pid, aid = review.review_id, review.review_product_id, review.aid or "0"
    href, icon = _title_link(review)
    aspects = "".join(f"<span>{label}：<em>{score_text(score)}</em></span>" for label, score in review.scores)
    overall = review.overall
    handle = f'data-proid="{pid}" data-rid="{rid}" data-aid="{aid}" href="javascript:;" target="_self"\n                           onclick="return false;"'
    return f"""            <div class="comments-item">
                <div class="comments-user">
{_user_html(review)}
                </div>
                <div class="comment-list-content">
                    <div class="title">
{icon}                        <a href="{href}">{escape(review.text.title)}</a></div>

                    <div class="single-score">
                        <div class="score clearfix">
                            <div class="star"><em style="width:{round(overall * 10)}%"></em></div>
                            <span>{overall:.1f}</span>
                        </div>
                        <p>{aspects}
                        </p>
                    </div>
{_content_html(review, href, ajax_page)}{_images_html(review)}                    <div class="function-handle clearfix">
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
        page_head(f"【{product.name}怎么样】{product.name}好不好_好吗-ZOL中关村在线", product)
        + breadcrumb(product, "点评")
        + f"""<div class="product-model page-title clearfix">
    <h1 class="product-model__name">{escape(product.name)}点评</h1>
</div>
<div id="_j_tag_nav" class="nav">
    <ul class="nav__list clearfix">
        <li class=""><a href="{product_link(product)}" target="_self">综述介绍</a></li>
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


def _long_score_items(review: Review) -> str:
    """The long page's `ul.score-list` items: the known labels renamed and in the page's order, then the labels
    it does not rename (unknown ones) with their own text."""
    labels = dict(review.scores)
    score_items = [
        f'                <li><span class="label">{LONG_PAGE_LABELS[short]}</span>'
        f'<span class="score-num">{score_text(labels[short])}</span></li>'
        for short in LONG_PAGE_ORDER
        if short in labels
    ]
    score_items += [
        f'                <li><span class="label">{escape(label)}</span>'
        f'<span class="score-num">{score_text(score)}</span></li>'
        for label, score in review.scores
        if label not in LONG_PAGE_LABELS
    ]
    return "\n".join(score_items)


def _article_items(review: Review) -> str:
    """The long review's sections, each a `div.article-item`; the figures are spread over the sections in order,
    leftovers to the last one."""
    figures = [
        f'<div class="figure"><img src="{_ref(image.url, image, "t.zol.com.cn", True)}" alt=""></div>'
        for image in review.images
    ]
    sections = review.text.sections
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
    return "\n".join(items)


def long_review_page(product: Product, review: Review) -> str:
    """t.zol.com.cn/57/{proId}/evaluation_{aid}.html: the full 长篇 with every figure."""
    text = review.text
    when = review.published
    purchase = "".join(f"<p>{line.split('：')[0]}：<em>{line.split('：', 1)[1]}</em></p>" for line in review.purchase)
    merits = "".join(f"<li>{escape(x)}</li>" for x in text.pros)
    faults = "".join(f"<li>{escape(x)}</li>" for x in text.cons)
    return (
        page_head(f"{text.title}_{product.name}_ZOL好说", product, "LongReview")
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
{_long_score_items(review)}
        </ul>
    </div>
    <div class="merits-and-faults">
        <div class="merits"><h3>优点</h3><ol>{merits}</ol></div>
        <div class="faults"><h3>缺点</h3><ol>{faults}</ol></div>
    </div>
    <div class="article-box">
{_article_items(review)}
    </div>
</div>
</body>
</html>
"""
    )
