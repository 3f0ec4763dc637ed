"""Generate an offline mirror of ZOL's phone reviews that the `zol` spider can crawl without a network.

    python -m sitegen.mirror --out data/sample_site --products 12 --reviews-per-product 25 --seed 7 --era mixed

Layout: `<out>/<host>/<path>` with the path exactly as in the URL (percent-encoding kept), GBK pages,
original-size JPEGs, `<out>/manifest.json`: the ground truth the tests compare a crawl against, and
`<out>/faults.json`: pages that fail once before they are served (the mirror download handler plays it).
The era (sitegen.era2026) picks the markup: 2018 (every product as in 2018, the same bytes as before eras
existed), 2026 (every product as today: scored and short reviews, star bars, image crops, the 2019 AJAX form,
`/0/{proId}/review.shtml` redirected by `<out>/redirects.json`), or mixed (products 0-2 in 2018 markup, half of
the others in 2026 markup, drawn from the seed). A site with 2026 pages adds to the manifest its `era` and, per
review, its `layout` and `text` (what a crawl must read, field by field); a 2018 site's manifest is as before.
The site shows what the real one does (docs/zol-site.md): ranking pages that also link unranked phones,
long reviews with nested section headings and list-only cover pictures, relative and protocol-relative
URLs, a long review filed under a sibling variant's product id.
The same arguments always give the same bytes; the folder is rewritten whole (built beside it, then swapped).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from common.atomic import new_staging_dir, replace_dir
from common.errors import UserError
from common.params import bounded, fail
from common.stage import run_stage
from crawler.urls import (
    ajax_review_url,
    long_review_url,
    product_url,
    ranking_url,
    review_list_url,
)
from sitegen import pages2026
from sitegen.catalog_pages import product_page, ranking_page
from sitegen.era2026 import ERAS, apply_era, check_era
from sitegen.images import render_crop, render_photo
from sitegen.manifest import EMBEDDED_REVIEWS, build_manifest, redirected, site_path
from sitegen.pages2018 import ajax_reviews, long_review_page, review_list_page
from sitegen.plan import Product, plan_site

PRODUCTS_PER_RANKING_PAGE = 10
AJAX_PAGE_SIZE = 10
MANIFEST = "manifest.json"
FAULTS = "faults.json"  # read by crawler.mirror: {"<host>/<path>": [status | "blocked" | "stub", ...]}
REDIRECTS = "redirects.json"  # read by crawler.mirror: {"<host>/<path>": "https://..."} answered with a 301


def _product_files_2026(product: Product) -> dict[str, bytes]:
    """Every page and image of one product in 2026 markup: review.shtml with the first 20 reviews, the 2019 AJAX form
    for every page from 1 (pages 1-2 repeat the embedded reviews) to the first `div.empty-comment` one, and each
    image as the original and as the 400x300 crop that `data-bigurl` names."""
    files = {
        site_path(product_url(product.product_id)): product_page(product).encode("gbk"),
        site_path(review_list_url(product.product_id)): pages2026.review_list_page(
            product, product.reviews[:EMBEDDED_REVIEWS]
        ).encode("gbk"),
    }
    pages = -(-len(product.reviews) // AJAX_PAGE_SIZE)
    for page in range(1, pages + 2):
        chunk = product.reviews[(page - 1) * AJAX_PAGE_SIZE : page * AJAX_PAGE_SIZE]
        files[site_path(ajax_review_url(product.product_id, page, "2019"))] = pages2026.ajax_reviews_2019(chunk).encode(
            "ascii"
        )
    for review in product.reviews:
        for image in review.images:
            photo = render_photo(image.camera, image.appearance, image.seed)
            files[image.site_path] = photo
            files[site_path(pages2026.sized(image, pages2026.CROP))] = render_crop(photo)
    return files


def _product_files(product: Product) -> dict[str, bytes]:
    """Every page and image of one product, keyed by site path."""
    if product.era == "2026":
        return _product_files_2026(product)
    files = {
        site_path(product_url(product.product_id)): product_page(product).encode("gbk"),
        site_path(review_list_url(product.product_id)): review_list_page(
            product, product.reviews[:EMBEDDED_REVIEWS]
        ).encode("gbk"),
    }
    rest = product.reviews[EMBEDDED_REVIEWS:]
    for start in range(0, len(rest), AJAX_PAGE_SIZE):
        page = 3 + start // AJAX_PAGE_SIZE
        is_end = start + AJAX_PAGE_SIZE >= len(rest)
        files[site_path(ajax_review_url(product.product_id, page))] = ajax_reviews(
            rest[start : start + AJAX_PAGE_SIZE], page, is_end
        ).encode("ascii")
    for review in product.reviews:
        if review.long:  # filed under its own product id, which can be a sibling variant's
            files[site_path(long_review_url(review.review_product_id, review.aid))] = long_review_page(
                product, review
            ).encode("gbk")
        for image in review.all_images:
            files[image.site_path] = render_photo(image.camera, image.appearance, image.seed)
    return files


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel in sorted(files):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[rel])


def generate_mirror(
    out_dir: str | Path, products: int, reviews_per_product: int, seed: int, progress: bool = False, era: str = "2018"
) -> dict:
    """Write the mirror to `out_dir` (replacing it) and return its manifest. `era`: 2018 | 2026 | mixed."""
    check_era(era)
    if products < 1 or reviews_per_product < 1:
        raise ValueError(f"need at least 1 product and 1 review per product, got {products} and {reviews_per_product}")
    out = Path(out_dir)
    site, unranked = plan_site(products, reviews_per_product, seed)
    crawl_date = apply_era(site, unranked, seed, era)
    manifest = build_manifest(site, seed, unranked, era, crawl_date)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder; remove it or choose another --out")
    built = new_staging_dir(out)
    try:
        per_page = PRODUCTS_PER_RANKING_PAGE
        pages = [site[i : i + per_page] for i in range(0, len(site), per_page)]
        links = {p.product_id: pages2026.unfiled_review_list_link(p) for p in redirected(site)}
        files = {
            site_path(ranking_url(n)): ranking_page(
                n,
                len(pages),
                chunk,
                unranked,
                first_rank=1 + (n - 1) * per_page,
                elsewhere=site[per_page:][-2:] if n == 1 else [],
                review_links=links,
            ).encode("gbk")
            for n, chunk in enumerate(pages, start=1)
        }
        for product in tqdm([*site, *unranked], desc="mirror", unit="product", disable=not progress):
            files.update(_product_files(product))
        files[MANIFEST] = (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")
        files[FAULTS] = (json.dumps(manifest["faults"], indent=2, sort_keys=True) + "\n").encode("utf-8")
        if manifest.get("redirects"):
            files[REDIRECTS] = (json.dumps(manifest["redirects"], indent=2, sort_keys=True) + "\n").encode("utf-8")
        _write_tree(built, files)
        replace_dir(built, out)
    finally:
        if built.exists():
            shutil.rmtree(built)
    return manifest


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


@dataclass(frozen=True)
class SampleParams:
    """params.yaml's `sample` section: the default mirror, which the sample_site stage passes to this command
    line (checks.params reads it to refuse what main would, before `dvc repro` removes the old mirror)."""

    out: str = "data/sample_site"
    products: int = bounded(12, 1)
    reviews_per_product: int = bounded(25, 1)
    seed: int = 7
    era: str | int = "mixed"  # one of ERAS; YAML reads an unquoted 2018 as a number

    def __post_init__(self) -> None:
        object.__setattr__(self, "era", str(self.era))

    def check(self) -> None:
        if self.era not in ERAS:
            raise fail("sample", "era", f"must be one of {' | '.join(ERAS)}, got {self.era!r}")


def _summary_line(manifest: dict, out: str, era: str) -> str:
    """What was written: products, reviews (long, with images), images, and the reviews of each layout."""
    reviews = manifest["reviews"]
    layouts = ", ".join(
        f"{n} {layout}" for layout, n in sorted(Counter(r.get("layout", "2018") for r in reviews).items())
    )
    return (
        f"mirror: {len(manifest['products'])} products, {len(reviews)} reviews "
        f"({sum(r['long'] for r in reviews)} long, {sum(r['n_images'] > 0 for r in reviews)} with images), "
        f"{sum(r['n_images'] for r in reviews)} images -> {out} (era {era}: {layouts})"
    )


def _run(args: argparse.Namespace) -> str:
    try:
        manifest = generate_mirror(
            args.out, args.products, args.reviews_per_product, args.seed, progress=True, era=args.era
        )
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    return _summary_line(manifest, args.out, args.era)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sitegen.mirror", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to (re)write, e.g. data/sample_site")
    parser.add_argument("--products", type=_positive, required=True, help="number of products (10 per ranking page)")
    parser.add_argument(
        "--reviews-per-product",
        type=_positive,
        required=True,
        help="reviews of each product (product 0 gets at least 33, so the AJAX pages are used)",
    )
    parser.add_argument("--seed", type=int, required=True, help="random seed: same seed, same bytes")
    parser.add_argument(
        "--era",
        default=SampleParams.era,
        metavar="{" + ",".join(ERAS) + "}",
        help="the site's markup: 2018, 2026 (scored and short reviews, star bars, image crops), or "
        "mixed (some products each; default: %(default)s, as params.yaml's sample.era)",
    )
    return run_stage(parser, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
