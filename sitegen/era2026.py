"""The mirror's eras: which products show ZOL's 2026 markup, and what their reviews become there.

The 2018 plan (sitegen.plan) is drawn first and left as it is; a product shown in 2026 markup is then turned
into what the site of 2026 shows (docs/zol-site.md, "The site in 2026"), with its own random stream, so the
2018 products of a mixed site and every byte of a 2018 site stay as they were:
- half of its reviews (rounded up, a fixed share) stay **scored**: five aspect scores (users' 2/4/6/8/10), a
  title, `最满意` / `最不满意` text; the star bar is ten times the mean aspect score;
- the others are **short**: no title, no aspect score, one paragraph of text and a star bar in 20 % steps;
- no long reviews (data-aid 0), no editors' decimals, every date with its year, images under `/g7/`.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from sitegen.plan import CRAWL_DATE, LIST_ASPECTS, Image, Product, Review
from sitegen.text import score_band

ERAS: tuple[str, ...] = ("2018", "2026", "mixed")
LAYOUT_2018, LAYOUT_SCORED, LAYOUT_SHORT = "2018", "2026-scored", "2026-short"
CRAWL_DATE_2026 = date(2026, 6, 24)  # the day the real 2026 review page was captured
EDGE_CASE_PRODUCTS = 3  # a mixed site keeps products 0-2 (the 2018 edge cases) in 2018 markup
MAX_IMAGES_2026 = 3  # the real page shows up to three pictures a review
DATED_YEARS_2026 = 3  # 2026 reviews are dated within the three years before the crawl


def check_era(era: str) -> str:
    if era not in ERAS:
        raise ValueError(f"era must be one of {' | '.join(ERAS)}, got {era!r}")
    return era


def crawl_date(era: str) -> date:
    """The date the mirror is crawled on: a site all in 2026 markup is today's; 2018 and mixed keep 2018's
    (the 2018 pages' yearless dates are written for it; 2026 pages always show the year)."""
    return CRAWL_DATE_2026 if era == "2026" else CRAWL_DATE


def products_in_2026(count: int, era: str, seed: int) -> list[int]:
    """Indexes of the ranked products shown in 2026 markup: none, all, or (mixed) half of those after the edge-case
    products, drawn from the seed."""
    if era == "2018":
        return []
    if era == "2026":
        return list(range(count))
    later = list(range(EDGE_CASE_PRODUCTS, count))
    return sorted(random.Random(f"era-{seed}").sample(later, (len(later) + 1) // 2))


def _image_2026(image: Image) -> Image:
    """The same photo at a 2026 address: `pro-fd.zol-img.com.cn/g7/M00/...` (no root-relative URLs any more)."""
    path = image.url.removeprefix("https://").split("/", 1)[1].replace("g5/", "g7/", 1)
    return Image(f"https://pro-fd.zol-img.com.cn/{path}", image.seed, image.camera, image.appearance)


def _published_2026(rng: random.Random, on: date) -> datetime:
    first = on - timedelta(days=365 * DATED_YEARS_2026)
    day = first + timedelta(days=rng.randrange((on - first).days))
    return datetime(day.year, day.month, day.day, rng.randrange(24), rng.randrange(60))


def _short_text(review: Review) -> str:
    """A short review's one paragraph: what it liked and what it did not, in a sentence or two."""
    parts = review.text.pros[:2] + review.text.cons[:1]
    return "，".join(parts) + "。"


def _to_2026(review: Review, rng: random.Random, scored: bool, on: date) -> None:
    user_scores = [(label, float(score_band(score))) for label, score in review.scores if label in LIST_ASPECTS]
    review.editor, review.long, review.aid, review.badge, review.cover = False, False, None, None, None
    review.protocol_relative_link, review.review_product_id = False, review.product_id
    review.author_url = "//" + review.author_url.split("://", 1)[1].replace("author.zol", "my.zol", 1)
    review.images = [_image_2026(image) for image in review.images[:MAX_IMAGES_2026]]
    review.published, review.date_has_year = _published_2026(rng, on), True
    review.layout = LAYOUT_SCORED if scored else LAYOUT_SHORT
    if scored:
        review.scores = user_scores
    else:
        mean = sum(score for _, score in user_scores) / len(user_scores)
        review.star_overall = float(2 * min(5, max(1, round(mean / 2))))
        review.short_text = _short_text(review)
        review.scores = []


def convert_product(product: Product, rng: random.Random, on: date) -> None:
    """Turn one product's reviews into the 2026 formats: a fixed half (rounded up) scored, drawn from `rng`."""
    product.era = "2026"
    count = len(product.reviews)
    scored = set(rng.sample(range(count), (count + 1) // 2))
    for index, review in enumerate(product.reviews):
        _to_2026(review, rng, index in scored, on)


def apply_era(site: list[Product], unranked: list[Product], seed: int, era: str) -> date:
    """Turn the products the era shows in 2026 markup (unranked ones too, on a site all in 2026) and return the
    crawl date of the mirror."""
    check_era(era)
    on = crawl_date(era)
    rng = random.Random(f"2026-{seed}")
    for index in products_in_2026(len(site), era, seed):
        convert_product(site[index], rng, on)
    if era == "2026":
        for product in unranked:
            convert_product(product, rng, on)
    return on
