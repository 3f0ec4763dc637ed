"""The real 2026 review page (GBK bytes as served) parsed by the spider's own callback, with exact values: both
formats of today's site (5 scored, 15 short), the star bar as the overall score, the declared count from the filter
tab, original image URLs from the crops; and the pure helpers that tell a refusal from a page."""

from __future__ import annotations

import html as html_entities
import re
from datetime import date

import pytest
from crawl_support import FIXTURES, FIXTURES_2026
from hypothesis import given
from hypothesis import strategies as st
from parsel import Selector
from scrapy import Request
from scrapy.http import HtmlResponse, Response
from scrapy.utils.test import get_crawler

from crawler.blocking import blocked_kind
from crawler.coverage import coverage_drift, field_coverage
from crawler.items import ReviewItem
from crawler.parse_list import (
    ListedReview,
    Product,
    declared_rating_count,
    parse_review,
    review_nodes,
)
from crawler.parse_ranking import RankedProduct
from crawler.parse_text import original_image_url
from crawler.spiders.zol import ZolSpider
from crawler.urls import ajax_review_url, review_list_url

PRODUCT = "1427365"
NAME = "苹果iPhone 15（128GB）"  # h1.product-model__name
ASPECTS = ("battery", "camera", "performance", "appearance", "price_performance")  # the page's order
PAGE_BYTES = (FIXTURES_2026 / "review.shtml").read_bytes()

# review_id, author, star width (%), aspect scores in page order (None = short format), published, likes, replies,
# images, pros, cons -- read off the page by eye
ROWS = [
    ("10762050", "456ssd", 96, (10, 10, 10, 10, 8), "2022-09-17T02:00:00", 6, 0, 0, "性价比", "1电池续航"),
    (
        "11861211",
        "1rakic",
        64,
        (4, 8, 6, 8, 6),
        "2023-08-31T09:30:00",
        1,
        0,
        0,
        "每年都是挤牙膏  现在爆料的消息 也没有多大的变化",
        "每年都是挤牙膏  现在爆料的消息 也没有多大的变化",
    ),
    (
        "12317803",
        "nfzo6a",
        100,
        (10, 10, 10, 10, 10),
        "2023-11-05T01:23:00",
        0,
        0,
        3,
        "性价比，性能配置，电池续航，外观手感，拍照效果，屏幕效果，其他",
        "有点小贵",
    ),
    (
        "11867175",
        "w2xw0y",
        68,
        (8, 8, 10, 6, 2),
        "2023-09-08T08:28:00",
        0,
        0,
        0,
        "性能配置，拍照效果，屏幕效果",
        "信号！信号！信号！",
    ),
    (
        "14866318",
        "jiangjialin123",
        96,
        (8, 10, 10, 10, 10),
        "2024-05-12T05:32:00",
        0,
        0,
        0,
        "性价比高，性能配置相当好，电池续航一般，外观手感相当好，拍照效果不错",
        "信号有待加强。",
    ),
    ("11867548", "怀无涯", 40, None, "2023-09-12T08:37:00", 7, 5, 0, None, None),
    ("11199740", "fdc29t", 60, None, "2023-02-10T05:50:00", 3, 1, 0, None, None),
    ("11701301", "Pocket", 100, None, "2023-03-28T01:08:00", 2, 0, 0, None, None),
    ("11866731", "苦行僧_120", 20, None, "2023-09-05T06:59:00", 7, 9, 0, None, None),
    ("11868381", "hbh43u", 60, None, "2023-09-16T10:20:00", 0, 0, 0, None, None),
    ("11867566", "weixin_v5xtbe", 20, None, "2023-09-13T07:06:00", 3, 0, 0, None, None),
    ("12167832", "逆天OL犬儿4全甲", 20, None, "2023-10-19T01:34:00", 1, 0, 0, None, None),
    ("11867604", "驯犬师", 100, None, "2023-09-13T03:23:00", 1, 2, 0, None, None),
    ("11860695", "songshuhong8888", 100, None, "2023-08-26T02:59:00", 0, 0, 0, None, None),
    ("18254275", "e1sr30", 100, None, "2024-07-16T09:38:00", 0, 0, 0, None, None),
    ("11862375", "qucqui", 100, None, "2023-09-01T05:22:00", 0, 0, 0, None, None),
    ("11827618", "l20bdw", 100, None, "2023-06-28T02:10:00", 0, 1, 0, None, None),
    ("12274334", "空自忆", 80, None, "2023-11-03T02:38:00", 0, 0, 0, None, None),
    ("11803158", "影魅", 100, None, "2023-05-10T03:26:00", 1, 7, 0, None, None),
    ("12386704", "凭栏听雨", 100, None, "2023-11-14T08:17:00", 0, 0, 0, None, None),
]


