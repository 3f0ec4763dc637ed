"""What the offline mirror contains: products, reviews, scores, dates and images, drawn from one seed.

Everything random comes from `random.Random(seed)` in a fixed order, so one seed gives one site. The
site's edge cases sit at fixed places (see EDGE_CASES) in every mirror of >= 3 products with >= 10
reviews per product. Beside the ranked products, a few unranked ones (UNRANKED_PRODUCTS) exist that the
ranking page links from its sidebars only, as the real page does; their reviews are not the crawl's.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from common.aspects import canonical_aspect
from sitegen.text import ReviewText, compose_text

CRAWL_DATE = date(2018, 9, 15)
LIST_ASPECTS: tuple[str, ...] = ("续航", "拍照", "性能", "外观", "性价比")  # the list page's order
SCREEN_LABEL = "屏幕"
UNKNOWN_LABEL = "信号"  # a label common.aspects does not know
USER_SCORES, USER_WEIGHTS = (2, 4, 6, 8, 10), (0.05, 0.08, 0.17, 0.35, 0.35)
LIST_IMAGES_OF_LONG = 3  # the list page shows only the first few figures of a long review
MIN_AJAX_PRODUCT_REVIEWS = 33  # product 0 always spans review.shtml + AJAX pages 3 (isEnd=0) and 4 (isEnd=1)
UNRANKED_PRODUCTS = 4  # linked by the ranking page's hot words and sidebars, not ranked
UNRANKED_REVIEWS = 2

# (product index, review index in page order) of each edge case; review 21+ of product 0 come from AJAX
EDGE_CASES: dict[str, tuple[int, int]] = {
    "long_many_images": (0, 0),  # 长篇 with 12 figures (the list page shows 3), yearless date
    "long_dated": (0, 1),  # 长篇 dated 发表于：2017年12月25日 03:35
    "editor_decimal": (0, 2),  # editor's decimal scores (8.2, 8.7, ...), no purchase info
    "six_aspects": (0, 3),  # six scores, 屏幕 included
    "unknown_aspect": (0, 4),  # 信号：<em>6</em> beside the five known labels
    "no_images": (0, 5),
    "yearless_previous_year": (0, 6),  # 发表于：11月20日 .. -> 2017-11-20 (after the crawl date's month/day)
    "long_without_icon": (1, 1),  # links to evaluation_{aid}.html but has no div.icon-long (seen on the real page)
    "ajax_long": (0, 21),  # a 长篇 inside the AJAX fragment (page 3)
    "ajax_editor_decimal": (0, 22),
    "long_cover": (0, 7),  # 长篇 whose list shows a cover picture that is not among its long page's figures
    "relative_images": (1, 2),  # short review whose image URLs are root-relative (/g5/...) on the list page
    "long_relative": (1, 3),  # 长篇 linked protocol-relative (//t.zol...), its figures root-relative
    "sibling_variant": (2, 0),  # 长篇 filed under a sibling variant's product id (listed on this product)
}
LONG_CASES = (
    "long_many_images",
    "long_dated",
    "long_without_icon",
    "ajax_long",
    "long_cover",
    "long_relative",
    "sibling_variant",
)

BRANDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("华为", "613", ("Mate 10", "P20", "P20 Pro", "nova 3", "Mate 10 Pro", "畅享8")),
    ("小米", "34645", ("MIX 2", "8", "6X", "红米Note 5", "MIX 2S", "Max 3")),
    ("OPPO", "1673", ("R15", "Find X", "A5", "R11s", "R15梦镜版")),
    ("vivo", "1795", ("X21", "NEX", "Z1", "Y85", "X20")),
    ("荣耀", "50840", ("10", "V10", "Play", "9i", "畅玩7X")),
    ("苹果", "544", ("iPhone X", "iPhone 8 Plus", "iPhone 8", "iPhone 7")),
    ("三星", "98", ("Galaxy S9+", "Galaxy Note8", "Galaxy S9", "Galaxy A9 Star")),
    ("魅族", "1434", ("15", "16th", "M6 Note", "Pro 7")),
    ("一加", "35305", ("手机6", "手机5T")),
    ("努比亚", "1922", ("Z18", "Z17S", "红魔电竞手机")),
)
VARIANTS: tuple[str, ...] = (
    "（6GB RAM/全网通）",
    "（4GB RAM/全网通）",
    "（64GB/全网通）",
    "（128GB/全网通）",
    "（全网通）",
)
PLACES: tuple[str, ...] = (
    "北京",
    "重庆",
    "广东 广州",
    "上海",
    "浙江 杭州",
    "四川 成都",
    "江苏 南京",
    "济南",
    "黑龙江 黑河",
    "湖北 武汉",
)
NAME_CHARS = string.ascii_lowercase + string.digits
IMAGE_NAME_CHARS = string.ascii_letters + string.digits + "-_"


@dataclass
class Image:
    url: str  # original, absolute https
    seed: list[int]
    camera: float
    appearance: float
    relative: bool = False  # the page that shows it writes it root-relative (`/g5/...`, on that page's host)

    @property
    def site_path(self) -> str:
        """Where the file lies in the mirror: <host>/<path>."""
        return self.url.removeprefix("https://")

    def thumbnail(self, size: str) -> str:
        """The URL with a size segment (`t_s120x90c5`), as list pages show it (only the image host has them)."""
        return self.url.replace("zol-img.com.cn/g5/", f"zol-img.com.cn/{size}/g5/", 1)


@dataclass
class Review:
    review_id: str
    product_id: str
    author: str
    author_url: str
    badge: str | None
    purchase: list[str]  # `价格：4499元`, `时间：2017-10`, `地点：北京` (may be empty)
    scores: list[tuple[str, float]]  # (list-page label, score) in page order
    editor: bool
    long: bool
    aid: str | None
    show_long_icon: bool
    text: ReviewText
    images: list[Image]
    published: datetime
    date_has_year: bool
    likes: int
    replies: int
    review_product_id: str = ""  # the product the review is filed under (a sibling variant, or product_id)
    cover: Image | None = None  # a long review's list-only picture (not among its long page's figures)
    protocol_relative_link: bool = False
    layout: str = "2018"  # 2018 | 2026-scored | 2026-short (sitegen.era2026)
    star_overall: float | None = None  # a 2026 short review's star score (2..10): it has no aspect score
    short_text: str | None = None  # a 2026 short review's one paragraph

    @property
    def overall(self) -> float:
        if not self.scores:
            return self.star_overall
        return round(sum(s for _, s in self.scores) / len(self.scores), 1)

    @property
    def list_images(self) -> list[Image]:
        if not self.long:
            return self.images
        return ([self.cover] if self.cover else []) + self.images[:LIST_IMAGES_OF_LONG]

    @property
    def all_images(self) -> list[Image]:
        """What a crawl finds, in its order: the long page's figures, then the list's own (cover) picture."""
        return self.images + ([self.cover] if self.cover else [])

    def score_of(self, key: str) -> float | None:
        for label, score in self.scores:
            if (canonical_aspect(label) or label) == key:
                return score
        return None


@dataclass
class Product:
    product_id: str
    name: str
    brand: str
    manu_id: str
    price: int
    reviews: list[Review] = field(default_factory=list)
    era: str = "2018"  # the markup its pages show: 2018 | 2026


def _user_score(rng: random.Random) -> int:
    return rng.choices(USER_SCORES, USER_WEIGHTS)[0]


def _scores(rng: random.Random, editor: bool, labels: tuple[str, ...]) -> list[tuple[str, float]]:
    """Aspect scores around a per-review mood; the camera often has its own mood (the images tell it)."""
    mood = _user_score(rng)
    scores = []
    for label in labels:
        base = _user_score(rng) if label == "拍照" and rng.random() < 0.5 else mood
        if editor:  # decimals, never a whole number (so they cannot pass for a user's score)
            value = round(min(9.8, max(5.1, base + rng.gauss(0, 1.2))), 1)
            scores.append((label, round(value + 0.1, 1) if value == int(value) else value))
        else:
            step = rng.choices((-2, -1, 0, 1, 2), (0.05, 0.2, 0.5, 0.2, 0.05))[0]
            scores.append((label, float(min(10, max(2, base + 2 * step)))))
    return scores


def _published(rng: random.Random, case: str | None) -> tuple[datetime, bool]:
    """(time, whether the page shows the year): this year's dates show none, as on the real site."""
    clock = timedelta(hours=rng.randrange(24), minutes=rng.randrange(60))
    if case == "long_dated":
        return datetime(2017, 12, 25, 3, 35), True
    if case == "yearless_previous_year":
        return datetime(2017, 11, 20) + clock, False
    if case == "long_many_images":
        return datetime(2018, 1, 10, 11, 21), False
    day = date(2017, 1, 1) + timedelta(days=rng.randrange((CRAWL_DATE - date(2017, 1, 1)).days))
    when = datetime(day.year, day.month, day.day) + clock
    return when, when.year != CRAWL_DATE.year


