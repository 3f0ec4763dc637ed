"""The crawl's config: params.yaml `crawl` (what it writes) read into one dataclass, for the stage and the spider's -a
arguments alike; how it runs (backend, Redis, workers) from the command line or the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from common.errors import UserError
from common.params import section_defaults
from crawler import crawl, frontier
from crawler.params import CrawlParams, read_crawl_params, spider_params
from crawler.run_options import RunOptions

REPO = Path(__file__).resolve().parents[1]


def test_the_defaults_are_params_yaml_and_hold_no_run_only_setting() -> None:
    shipped = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["crawl"]
    assert section_defaults(CrawlParams) == shipped
    assert read_crawl_params(shipped) == CrawlParams()


@pytest.mark.parametrize(
    "values, message",
    [
        ({"workers": 2}, "crawl.workers moved out of params.yaml"),
        ({"backend": "redis", "redis_url": "redis://h/0"}, "give --backend (ZOL_BACKEND), --redis-url (REDIS_URL)"),
        ({"polite": "sometimes"}, "'crawl.polite' must be true or false or one of auto, got 'sometimes'"),
        ({"products": "12,x"}, "'crawl.products' must be comma-separated product ids, got '12,x'"),
        ({"crawl_date": "2018-13-40"}, "'crawl.crawl_date' must be an ISO date"),
        ({"list_pages": -1}, "'crawl.list_pages' must be >= 0, got -1"),
        ({"lists_pages": 2}, "unknown key(s) crawl.lists_pages; valid keys: "),
    ],
)
def test_a_bad_section_is_one_line_naming_the_key(values, message) -> None:
    with pytest.raises(UserError) as failed:
        read_crawl_params(values)
    assert message in str(failed.value) and "\n" not in str(failed.value)


def test_values_as_yaml_writes_them() -> None:
    params = read_crawl_params(yaml.safe_load("crawl_date: 2018-09-15\nproducts: [1184692, '1165672']\n"))
    assert params.crawl_date == "2018-09-15" and params.product_ids == ("1184692", "1165672")
    assert read_crawl_params({"products": 1184692}).product_ids == ("1184692",)
    assert read_crawl_params({"products": " 1, 2 "}).spider_arguments()["products"] == "1,2"


def test_the_stage_and_the_spider_share_names_and_defaults() -> None:
    params = CrawlParams()
    assert params.spider_arguments() == {
        "list_pages": "50",
        "review_pages": "20",
        "max_products": "0",
        "max_images_per_review": "5",
    }
    # the spider's -a text, read back, is the same params
    assert spider_params(params.spider_arguments()) == params
    by_hand = spider_params({"list_pages": "2", "products": "7,8", "crawl_date": "2018-09-15", "max_products": ""})
    assert (by_hand.list_pages, by_hand.product_ids, by_hand.max_products) == (2, ("7", "8"), 0)
    with pytest.raises(UserError, match=r"^spider arguments: 'crawl.review_pages' must be a whole number, got 'x'"):
        spider_params({"review_pages": "x"})
    with pytest.raises(UserError, match=r"^unknown spider argument\(s\) user_agent; known: list_pages, "):
        spider_params({"user_agent": "me"})  # a param, but a Scrapy setting by hand (-s USER_AGENT=...)


def test_polite_auto_is_off_for_a_mirror_folder_only() -> None:
    auto = CrawlParams(polite="auto")
    assert auto.is_polite("") and auto.is_polite("http://127.0.0.1:8000") and not auto.is_polite("/tmp/mirror")
    assert CrawlParams(polite=True).is_polite("/tmp/mirror") and not CrawlParams(polite=False).is_polite("")


def _parse(argv: list[str]) -> RunOptions:
    parser = crawl.stage_parser("python -m crawler.crawl", crawl.__doc__)
    crawl.add_run_options(parser)
    return crawl.run_options(parser.parse_args(argv))


def test_run_options_come_from_the_command_line_else_the_environment(monkeypatch) -> None:
    for name in ("ZOL_BACKEND", "REDIS_URL", "ZOL_REDIS_KEY", "ZOL_CRAWL_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    assert _parse([]) == RunOptions("local", "redis://127.0.0.1:6379/0", "zol", 2)
    monkeypatch.setenv("ZOL_BACKEND", "redis")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("ZOL_REDIS_KEY", "zol-2026")
    monkeypatch.setenv("ZOL_CRAWL_WORKERS", "4")
    assert _parse([]) == RunOptions("redis", "redis://cache:6379/1", "zol-2026", 4)
    assert _parse(["--workers", "1", "--redis-key", "k"]) == RunOptions("redis", "redis://cache:6379/1", "k", 1)
    for argv, message in (
        (["--backend", "celery"], "--backend (ZOL_BACKEND) must be local or redis, got 'celery'"),
        (["--workers", "0"], "--workers (ZOL_CRAWL_WORKERS) must be >= 1, got 0"),
        (["--redis-key", "zol:*"], "--redis-key (ZOL_REDIS_KEY) must be letters, digits"),
    ):
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
            _parse(argv)
    assert _parse(["--backend", "local", "--workers", "0"]).backend == "local"  # redis options only for redis


def test_help_names_every_run_option_and_its_variable(capsys, monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/0")
    for main in (crawl.main, frontier.main):
        with pytest.raises(SystemExit) as done:
            main(["--help"])
        assert done.value.code == 0
    out = capsys.readouterr().out
    for option, variable in (("--backend", "ZOL_BACKEND"), ("--redis-key", "ZOL_REDIS_KEY"), ("--workers", "")):
        assert option in out and variable in out
    assert "ZOL_CRAWL_WORKERS" in out and out.count("redis://elsewhere:6379/0") == 2  # both read REDIS_URL