def _visible_texts() -> dict[str, str]:
    """Each short review's text as a reader sees it, cut out of the raw page without any selector: the `<p>` of its
    `words-article`, `<br/>` as a line break, entities decoded, lines stripped, blank lines dropped."""
    html = PAGE_BYTES.decode("gb18030")
    texts = {}
    for chunk in html.split('<div class="comments-item">')[1:]:
        review_id = re.search(r'data-rid="(\d+)"', chunk).group(1)
        article = re.search(r'<div class="words-article">\s*<p>(.*?)</p>', chunk, re.DOTALL)
        if article:
            lines = html_entities.unescape(re.sub(r"<br\s*/?>", "\n", article.group(1))).split("\n")
            texts[review_id] = "\n".join(line.strip() for line in lines if line.strip())
    return texts


def _listed(outputs) -> dict[str, ListedReview]:
    return {out.review_id: ListedReview(out, None, ()) for out in outputs if isinstance(out, ReviewItem)}


@pytest.fixture(scope="module")
def page_2026():
    crawler = get_crawler(ZolSpider)
    spider = ZolSpider.from_crawler(crawler, crawl_date="2026-06-24")
    crawler.spider = spider
    url = review_list_url(PRODUCT)
    ranked = RankedProduct(PRODUCT, None, None, None, url)
    response = HtmlResponse(url, body=PAGE_BYTES, request=Request(url, meta={"ranked": ranked, "rank": None}))
    outputs = list(spider.parse_review_list(response))
    return spider, outputs, _listed(outputs)


def test_all_20_reviews_in_page_order_with_their_formats(page_2026):
    spider, outputs, listed = page_2026
    assert list(listed) == [row[0] for row in ROWS]
    layouts = [review.item.layout for review in listed.values()]
    assert layouts.count("2026-scored") == 5 and layouts.count("2026-short") == 15
    stats = spider.crawler.stats
    assert stats.get_value("zol/layouts/2026-scored") == 5 and stats.get_value("zol/layouts/2026-short") == 15
    assert stats.get_value("zol/reviews/without_scores") == 15
    assert not {k for k in stats.get_stats() if k.startswith("zol/layout/")}  # no drift: not declared_count_missing
    assert spider.tallies[PRODUCT].declared == 9885
    ajax = [o for o in outputs if isinstance(o, Request) and o.meta.get("zol_kind") == "ajax"]
    assert [r.url for r in ajax] == [ajax_review_url(PRODUCT, 3, "2018")]


def test_declared_count_from_the_filter_tab():
    assert declared_rating_count(Selector(text=PAGE_BYTES.decode("gb18030"))) == 9885


@pytest.mark.parametrize("row", ROWS, ids=[row[0] for row in ROWS])
def test_review(page_2026, row):
    review_id, author, width, scores, published, likes, replies, n_images, pros, cons = row
    item = page_2026[2][review_id].item
    assert (item.product_id, item.product_name, item.brand) == (PRODUCT, NAME, "苹果")
    assert (item.author, item.published, item.likes, item.replies) == (author, published, likes, replies)
    assert item.overall_score == width / 10  # the star bar on the 10-point scale of 2018's number
    assert len(item.image_urls) == n_images
    assert item.url == f"https://detail.zol.com.cn/1428/1427365/review_0_0_{review_id}_1.shtml"
    if scores is None:
        assert item.layout == "2026-short" and item.scores == {}
        assert item.body == _visible_texts()[review_id] and item.body
        assert (item.title, item.pros, item.cons, item.summary) == (None, None, None, None)
    else:
        assert item.layout == "2026-scored"
        assert item.scores == dict(zip(ASPECTS, map(float, scores), strict=False))
        assert (item.pros, item.cons, item.summary, item.body) == (pros, cons, None, None)
        assert item.title  # `div.title > a`, as in 2018
        assert item.overall_score == pytest.approx(sum(scores) / len(scores))  # width = 10 x the mean, exactly