def _image_count(rng: random.Random, long: bool, case: str | None) -> int:
    if case == "long_many_images":
        return 12
    if case in ("no_images",):
        return 0
    if case == "relative_images":
        return 2
    if long or case in ("editor_decimal",):
        return rng.randint(2, 5)
    if rng.random() >= 0.72:
        return 0
    return rng.choices((1, 2, 3), (0.8, 0.15, 0.05))[0]


class _Ids:
    """Unique, realistic-looking ids drawn without replacement."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def draw(self, low: int, high: int) -> str:
        while True:
            value = str(self.rng.randrange(low, high))
            if value not in self.used:
                self.used.add(value)
                return value

    def image_url(self, host: str = "pro-fd.zol-img.com.cn") -> str:
        while True:
            d1, d2 = self.rng.randrange(16), self.rng.randrange(16)
            name = (
                "ChMk"
                + self.rng.choice("JK")
                + "".join(self.rng.choices(IMAGE_NAME_CHARS, k=38))
                + f"{self.rng.randrange(1000):03d}"
            )
            url = f"https://{host}/g5/M00/{d1:02X}/{d2:02X}/{name}.jpg"
            if url not in self.used:
                self.used.add(url)
                return url


def _purchase(rng: random.Random, product: Product, published: datetime) -> list[str]:
    """A user's 购买信息 (7 in 10 show it): price near the listed one, mostly the month, the place."""
    if rng.random() >= 0.7:
        return []
    purchase = [f"价格：{product.price + rng.choice((-300, -100, 0, 0, 100))}元"]
    if rng.random() < 0.8:
        purchase.append(f"时间：{published.year}-{published.month:02d}")
    purchase.append(f"地点：{rng.choice(PLACES)}")
    return purchase


