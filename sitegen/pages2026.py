"""HTML of the offline mirror's 2026 pages, after the real review list of June 2026 (docs/zol-site.md, "The site
in 2026"): the declared count in the filter tab, scored and short reviews side by side, star bars instead of a
number, `data-bigurl` crops, years on every date, and the 2019 AJAX form whose end is a `div.empty-comment`.

Every function returns a `str`; the caller encodes pages as GBK (the AJAX answer is ASCII JSON).
"""

from __future__ import annotations

import json
from html import escape

from crawler.urls import product_dir, redirecting_review_list_url, short_review_url
from sitegen.era2026 import LAYOUT_SCORED
from sitegen.page_frame import breadcrumb, page_head, product_link, product_score, root_relative, score_text
from sitegen.plan import Image, Product, Review

CROP = "t_s400x300c"  # data-bigurl: a 400x300 crop of the original
MIDDLE, SMALL = "t_s660x660c", "t_s120x90c5c"
EMPTY_COMMENT = '<div class="empty-comment"><p>暂无点评</p></div>'


def sized(image: Image, size: str) -> str:
    """`https://pro-fd.zol-img.com.cn/g7/...` -> `https://pro-fd.zol-img.com.cn/{size}/g7/...`."""
    return image.url.replace("zol-img.com.cn/", f"zol-img.com.cn/{size}/", 1)


def _stars(review: Review) -> str:
    return f'<div class="star"><em style="width:{round(review.overall * 10)}%"></em></div>'


def _images(review: Review) -> str:
    if not review.images:
        return ""
    rid = review.review_id
    lis = "".join(
        f'<li class="bigcursor" action-target="media_slide_box_{rid}" idx="{i}"><img node-type="small" '
        f'data-middleurl="{sized(image, MIDDLE).removeprefix("https:")}" '
        f'data-bigurl="{sized(image, CROP).removeprefix("https:")}" width="120" height="90" '
        f'src="{sized(image, SMALL).removeprefix("https:")}"><span class="loading hide"></span></li>\n'
        for i, image in enumerate(review.images)
    )
    return f"""                    <div class="media-group" node-type="media_group_prev_{rid}">
                        <ul class="clearfix">
{lis}                        </ul>
                    </div>
                    <div class="media-expand hide clearfix" node-type="media_slide_box_{rid}">
                        <div class="media-expand-pic" data-rotation="0"></div>
                    </div>
"""


def _user(review: Review) -> str:
    url = review.author_url
    lines = [
        f'                <a href="{url}" class="face" ><img width="60" height="60" '
        f'src="https://icon.zol-img.com.cn/group/default_zoler/zoler_50.jpg"></a>',
        f'                <a href="{url}" class="name" >{escape(review.author)}</a>',
    ]
    if review.purchase:
        info = "".join(f"<p>{line}</p>" for line in review.purchase)
        lines.append(f'                <div class="msg"><p>购买信息</p>{info}</div>')
    return "\n".join(lines)


def scored_words(review: Review) -> tuple[str, str]:
    """(最满意, 最不满意) of a scored 2026 review, each one paragraph."""
    return "，".join(review.text.pros), "，".join(review.text.cons)


def _content(review: Review) -> str:
    if review.layout != LAYOUT_SCORED:
        return f"""                    <div class="words-article">
                        <p>{escape(review.short_text)}</p>
                    </div>
"""
    good, bad = scored_words(review)
    return f"""                    <div class="_j_CommentContent comment-height-limit">
                        <div class="content-inner">
                            <div class="words">
                                <strong class="good">最满意</strong>
                                <p>{escape(good)}</p>
                            </div>
                            <div class="words">
                                <strong class="bad">最不满意</strong>
                                <p>{escape(bad)}</p>
                            </div>
                        </div>
                        <div class="view-more hide"><a role="view_more_row" data-fold="1" href="javascript:void(0);" target="_self" >展开全文<i class="icon-darr"></i></a></div>
                    </div>
"""