def test_visible_text_of_a_multi_line_short_review(page_2026):
    body = page_2026[2]["11868381"].item.body
    assert body.startswith("15首发已入手几天了，说一下这几天的使用感受吧\n1、续航中规中矩")
    assert len(_visible_texts()) == 15


def test_image_crops_become_original_urls(page_2026):
    item = page_2026[2]["12317803"].item
    names = [
        "ChMkLGVGfbOIJaXSAAXv9ulyl4wAAWuKgIYxYYABfAO941.jpg",
        "ChMkK2VGfbSIMBoBAAREThiCttQAAWuKgIn3WAABERm234.jpg",
        "ChMkK2VGfbSISl2EAAkntAzOa-gAAWuKgIetZQACSfM781.jpg",
    ]
    assert item.image_urls == [f"https://pro-fd.zol-img.com.cn/g7/M00/0B/0F/{name}" for name in names]
    assert item.image_crops == {
        f"https://pro-fd.zol-img.com.cn/g7/M00/0B/0F/{name}": f"https://pro-fd.zol-img.com.cn/t_s400x300c/g7/M00/0B/0F/{name}"
        for name in names
    }


@pytest.mark.parametrize(
    "big, expected",
    [
        ("//pro-fd.zol-img.com.cn/t_s400x300c/g7/M00/0B/0F/a.jpg", "https://pro-fd.zol-img.com.cn/g7/M00/0B/0F/a.jpg"),
        ("//pro-fd.zol-img.com.cn/g5/M00/01/04/b.jpg", "https://pro-fd.zol-img.com.cn/g5/M00/01/04/b.jpg"),  # 2018
        ("https://pro-fd.zol-img.com.cn/t_s1200x900/g7/c.png", "https://pro-fd.zol-img.com.cn/g7/c.png"),
    ],
)
def test_original_image_url(big, expected):
    assert original_image_url("https://detail.zol.com.cn/1428/1427365/review.shtml", big) == expected


def test_field_coverage_of_the_page_passes_and_losing_the_short_texts_does_not(page_2026):
    records = [{**vars(review.item), "published": review.item.published} for review in page_2026[2].values()]
    coverage = field_coverage(records)
    assert coverage["2026-short"] == {
        "text": 1.0,
        "scores": 0.0,
        "overall": 1.0,
        "images": 0.0,
        "author": 1.0,
        "date": 1.0,
    }
    assert coverage["2026-scored"]["scores"] == 1.0 and coverage["2026-scored"]["images"] == 0.2
    assert coverage_drift(coverage, 0.9) == []
    lost_text = [{**r, "body": None} if r["layout"] == "2026-short" else r for r in records]
    assert coverage_drift(field_coverage(lost_text), 0.9) == ["2026-short.text 0.00"]


# ---- refusals are not pages ----------------------------------------------------------------------------------
def _response(body: bytes, status: int = 200, url: str = "https://detail.zol.com.cn/1428/1427365/review.shtml"):
    return Response(url, status=status, body=body)


@pytest.mark.parametrize(
    "kind, body",
    [
        ("review_list", PAGE_BYTES),
        ("review_list", (FIXTURES / "review.shtml").read_bytes()),
        ("ajax", b'{"list":"","isEnd":1}'),
    ],
)
def test_real_pages_are_not_refusals(kind, body):
    assert blocked_kind(kind, _response(body)) is None


