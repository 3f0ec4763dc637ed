"""The offline mirror's ground truth and scripted answers: `manifest.json` (products, reviews with their scores,
images and dates, the edge cases; on a site with 2026 pages also each review's layout and text as a crawl must
read it), the pages that fail once (`faults.json`) and the redirected review-list links (`redirects.json`).
"""

from __future__ import annotations

from datetime import date

from common.aspects import canonical_aspect
from crawler.urls import ajax_review_url, redirecting_review_list_url, review_list_url
from sitegen import pages2026
from sitegen.era2026 import LAYOUT_SCORED
from sitegen.page_frame import product_score
from sitegen.plan import CRAWL_DATE, EDGE_CASES, Product, Review

EMBEDDED_REVIEWS = 20  # review.shtml embeds pages 1-2


def site_path(url: str) -> str:
    """`https://host/path` -> `host/path` (the mirror's file for that URL)."""
    return url.split("://", 1)[1]


def _review_entry(review: Review) -> dict:
    return {
        "review_id": review.review_id,
        "product_id": review.product_id,
        "review_product_id": review.review_product_id,
        "long": review.long,
        "aid": review.aid,
        "scores": {canonical_aspect(label) or label: score for label, score in review.scores},
        "overall_score": review.overall,
        "n_images": len(review.all_images),
        "image_urls": [image.url for image in review.all_images],
        "published": review.published.isoformat(),
    }


def review_text(review: Review) -> dict:
    """The review's text as a crawl must read it, field by field (each line stripped, lines joined by newlines)."""
    text = review.text
    fields = dict.fromkeys(("title", "pros", "cons", "summary", "body"))
    if review.layout == LAYOUT_SCORED:
        fields["title"] = text.title
        fields["pros"], fields["cons"] = pages2026.scored_words(review)
    elif review.layout != "2018":  # short: one paragraph
        fields["body"] = review.short_text
    elif review.long:  # the long page: its title, merits, faults and every section's heading and paragraphs
        fields.update(
            title=text.title,
            pros="\n".join(text.pros),
            cons="\n".join(text.cons),
            body="\n".join(line for heading, paragraphs in text.sections for line in [heading, *paragraphs]),
        )
    else:
        fields.update(
            title=text.title,
            pros="，".join(text.pros) + "。",
            cons="，".join(text.cons) + "。",
            summary=text.summary + "。" if text.summary else None,
        )
    return fields


def review_truth(review: Review) -> dict:
    """What a site with 2026 pages adds to a review's manifest entry."""
    return {"layout": review.layout, "text": review_text(review)}


def _product_entry(product: Product, rank: int | None) -> dict:
    return {
        "product_id": product.product_id,
        "name": product.name,
        "brand": product.brand,
        "rank": rank,
        "listed_score": product_score(product),
        "listed_reviews": len(product.reviews),
    }


def faults(site: list[Product]) -> dict[str, list[int | str]]:
    """A page that fails once (503, then served): the first AJAX page of product 0. On a site with 2026 pages also
    the review lists of its first two 2026 products: one answers the verification page once, the other the stub."""
    first = site[0]
    ajax_form = "2019" if first.era == "2026" else "2018"
    script: dict[str, list[int | str]] = (
        {site_path(ajax_review_url(first.product_id, 3, ajax_form)): [503]}
        if len(first.reviews) > EMBEDDED_REVIEWS
        else {}
    )
    for product, answer in zip([p for p in site if p.era == "2026"], ("blocked", "stub"), strict=False):
        script[site_path(review_list_url(product.product_id))] = [answer]
    return script


def redirected(site: list[Product]) -> list[Product]:
    """The 2026 products whose ranking card links `/0/{proId}/review.shtml` (every other one, from the first)."""
    return [p for p in site if p.era == "2026"][::2]


def redirects(site: list[Product]) -> dict[str, str]:
    return {
        site_path(redirecting_review_list_url(p.product_id)): review_list_url(p.product_id) for p in redirected(site)
    }


def build_manifest(
    site: list[Product], seed: int, unranked: list[Product] = (), era: str = "2018", crawl_date: date = CRAWL_DATE
) -> dict:
    positions = {place: name for name, place in EDGE_CASES.items()}
    edge_cases = {}
    for p_index, product in enumerate(site):
        for r_index, review in enumerate(product.reviews):
            if (p_index, r_index) in positions and product.era == "2018":
                edge_cases[positions[(p_index, r_index)]] = review.review_id
    manifest = {
        "seed": seed,
        "crawl_date": crawl_date.isoformat(),
        "products": [_product_entry(p, rank) for rank, p in enumerate(site, start=1)],
        "reviews": [_review_entry(r) for p in site for r in p.reviews],
        "edge_cases": edge_cases,
        "unranked_products": [_product_entry(p, None) for p in unranked],
        "faults": faults(site),
    }
    if era != "2018":  # a 2018 site's manifest stays as it was before eras existed (same bytes, same DVC hash)
        for entry, review in zip(manifest["reviews"], [r for p in site for r in p.reviews], strict=False):
            entry.update(review_truth(review))
        manifest.update(
            era=era, redirects=redirects(site), products_in_2026=[p.product_id for p in site if p.era == "2026"]
        )
    return manifest