def _review(
    rng: random.Random,
    ids: _Ids,
    seed: int,
    product: Product,
    p_index: int,
    r_index: int,
    case: str | None,
    sibling: str | None = None,
) -> Review:
    editor = case in ("editor_decimal", "ajax_editor_decimal") or rng.random() < 0.03
    long = case in LONG_CASES or (case is None and not editor and rng.random() < 0.05)
    labels = (
        LIST_ASPECTS
        + ((SCREEN_LABEL,) if case == "six_aspects" else ())
        + ((UNKNOWN_LABEL,) if case == "unknown_aspect" else ())
    )
    scores = _scores(rng, editor, labels)
    keyed = {canonical_aspect(label) or label: score for label, score in scores}
    mention_camera = rng.random() < 0.5
    unscored = {}
    if "screen" not in keyed and rng.random() < 0.35:
        unscored["screen"] = float(_user_score(rng))
    text = compose_text(rng, keyed, mention_camera, unscored, long)
    published, has_year = _published(rng, case)
    slug = "".join(rng.choices(NAME_CHARS, k=rng.randint(6, 12)))
    purchase = [] if editor else _purchase(rng, product, published)
    n_images = _image_count(rng, long, case)
    camera, appearance = keyed["camera"], keyed["appearance"]
    relative = case in ("relative_images", "long_relative")
    host = {"relative_images": "detail.zol.com.cn", "long_relative": "t.zol.com.cn"}.get(case, "pro-fd.zol-img.com.cn")
    images = [
        Image(ids.image_url(host), [seed, p_index, r_index, i], camera, appearance, relative) for i in range(n_images)
    ]
    cover = (
        Image(ids.image_url(), [seed, p_index, r_index, n_images], camera, appearance) if case == "long_cover" else None
    )
    return Review(
        review_id=ids.draw(1_500_000, 1_690_000),
        product_id=product.product_id,
        author=("编辑" + slug[:4]) if editor else slug,
        author_url=f"http://author.zol.com.cn/{slug}/" if editor else f"http://my.zol.com.cn/{slug}/",
        badge="优质点评人" if long else None,
        purchase=purchase,
        scores=scores,
        editor=editor,
        long=long,
        aid=ids.draw(300, 2000) if long else None,
        show_long_icon=case != "long_without_icon",
        text=text,
        images=images,
        published=published,
        date_has_year=has_year,
        likes=0,
        replies=rng.choice((0, 0, 1, 2, 3, 5, 12, 36)),
        review_product_id=sibling if case == "sibling_variant" and sibling else product.product_id,
        cover=cover,
        protocol_relative_link=case == "long_relative",
    )


