"""The real 2018 pages (GBK bytes as served) parsed by the spider's own callbacks, with exact values."""

from __future__ import annotations

import json
from datetime import date

import pytest
from crawl_support import FIXTURES, _long_page
from parsel import Selector
from scrapy import Request
from scrapy.http import HtmlResponse
from scrapy.utils.test import get_crawler

from crawler.items import ReviewItem
from crawler.mirror import mirror_relative_path
from crawler.output import image_file_name
from crawler.parse_list import ListedReview, Product, parse_review, review_nodes
from crawler.parse_long import parse_long_review
from crawler.parse_ranking import RankedProduct
from crawler.parse_text import parse_date
from crawler.spiders.zol import ZolSpider
from crawler.tally import ProductTally
from crawler.urls import ajax_review_url, review_list_url

PRODUCT = "1184692"
NAME = "华为Mate 10（6GB RAM/全网通）"
ASPECTS = ("battery", "camera", "performance", "appearance", "price_performance")  # the page's order


def _spider() -> ZolSpider:
    crawler = get_crawler(ZolSpider)
    spider = ZolSpider.from_crawler(crawler, crawl_date="2018-09-15")
    crawler.spider = spider
    return spider


def _listed(outputs) -> dict[str, ListedReview]:
    """Reviews out of a callback: short ones as items, long ones inside the request for their long page."""
    found: dict[str, ListedReview] = {}
    for out in outputs:
        if isinstance(out, ReviewItem):
            found[out.review_id] = ListedReview(out, None, ())
        elif isinstance(out, Request) and "listed" in out.meta:
            found[out.meta["listed"].item.review_id] = out.meta["listed"]
    return found


@pytest.fixture(scope="module")
def list_page():
    spider = _spider()
    url = review_list_url(PRODUCT)
    ranked = RankedProduct(PRODUCT, None, None, None, url)
    response = HtmlResponse(
        url, body=(FIXTURES / "review.shtml").read_bytes(), request=Request(url, meta={"ranked": ranked, "rank": None})
    )
    outputs = list(spider.parse_review_list(response))
    return spider, outputs, _listed(outputs)


@pytest.fixture(scope="module")
def ajax_page():
    spider = _spider()
    fragment = (FIXTURES / "xhr4_review_list_page3.html").read_bytes().decode("gbk")
    body = json.dumps({"list": fragment, "isEnd": 0}).replace("/", "\\/").encode("ascii")
    url = ajax_review_url(PRODUCT, 3)
    spider.tallies[PRODUCT] = ProductTally(Product(PRODUCT, NAME, "华为"), 89, 20)
    response = HtmlResponse(url, body=body, request=Request(url, meta={"product_id": PRODUCT, "page": 3}))
    outputs = list(spider.parse_ajax(response))
    return spider, outputs, _listed(outputs)