def comments_item(review: Review) -> str:
    """One 2026 `div.comments-item`, scored or short: the same markup in review.shtml and in the AJAX answer."""
    rid, pid, when = review.review_id, review.product_id, review.published
    title, aspects = "", ""
    if review.layout == LAYOUT_SCORED:
        href = root_relative(short_review_url(pid, rid)) + "#tagNav"
        title = f'                    <div class="title">\n                        <a href="{href}">{escape(review.text.title)}</a></div>\n'
        aspects = "".join(f"<span>{label}：<em>{score_text(score)}</em></span>" for label, score in review.scores)
    handle = (
        f'data-proid="{pid}" data-rid="{rid}" data-aid="0" href="javascript:;" target="_self" onclick="return false;"'
    )
    likes = f"{review.likes}赞" if review.likes else "赞"
    replies = f"{review.replies}条评论" if review.replies else "评论"
    return f"""            <div class="comments-item">
            <div class="comments-user">
{_user(review)}
            </div>
            <div class="comment-list-content">
{title}                <div class="single-score">
                    <div class="score clearfix">
                        {_stars(review)}
                        <p class="good-score">{aspects}</p>
                    </div>
                </div>
{_content(review)}{_images(review)}                <div class="function-handle clearfix">
                    <span class="date" data-cg-id="0" data-cg-dept="" data-comment-type="0">发表于：{when.year}年{when.month:02d}月{when.day:02d}日 {when.hour:02d}:{when.minute:02d}</span>
                    <!--<a href="#" class="share"><i></i>分享</a>-->
                    <a  {handle} class="_j_review_vote"><i class="icon-vote"></i>{likes}</a>
                    <a  {handle} class="_j_review_reply"><i class="icon-reply"></i>{replies}<i class="icon-r-on"></i></a>
                </div>
                <div class="comment-expand hide" node-type="feed_comment_box_{rid}" data-review-id="{rid}"></div>
            </div>
        </div>
"""


def _aspect_circles(product: Product) -> str:
    """The product's mean score per aspect over its scored reviews (the circles above the list)."""
    circles = []
    for label in ("性价比", "性能", "续航", "外观", "拍照"):
        values = [score for r in product.reviews for lab, score in r.scores if lab == label]
        if values:
            mean = sum(values) / len(values)
            circles.append(
                f'            <div class="features-circle"><canvas class="_j_canvas_circle circle-rate" '
                f'width="84" height="84" process="{round(mean * 10)}%"></canvas><div class="circle-value">'
                f'{mean:.1f}</div><div class="circle-text">{label}</div></div>'
            )
    return "\n".join(circles)


def review_list_page(product: Product, embedded: list[Review]) -> str:
    """review.shtml of 2026: product scores, the 产品点评(N) tab, the first 20 reviews and the 查看更多 link."""
    overall, count = product_score(product), len(product.reviews)
    d = product_dir(product.product_id)
    return (
        page_head(f"【{product.name}怎么样】{product.name}好不好_好吗-ZOL中关村在线", product)
        + breadcrumb(product, "点评")
        + f"""<div class="product-model page-title clearfix">
    <h1 class="product-model__name">{escape(product.name)}点评</h1>
</div>
<div id="_j_tag_nav" class="nav">
    <ul class="nav__list clearfix">
        <li class=""><a  href="{product_link(product)}"  target="_self">综述介绍</a></li>
        <li class=""><a  href="/{d}/{product.product_id}/param.shtml"  target="_self">参数</a></li>
        <li class="nav__item--comment nav__item--active"><span><i class="icon"></i>点评<em>({count})</em></span></li>
    </ul>
</div>
<div class="wrapper clearfix">
    <div class="content">
        <div class="review-comments-score new-review-comments">
    <div class="total-bd clearfix">
        <div class="total-score">
            <strong>{overall:.1f}</strong>
            <div class="total-score-star"><em style="width:{round(overall * 10)}%"></em></div>
            <i class="score-icon">综合得分</i>
        </div>
        <div class="features-score features-score-5 ">
{_aspect_circles(product)}
        </div>
    </div>
        </div>
        <div class="tabs-box">
    <div id="_j_filter_tabs_bar">
        <ul class="_j_filter_tab comment-tabs clearfix">
            <li class="current empty" data-level="0">产品点评({count})<i></i></li>
            <li class=" empty" data-level="1">有图<i></i></li>
            <li class="" data-level="5">有视频<i></i></li>
        </ul>
    </div>
        </div>
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
</body>
</html>
"""
    )


def ajax_reviews_2019(reviews: list[Review]) -> str:
    """The 2019 form's answer: JSON whose `list` is the fragment (no `isEnd`); past the last review, a
    `div.empty-comment`. Escaped as ZOL serves JSON (`\\uXXXX`, `\\/`)."""
    fragment = "".join(comments_item(r) for r in reviews) if reviews else EMPTY_COMMENT
    return json.dumps({"list": fragment}, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/")


def unfiled_review_list_link(product: Product) -> str:
    """A ranking card's site-relative link to `/0/{proId}/review.shtml` (redirected to the review list)."""
    return root_relative(redirecting_review_list_url(product.product_id))
