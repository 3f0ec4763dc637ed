"""Offline-mirror generation: seconds, files, bytes and images for the default sample (params.yaml `sample`).

    python bench/bench_mirror.py [--products 12] [--reviews-per-product 25] [--seed 7]

Prints the figures and writes them to bench/results/mirror.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sitegen.mirror import SampleParams, generate_mirror  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sample = SampleParams()  # params.yaml's sample section
    parser.add_argument("--products", type=int, default=sample.products, help="default: %(default)s")
    parser.add_argument(
        "--reviews-per-product", type=int, default=sample.reviews_per_product, help="default: %(default)s"
    )
    parser.add_argument("--seed", type=int, default=sample.seed, help="default: %(default)s")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        manifest = generate_mirror(Path(tmp) / "site", args.products, args.reviews_per_product, args.seed)
        seconds = time.perf_counter() - started
        files = [p for p in (Path(tmp) / "site").rglob("*") if p.is_file()]
        jpegs = [p for p in files if p.suffix == ".jpg"]
        reviews = manifest["reviews"]
        results = {
            "products": len(manifest["products"]),
            "reviews": len(reviews),
            "long_reviews": sum(r["long"] for r in reviews),
            "reviews_with_images": sum(r["n_images"] > 0 for r in reviews),
            "images": len(jpegs),
            "files": len(files),
            "seconds": round(seconds, 2),
            "megabytes": round(sum(p.stat().st_size for p in files) / 1e6, 2),
            "mean_image_kb": round(sum(p.stat().st_size for p in jpegs) / max(1, len(jpegs)) / 1e3, 1),
        }
    print(
        f"mirror: {results['reviews']} reviews, {results['images']} images, {results['files']} files, "
        f"{results['megabytes']} MB in {results['seconds']} s (mean image {results['mean_image_kb']} KB)"
    )
    out = REPO / "bench" / "results" / "mirror.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