@pytest.mark.parametrize(
    "kind, body, status, expected",
    [
        (
            "review_list",
            "<html><head><title>您正在进行防刷验证...</title></head><body></body></html>".encode("gbk"),
            200,
            "verification",
        ),
        ("ranking", "<html><head><title>您正在进行防刷验证</title></head></html>".encode(), 200, "verification"),
        ("review_list", b"<html><head><script>location.reload()</script></head></html>", 200, "stub"),
        ("long", b"", 200, "stub"),
        ("ajax", b"<html>not found</html>", 200, None),  # a form that does not answer, not a refusal
        ("ajax", "<title>您正在进行防刷验证</title>".encode("gbk"), 200, "verification"),
        ("long", b"forbidden", 403, "http_403"),
        ("review_list", b"", 429, "http_429"),
        ("image", b"", 200, None),  # images are judged by the image pipeline (not_an_image)
        ("review_list", b"", 404, None),  # a missing page is a 404, not a refusal
    ],
)
def test_refusals(kind, body, status, expected):
    assert blocked_kind(kind, _response(body, status)) == expected


# ---- whatever the markup, the review parser answers with a review or None (counted by the spider) ---------------
_SNIPPETS = st.sampled_from(
    [
        '<a class="_j_review_vote" data-rid="{n}" data-proid="{n}" data-aid="{n}">{n}赞</a>',
        '<div class="star"><em style="width:{n}%"></em></div>',
        '<p class="good-score"><span>续航：<em>{n}</em></span></p>',
        '<div class="words-article"><p>{t}</p></div>',
        '<div class="words"><strong class="good">最满意</strong><p>{t}</p></div>',
        '<img data-bigurl="//pro-fd.zol-img.com.cn/t_s{n}x{n}c/g7/{t}.jpg">',
        '<img data-bigurl="{t}" src="{t}">',
        '<div class="title"><a href="/57/{n}/evaluation_{n}.html">{t}</a></div>',
        '<span class="date">发表于：{t}</span>',
        '<div class="single-score"><div class="score"><span>{t}</span></div></div>',
        '<a class="name">{t}</a>',
        "{t}",
    ]
)


@st.composite
def review_markup(draw) -> str:
    parts = draw(st.lists(_SNIPPETS, max_size=8))
    filled = [p.format(n=draw(st.integers(-5, 10**12)), t=draw(st.text(max_size=20))) for p in parts]
    return '<div class="comments-item">' + "".join(filled) + "</div>"


@given(
    st.one_of(
        review_markup(),
        st.text(max_size=200),
        st.binary(max_size=200).map(lambda b: b.decode("gb18030", errors="replace")),
    )
)
def test_any_markup_gives_a_review_or_none(markup):
    page = Selector(text=markup or " ")
    nodes = review_nodes(page) or [page]
    for node in nodes:
        listed = parse_review(node, Product(PRODUCT, NAME, "苹果"), date(2026, 6, 24), review_list_url(PRODUCT))
        assert listed is None or (listed.item.review_id and listed.item.layout in ("2018", "2026-scored", "2026-short"))
        if listed is not None:
            assert listed.item.overall_score is None or listed.item.overall_score >= 0


# ---- the params that help against blocking reach Scrapy ----------------------------------------------------------
def test_crawl_params_become_settings():
    from common.errors import UserError
    from crawler.params import read_crawl_params

    params = read_crawl_params(
        {
            "user_agent": "zol-mimn/0.1 (+research crawler)",
            "referer": "https://detail.zol.com.cn/",
            "download_delay": 4,
            "min_field_coverage": 0.8,
            "fail_on_layout_drift": False,
        }
    )
    assert params.scrapy_settings() == [
        "DOWNLOAD_DELAY=4.0",
        "ZOL_MIN_FIELD_COVERAGE=0.8",
        "ZOL_FAIL_ON_LAYOUT_DRIFT=0",
        "USER_AGENT=zol-mimn/0.1 (+research crawler)",
        "ZOL_REFERER=https://detail.zol.com.cn/",
    ]
    assert params.scrapy_settings("redis")[0] == "ZOL_REDIS_HOST_DELAY=4.0"  # a shared crawl's delay is crawl-wide
    for bad in ({"download_delay": -1}, {"min_field_coverage": 1.5}, {"fail_on_layout_drift": "yes"}):
        with pytest.raises(UserError, match="params.yaml: 'crawl."):
            read_crawl_params(bad)