# review_id, long-review aid (None = short), overall, scores in page order, likes, replies, images, published
LIST_PAGE = [
    ("1675433", "1364", 9.2, (10, 10, 8, 10, 8), 348, 1, 1, "2018-01-10T11:21:00"),
    ("1675216", "1303", 7.6, (10, 8, 8, 6, 6), 339, 2, 3, "2018-01-08T02:18:00"),
    ("1673139", "990", 7.2, (8, 8, 8, 6, 6), 307, 1, 3, "2017-12-25T03:35:00"),
    ("1675181", "1286", 7.2, (8, 8, 8, 6, 6), 328, 3, 3, "2018-01-08T09:53:00"),
    ("1675312", "1331", 6.4, (8, 8, 6, 4, 6), 315, 2, 3, "2018-01-09T11:06:00"),
    ("1664937", "554", 8.4, (8, 10, 8, 8, 8), 347, 6, 1, "2017-11-12T11:00:00"),
    ("1671190", "788", 8.4, (8, 10, 10, 8, 6), 332, 1, 3, "2017-12-14T05:27:00"),
    ("1673323", "1007", 10.0, (10, 10, 10, 10, 10), 330, 2, 1, "2017-12-26T11:31:00"),
    ("1676826", "1697", 8.0, (10, 8, 6, 8, 8), 328, 1, 3, "2018-01-22T07:00:00"),
    ("1671833", "859", 8.4, (8, 8, 10, 8, 8), 313, 1, 3, "2017-12-18T08:34:00"),
    ("1671596", "837", 6.0, (8, 6, 4, 6, 6), 313, 2, 3, "2017-12-17T03:42:00"),
    ("1671812", "848", 9.6, (10, 10, 8, 10, 10), 304, 2, 3, "2017-12-18T06:25:00"),
    ("1677243", "1762", 9.6, (10, 10, 10, 10, 8), 302, 1, 3, "2018-01-26T03:10:00"),
    ("1671594", "836", 6.4, (6, 6, 6, 8, 6), 37, 0, 3, "2017-12-17T03:40:00"),  # bare 评论 = 0 replies
    ("1661315", "503", 8.8, (10, 6, 10, 10, 8), 5, 3, 1, "2017-10-30T02:08:00"),
    ("1666561", "589", 8.8, (10, 10, 8, 10, 6), 4, 2, 1, "2017-11-20T12:14:00"),
    ("1671768", "843", 8.4, (8, 8, 8, 10, 8), 1, 2, 1, "2017-12-18T03:36:00"),
    ("1675426", None, 8.1, (8.2, 8.7, 6.4, 8.5, 8.5), 297, 3, 0, "2018-01-10T10:55:00"),
    ("1649732", None, 10.0, (10, 10, 10, 10, 10), 1510, 21, 2, "2017-10-01T04:18:00"),
    ("1569741", None, 10.0, (10, 10, 10, 10, 10), 704, 36, 0, "2017-03-23T04:41:00"),
]
AJAX_PAGE = [
    ("1569741", None, 10.0, (10, 10, 10, 10, 10), 705, 36, 0, "2017-03-23T04:41:00"),
    ("1661065", None, 8.8, (10, 10, 8, 8, 8), 403, 4, 1, "2017-10-29T08:45:00"),
    ("1655227", None, 7.2, (10, 10, 4, 10, 2), 388, 14, 0, "2017-10-17T09:57:00"),
    ("1604132", None, 7.2, (6, 6, 8, 6, 10), 355, 6, 0, "2017-06-04T12:15:00"),
    ("1631477", None, 8.4, (8, 8, 10, 10, 6), 291, 4, 0, "2017-08-11T11:29:00"),
    ("1669464", None, 7.2, (8, 4, 10, 8, 6), 267, 26, 4, "2017-12-03T11:15:00"),
    ("1620422", None, 9.6, (10, 10, 10, 8, 10), 248, 5, 0, "2017-07-12T03:40:00"),
    ("1611404", None, 10.0, (10, 10, 10, 10, 10), 229, 3, 0, "2017-06-20T02:27:00"),
    ("1655196", None, 10.0, (10, 10, 10, 10, 10), 191, 2, 0, "2017-10-17T07:17:00"),
    ("1664037", None, 9.2, (8, 10, 10, 10, 8), 179, 2, 0, "2017-11-07T08:33:00"),
]


def _check_row(listed: ListedReview, row) -> None:
    review_id, aid, overall, scores, likes, replies, n_images, published = row
    item = listed.item
    assert item.review_id == review_id
    assert item.product_id == PRODUCT and item.product_name == NAME and item.brand == "华为"
    assert item.overall_score == overall and item.layout == "2018"
    assert item.scores == dict(zip(ASPECTS, map(float, scores), strict=False))
    assert (item.likes, item.replies, len(item.image_urls), item.published) == (likes, replies, n_images, published)
    assert all(url.startswith("https://pro-fd.zol-img.com.cn/g5/") for url in item.image_urls)
    if aid is None:
        assert listed.long_url is None and item.body is None
        assert item.url == f"https://detail.zol.com.cn/1185/1184692/review_0_0_{review_id}_1.shtml"
    else:
        assert listed.long_url.startswith("https://t.zol.com.cn/57/")
        assert listed.long_url.endswith(f"/evaluation_{aid}.html") and item.url == listed.long_url
        assert item.body  # the list's excerpt, the fallback body


def test_list_page_yields_all_20_reviews_in_page_order(list_page):
    spider, outputs, listed = list_page
    assert list(listed) == [row[0] for row in LIST_PAGE]
    ajax = [o for o in outputs if isinstance(o, Request) and o.meta.get("zol_kind") == "ajax"]
    assert [r.url for r in ajax] == [ajax_review_url(PRODUCT, 3)]
    assert ajax[0].headers["X-Requested-With"] == b"XMLHttpRequest"
    assert ajax[0].headers["Referer"] == review_list_url(PRODUCT).encode()
    stats = spider.crawler.stats
    assert stats.get_value("zol/pages/review_list") == 1
    assert stats.get_value("zol/layout/review_page_without_reviews") is None
    assert stats.get_value("zol/decode_errors/pages") is None


@pytest.mark.parametrize("row", LIST_PAGE, ids=[row[0] for row in LIST_PAGE])
def test_list_page_review(list_page, row):
    _check_row(list_page[2][row[0]], row)


def test_ajax_page_yields_all_10_reviews_and_asks_for_page_4(ajax_page):
    spider, outputs, listed = ajax_page
    assert list(listed) == [row[0] for row in AJAX_PAGE]
    nxt = [o.url for o in outputs if isinstance(o, Request) and o.meta.get("zol_kind") == "ajax"]
    assert nxt == [ajax_review_url(PRODUCT, 4)]
    assert spider.crawler.stats.get_value("zol/pages/ajax") == 1