def _product_name(rng: random.Random, used: set[str]) -> tuple[str, str, str]:
    while True:
        brand, manu_id, models = rng.choice(BRANDS)
        name = f"{brand}{rng.choice(models)}{rng.choice(VARIANTS)}"
        if name not in used:
            used.add(name)
            return name, brand, manu_id


def _product(rng: random.Random, ids: _Ids, names: set[str]) -> Product:
    name, brand, manu_id = _product_name(rng, names)
    return Product(
        ids.draw(1_100_000, 1_230_000),
        name,
        brand,
        manu_id,
        rng.choice((1299, 1999, 2499, 2999, 3499, 3899, 4499, 5999)),
    )


def _add_reviews(
    rng: random.Random,
    ids: _Ids,
    seed: int,
    product: Product,
    p_index: int,
    count: int,
    cases: dict[tuple[int, int], str],
    sibling: str | None = None,
) -> None:
    product.reviews = [
        _review(rng, ids, seed, product, p_index, r, cases.get((p_index, r)), sibling) for r in range(count)
    ]
    # the list is sorted by usefulness: likes fall along the page
    likes = sorted((int(rng.paretovariate(1.2) * 20) for _ in range(count)), reverse=True)
    for review, like in zip(product.reviews, likes, strict=False):
        review.likes = like


def plan_site(products: int, reviews_per_product: int, seed: int) -> tuple[list[Product], list[Product]]:
    """(ranked products in ranking order, unranked products), each with its reviews in page order."""
    rng = random.Random(seed)
    ids = _Ids(rng)
    cases = {place: name for name, place in EDGE_CASES.items()}
    names: set[str] = set()
    site = []
    sibling = ids.draw(1_100_000, 1_230_000)  # a variant id with no page of its own: only a long review lives there
    for p_index in range(products):
        product = _product(rng, ids, names)
        count = max(reviews_per_product, MIN_AJAX_PRODUCT_REVIEWS) if p_index == 0 else reviews_per_product
        _add_reviews(rng, ids, seed, product, p_index, count, cases, sibling)
        site.append(product)
    unranked = []
    for u_index in range(UNRANKED_PRODUCTS):
        product = _product(rng, ids, names)
        _add_reviews(rng, ids, seed, product, products + u_index, UNRANKED_REVIEWS, {})
        for review in product.reviews:  # text only: their pages are a trap for a crawler, not data
            review.images = []
        unranked.append(product)
    return site, unranked
