"""Crawl benchmark: throughput of `scrapy crawl zol` over the loopback-HTTP mirror with politeness off, and the
parse time per page of the real 2018 pages. Prints the figures and writes bench/results/crawl.json.

    python bench/bench_crawl.py [--products 12] [--reviews-per-product 25] [--seed 7] [--repeat 50]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.contract import REVIEWS_FILE, STATS_FILE  # noqa: E402
from crawler.params import MIRROR_SPEED_SETTINGS  # noqa: E402
from sitegen.mirror import SampleParams, generate_mirror  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "zol-2018"
RESULTS = REPO / "bench" / "results" / "crawl.json"


class _Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def crawl_throughput(products: int, reviews_per_product: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_crawl_") as tmp:
        mirror, out = Path(tmp) / "mirror", Path(tmp) / "out"
        manifest = generate_mirror(mirror, products, reviews_per_product, seed)
        server = _Server(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(mirror)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        command = [
            sys.executable,
            "-m",
            "scrapy",
            "crawl",
            "zol",
            "-a",
            f"crawl_date={manifest['crawl_date']}",
            "-s",
            f"ZOL_OUT={out}",
            "-s",
            "LOG_LEVEL=WARNING",
        ]
        for setting in MIRROR_SPEED_SETTINGS:
            command += ["-s", setting]
        env = {**os.environ, "ZOL_MIRROR": url, "PYTHONPATH": str(REPO)}
        started = time.perf_counter()
        subprocess.run(command, cwd=REPO, env=env, check=True)
        seconds = time.perf_counter() - started
        server.shutdown()
        stats = json.loads((out / STATS_FILE).read_text(encoding="utf-8"))
        reviews = sum(1 for _ in (out / REVIEWS_FILE).open(encoding="utf-8"))
    pages = sum(stats["pages"].values()) - stats["pages"].get("ajax_empty_last", 0)
    images = stats["images"]["ok"]
    return {
        "products": products,
        "reviews": reviews,
        "pages": pages,
        "images": images,
        "seconds": round(seconds, 2),
        "pages_per_s": round(pages / seconds, 1),
        "reviews_per_s": round(reviews / seconds, 1),
        "images_per_s": round(images / seconds, 1),
        "requests_per_s": round(stats["requests"] / seconds, 1),
        "note": "wall time of the scrapy subprocess, start-up (~1 s) included; politeness off",
    }


def parse_times(repeat: int) -> dict:
    from scrapy import Request
    from scrapy.http import HtmlResponse
    from scrapy.utils.test import get_crawler

    from crawler.parse_list import Product
    from crawler.parse_ranking import RankedProduct
    from crawler.spiders.zol import ZolSpider
    from crawler.tally import ProductTally
    from crawler.urls import ajax_review_url, review_list_url

    crawler = get_crawler(ZolSpider)
    spider = ZolSpider.from_crawler(crawler, crawl_date="2018-09-15")
    crawler.spider = spider
    list_body = (FIXTURES / "review.shtml").read_bytes()
    fragment = (FIXTURES / "xhr4_review_list_page3.html").read_bytes().decode("gbk")
    ajax_body = json.dumps({"list": fragment, "isEnd": 0}).replace("/", "\\/").encode("ascii")

    def list_page() -> int:
        spider.seen_review_ids.clear()
        url = review_list_url("1184692")
        meta = {"ranked": RankedProduct("1184692", None, None, None, url), "rank": None}
        response = HtmlResponse(url, body=list_body, request=Request(url, meta=meta))
        return len(list(spider.parse_review_list(response)))

    def ajax_page() -> int:
        spider.seen_review_ids.clear()
        url = ajax_review_url("1184692", 3)
        spider.tallies["1184692"] = ProductTally(Product("1184692", "华为Mate 10", "华为"), 89, 20)
        meta = {"product_id": "1184692", "page": 3}
        return len(list(spider.parse_ajax(HtmlResponse(url, body=ajax_body, request=Request(url, meta=meta)))))

    figures = {}
    for name, parse in (("list_page", list_page), ("ajax_page", ajax_page)):
        parse()  # warm-up
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            parse()
            times.append((time.perf_counter() - started) * 1000)
        figures[f"{name}_ms_median"] = round(statistics.median(times), 2)
        figures[f"{name}_ms_p90"] = round(sorted(times)[int(0.9 * len(times)) - 1], 2)
    figures["list_page_bytes"], figures["ajax_page_bytes"] = len(list_body), len(ajax_body)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sample = SampleParams()  # params.yaml's sample section
    parser.add_argument("--products", type=int, default=sample.products, help="default: %(default)s")
    parser.add_argument(
        "--reviews-per-product", type=int, default=sample.reviews_per_product, help="default: %(default)s"
    )
    parser.add_argument("--seed", type=int, default=sample.seed, help="default: %(default)s")
    parser.add_argument("--repeat", type=int, default=50, help="parse-time repetitions per page")
    args = parser.parse_args(argv)
    result = {
        "crawl": crawl_throughput(args.products, args.reviews_per_product, args.seed),
        "parse": parse_times(args.repeat),
        "cpu_count": os.cpu_count(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    crawl, parse = result["crawl"], result["parse"]
    print(
        f"crawl: {crawl['pages']} pages, {crawl['reviews']} reviews, {crawl['images']} images in {crawl['seconds']} s "
        f"-> {crawl['pages_per_s']} pages/s, {crawl['reviews_per_s']} reviews/s, {crawl['images_per_s']} images/s"
    )
    print(f"parse: list page {parse['list_page_ms_median']} ms, AJAX page {parse['ajax_page_ms_median']} ms (median)")
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