@pytest.mark.parametrize("row", AJAX_PAGE, ids=[row[0] for row in AJAX_PAGE])
def test_ajax_page_review(ajax_page, row):
    _check_row(ajax_page[2][row[0]], row)


def test_long_review_as_listed_in_full(list_page):
    listed = list_page[2]["1675433"]
    item = listed.item
    assert listed.long_url == "https://t.zol.com.cn/57/1184692/evaluation_1364.html"
    assert (item.author, item.title) == ("贝斯的同学", "国产机中的最强旗舰了，值得买")
    assert (item.pros, item.cons, item.summary) == ("运行流畅\n外观漂亮", "价格高", None)
    assert item.body.startswith("10月20日，华为在国内正式发布了HUAWEI Mate 10和HUAWEI Mate 10 Pro。")
    assert item.image_urls == [
        "https://pro-fd.zol-img.com.cn/g5/M00/01/04/ChMkJlpVgUKIYpWFAALrGww6vpYAAj_0wHzMREAAusz526.jpg"
    ]


def test_long_review_without_icon_is_still_long(list_page):
    # 1675181 has no div.icon-long but links to its evaluation page (data-aid 1286) on another product
    assert list_page[2]["1675181"].long_url == "https://t.zol.com.cn/57/1165672/evaluation_1286.html"


def test_editor_review_in_full(list_page):
    item = list_page[2]["1675426"].item
    assert (item.author, item.title) == ("夏天棋", "华为新一代人工智能旗舰")
    assert (
        item.pros
        == "综合来看，HUAWEI Mate 10无论是在屏幕、拍照、续航还是系统体验上都值得点赞，相信麒麟970人工智能处理器还能发挥更大的用处。"  # noqa: E501
    )
    assert item.cons == "不支持IP67级别防水" and item.summary is None and item.image_urls == []


def test_short_review_with_images_in_full(list_page):
    item = list_page[2]["1649732"].item
    assert (item.author, item.title) == ("vkkxd1", "很期待这款上市比苹果和三星跟让用户喜欢")
    assert (item.pros, item.cons) == ("外观 像素 所有的功能性能好 。", "价格高 手机本体尺寸太大 5.5尺寸挺好的")
    assert item.image_urls == [
        "https://pro-fd.zol-img.com.cn/g5/M00/00/06/ChMkJ1nQoqaIeqQIAABj5m1ssaoAAg8lQKuq6YAAGP-544.jpg",
        "https://pro-fd.zol-img.com.cn/g5/M00/00/06/ChMkJ1nQoqaIEFV-AABlUyZCgvgAAg8lQKvcAYAAGVr853.jpg",
    ]


def test_summary_and_author_of_ajax_review(ajax_page):
    item = ajax_page[2]["1664037"].item
    assert (item.author, item.title) == ("zqcsjztx", "EMUI8是亮点")
    assert (item.pros, item.cons) == ("麒麟970很强。", "横向较宽，手持握感不太好。")
    assert item.summary == "自主研发的CPU，双4G待机，国内首发奥利奥，无愧于国产神机的称号！"


@pytest.mark.parametrize(
    "text, crawl_date, expected",
    [
        ("发表于：01月10日 11:21", date(2018, 9, 15), "2018-01-10T11:21:00"),
        ("发表于：01月10日 11:21", date(2018, 1, 9), "2017-01-10T11:21:00"),  # after the crawl date: last year
        ("发表于：09月15日 08:00", date(2018, 9, 15), "2018-09-15T08:00:00"),  # the crawl day itself
        ("发表于：2017年12月25日 03:35", date(2020, 1, 1), "2017-12-25T03:35:00"),
        ("2018-01-09 11:06:57", date(2018, 9, 15), "2018-01-09T11:06:57"),
        ("发表于：02月29日 10:00", date(2018, 9, 15), None),  # no such day in 2018
        ("刚刚", date(2018, 9, 15), None),
    ],
)
def test_dates(text, crawl_date, expected):
    assert parse_date(text, crawl_date) == expected


def test_long_page_fields():
    page = Selector(text=_long_page("1364").decode("gbk"))
    review = parse_long_review(page, date(2018, 9, 15), "https://t.zol.com.cn/57/1184692/evaluation_1364.html")
    assert (review.title, review.author, review.published) == ("长篇 1364", "作者1364", "2018-01-09T11:06:57")
    assert (review.likes, review.replies, review.overall_score) == (12, 3, 8.4)
    assert review.scores == {
        "price_performance": 8.0,
        "performance": 6.0,
        "battery": 10.0,
        "appearance": 8.0,
        "camera": 10.0,
    }
    assert (review.pros, review.cons) == ("快\n稳", "贵")
    assert review.body == "外观\n第一段\n第二段\n总结\n值得买"
    assert review.image_urls == [f"https://pro-fd.zol-img.com.cn/g5/M00/long/1364_{i}.jpg" for i in range(2)]