# ---- the AJAX forms: tried in order, the one that answers kept -------------------------------------------------
def _ajax_spider():
    from crawler.tally import ProductTally

    crawler = get_crawler(ZolSpider)
    spider = ZolSpider.from_crawler(crawler, crawl_date="2018-09-15")
    crawler.spider = spider
    tally = spider.tallies["1184692"] = ProductTally(Product("1184692", None, None), 89, 20)
    return spider, tally


def _first_request(spider, form: str = "2018"):
    return spider._ajax_request(spider.tallies["1184692"], 3, form)


def _fail(spider, request, status: int) -> list:
    """The errback as Scrapy calls it for an HTTP error answer to `request`."""
    from scrapy.spidermiddlewares.httperror import HttpError
    from twisted.python.failure import Failure

    failure = Failure(HttpError(Response(request.url, status=status, request=request)))
    failure.request = request
    return list(spider.page_failed(failure))


def _answer(spider, request, html: str) -> list:
    import json

    body = json.dumps({"list": html}).encode("ascii")
    from scrapy.http import TextResponse

    return list(spider.parse_ajax(TextResponse(request.url, body=body, request=request, encoding="utf-8")))


def _next_ajax(outputs) -> list:
    return [o for o in outputs if isinstance(o, Request) and o.meta.get("zol_kind") == "ajax"]


def test_a_404_in_the_first_form_asks_the_next_form_which_is_then_kept():
    spider, tally = _ajax_spider()
    [retry] = _next_ajax(_fail(spider, _first_request(spider), 404))
    assert retry.url == ajax_review_url("1184692", 3, "2019")
    fragment = (FIXTURES / "xhr4_review_list_page3.html").read_bytes().decode("gbk")
    outputs = _answer(spider, retry, fragment)
    assert len([o for o in outputs if isinstance(o, ReviewItem)]) == 10 and spider.ajax_form == "2019"
    [page_4] = _next_ajax(outputs)
    assert page_4.url == ajax_review_url("1184692", 4, "2019")
    # the 2019 form's end: an empty list holding div.empty-comment
    assert _next_ajax(_answer(spider, page_4, '<div class="empty-comment">暂无点评</div>')) == []
    stats = spider.crawler.stats
    assert (stats.get_value("zol/ajax/2018/missing"), stats.get_value("zol/ajax/2019/answered")) == (1, 2)
    assert stats.get_value("zol/pages/ajax_empty_last") == 1 and stats.get_value("zol/lost/ajax_page_failed") is None
    assert spider._ajax_request(tally, 5).url == ajax_review_url("1184692", 5, "2019")  # the crawl keeps to it


def test_pages_no_form_answers_are_counted_then_the_product_gives_up():
    spider, tally = _ajax_spider()
    tally.read = 20
    request, asked = _first_request(spider), []
    while request is not None:
        asked.append(request.url)
        following = _next_ajax(_fail(spider, request, 404))
        request = following[0] if following else None
    assert asked == [ajax_review_url("1184692", page, form) for page in (3, 4) for form in ("2018", "2019")]
    stats = spider.crawler.stats
    assert stats.get_value("zol/lost/ajax_page_failed") == 10 and stats.get_value("zol/lost/ajax_unavailable") == 59
    assert stats.get_value("zol/ajax/unavailable") == 1 and tally.done and spider.crawl_failure is None


def test_a_product_the_crawl_form_does_not_answer_is_asked_in_the_other_and_keeps_to_it():
    """A mixed site: the crawl's form (2019, from 2026 products) 404s for a 2018 product, whose pages answer in
    2018's form: that page and the product's next pages are asked there, and nothing is lost."""
    spider, tally = _ajax_spider()
    spider.ajax_form = "2019"
    first = _first_request(spider, None)
    assert first.url == ajax_review_url("1184692", 3, "2019")
    [retry] = _next_ajax(_fail(spider, first, 404))
    assert retry.url == ajax_review_url("1184692", 3, "2018")
    fragment = (FIXTURES / "xhr4_review_list_page3.html").read_bytes().decode("gbk")
    [page_4] = _next_ajax(_answer(spider, retry, fragment))
    assert page_4.url == ajax_review_url("1184692", 4, "2018") and spider.ajax_form == "2019"
    assert spider.crawler.stats.get_value("zol/lost/ajax_page_failed") is None
