"""python -m checks.params: every section of params.yaml checked by its stage's own validation before `dvc repro`
runs; the first bad value is one line naming its key, exit 2, and nothing is read but the params file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from checks.params import CHECKS, check_params, main

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


def _params_with(tmp_path: Path, dotted: str, value) -> Path:
    """params.yaml with one key set (or deleted, for value ...) in a folder holding nothing else."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    *parents, key = dotted.split(".")
    node = params
    for part in parents:
        node = node[part]
    if value is ...:
        del node[key]
    else:
        node[key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_every_section_of_params_yaml_is_checked() -> None:
    checked = {section for sections, _ in CHECKS for section in sections}
    assert checked == set(DEFAULTS)


def test_the_shipped_params_are_valid_without_any_input_present(tmp_path, monkeypatch, capsys) -> None:
    """Before the first `dvc repro` no mirror folder exists (the sample_site stage makes it), nor any data."""
    params = tmp_path / "params.yaml"
    params.write_bytes((REPO / "params.yaml").read_bytes())
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    assert capsys.readouterr().out.startswith("params: params.yaml valid (sample, crawl, multizol, data, clean")
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]  # nothing written


@pytest.mark.parametrize(
    "dotted, value, named",
    [
        ("split.train", 1.5, "split.train"),
        ("split.method", "stratified", "split.method"),
        ("sample.products", 0, "sample.products"),
        ("sample.era", "1999", "sample.era"),
        ("crawl.polite", "sometimes", "crawl.polite"),
        ("crawl.crawl_date", "2018-13-40", "crawl.crawl_date"),
        ("crawl.min_field_coverage", 2, "crawl.min_field_coverage"),
        ("crawl.workers", 2, "--workers (ZOL_CRAWL_WORKERS)"),  # how a crawl runs is not a param: named, refused
        ("multizol.format", "xml", "multizol.format"),
        ("data.raw", 7, "data.raw"),
        ("clean.min_text_chars", "five", "clean.min_text_chars"),
        ("segment.remove_punctuation", "yes", "segment.remove_punctuation"),
        ("features.num_workers", 0, "features.num_workers"),  # how to run: a command-line option, no param
        ("features.image_size", 100000, "features.image_size"),
        ("model.hops", 0, "model.hops"),
        ("train.lr", "fast", "train.lr"),
        ("train.colour", "red", "train.colour"),
        ("paper.hops", [9], "paper.hops"),
        ("embeddings", ..., "'embeddings' section"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_key(tmp_path, capsys, dotted, value, named) -> None:
    code = main(["--params", str(_params_with(tmp_path, dotted, value))])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and named in err, err


def test_the_first_error_in_pipeline_order_is_reported(tmp_path, capsys) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["split"]["train"] = 1.5
    params["train"]["lr"] = "fast"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    assert main(["--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert "split.train" in err and "train.lr" not in err


def test_it_returns_what_it_checked_and_has_help(capsys) -> None:
    assert check_params(str(REPO / "params.yaml"))[:3] == ["sample", "crawl", "multizol"]
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "Exit status: 0 all valid, 2 the first error" in capsys.readouterr().out