def test_older_layout_fallbacks():
    html = """<ul><li class="comment-item"><div class="comments-user-name"><span>老用户</span></div>
    <div class="single-score"><span class="date">2016年05月02日 10:00</span></div>
    <ul class="score-item"><li><span>外观：8</span></li><li><span>屏幕：6</span></li><li><span>信号：4</span></li></ul>
    <div class="comments-content"><h3><a href="/1185/1184692/review_0_0_1234567_1.shtml">旧标题</a></h3></div>
    <div class="comments-words"><strong class="good">优点：</strong><p><span>好</span></p>
    <strong class="bad">缺点：</strong><p><span>差</span></p></div></li></ul>"""
    nodes = review_nodes(Selector(text=html))
    listed = parse_review(nodes[0], Product(PRODUCT, NAME, "华为"), date(2018, 9, 15), review_list_url(PRODUCT))
    item = listed.item
    assert (item.review_id, item.author, item.title, item.published) == (
        "1234567",
        "老用户",
        "旧标题",
        "2016-05-02T10:00:00",
    )
    assert (item.pros, item.cons) == ("好", "差")
    assert item.scores == {"appearance": 8.0, "screen": 6.0, "信号": 4.0} and listed.unknown_labels == ("信号",)


def test_image_file_names_are_readable_and_cannot_collide():
    url = "https://pro-fd.zol-img.com.cn/g5/M00/01/04/ChMkJlpVgUKIYpWFAALrGww6vpYAAj_0wHzMREAAusz526.jpg"
    name = image_file_name(url)
    assert name.startswith("https___pro-fd.zol-img.com.cn_g5_M00_01_04_ChMkJlpVgUKIYpWFAALrGww6vpYAAj_0wHzMREAAusz526.")
    assert name.endswith(".jpg") and len(name) == len(url) + 1 + 16
    ambiguous = [f"https://pro-fd.zol-img.com.cn/{p}.jpg" for p in ("x_y/1", "x/y_1", "x/y/1")]
    assert len({image_file_name(u) for u in ambiguous}) == 3  # one readable form, three files
    odd = image_file_name("https://pro-fd.zol-img.com.cn/g5/图片 1.JPG?x=1")
    assert len(odd) == 44 and odd.endswith(".jpg")
    assert image_file_name("https://a.zol-img.com.cn/" + "x" * 300 + ".png").endswith(".png")


def test_mirror_paths_keep_percent_encoding():
    assert (
        mirror_relative_path(ajax_review_url(PRODUCT, 3))
        == "detail.zol.com.cn/xhr4_Review_GetList_%5EproId=1184692%5Epage=3.html"
    )
    assert mirror_relative_path("https://detail.zol.com.cn/robots.txt") == "detail.zol.com.cn/robots.txt"
    assert mirror_relative_path("https://detail.zol.com.cn/a/../../etc/passwd") is None


def test_item_has_exactly_the_raw_contract_fields():
    """The item is the contract plus `image_crops`, which only the image pipeline reads; the record is the contract."""
    from dataclasses import fields

    from common.contract import CRAWL_FIELDS, RAW_FIELDS
    from crawler.output import review_record

    assert tuple(f.name for f in fields(ReviewItem)) == RAW_FIELDS + CRAWL_FIELDS + ("image_crops",)
    record = review_record(
        ReviewItem("1", "2", image_crops={"https://a/x.jpg": "https://a/t_s4x3/x.jpg"}), "2026-06-24"
    )
    assert tuple(record) == RAW_FIELDS + CRAWL_FIELDS


def test_live_defaults_are_polite():
    from scrapy.settings import Settings

    from crawler.urls import ALLOWED_DOMAINS

    settings = Settings()
    settings.setmodule("crawler.settings")
    assert settings.getbool("ROBOTSTXT_OBEY") and settings.getbool("AUTOTHROTTLE_ENABLED")
    assert settings.getfloat("DOWNLOAD_DELAY") >= 1 and settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN") == 1
    assert settings["USER_AGENT"].startswith("zol-mimn/0.1 (+research crawler;")
    assert not settings.getbool("HTTPCACHE_ENABLED")
    assert {429, 500, 503}.issubset(set(settings.getlist("RETRY_HTTP_CODES")))
    assert settings.getint("DOWNLOAD_MAXSIZE") == 10 * 1024 * 1024
    assert ZolSpider.allowed_domains == list(ALLOWED_DOMAINS)
