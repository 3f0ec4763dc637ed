"""tools.predict with every model family and with bad input: tiny linear and LSTM checkpoints trained here score
what the evaluate stage scores; a broken checkpoint, a hostile raw line, a Parquet file of another shape and
outputs that cannot be written are each one line (or a rejected row with its reason), never a traceback. And the
checkpoint tells predict what it was trained on: the generated sample, and aspects with few training pairs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from test_model_mimn import make_batch
from test_model_synthetic import SENTIMENT_WORDS, write_dataset
from test_model_train import TINY_PARAMS
from test_predict import ASPECTS, SEGMENT, TorchState, run_predict

from model import evaluate, train
from model.families import FAMILIES, build_model
from pipeline.io import read_frame, write_frame
from pipeline.schema import SEGMENTED_SCHEMA
from pipeline.segment import SegmentParams, aspect_token_column
from tools.predict import TEXT_ONLY_FAMILIES

REPO = Path(__file__).resolve().parents[1]
# where the raw reviews came from, as params.yaml says it for the generated sample (model/provenance.py)
SAMPLE_SOURCE = {
    "sample": {"out": "data/sample_site"},
    "crawl": {"out": "data/raw/zol", "mirror": "data/sample_site"},
    "data": {"raw": "data/raw/zol"},
}


def build_family(root: Path, family: str) -> None:
    """Synthetic segmented splits (one text per review, aspect tokens as the segment stage writes them), a model of
    `family` trained on them, and the evaluate stage's predictions, in `root` (the working directory)."""
    write_dataset(root)
    shutil.copytree(REPO / "data/lexicon", root / "data/lexicon")
    params = {**TINY_PARAMS, "model": {**TINY_PARAMS["model"], "family": family}, "segment": SEGMENT, **SAMPLE_SOURCE}
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    for split in ("train", "dev", "test"):
        path = root / f"data/segmented/{split}.parquet"
        frame = read_frame(path)
        frame["aspect_tokens"] = aspect_token_column(frame["aspect_zh"], SegmentParams(**SEGMENT))
        for column in ("text", "tokens"):
            frame[column] = frame.groupby("review_id")[column].transform("first")
        write_frame(frame, path, SEGMENTED_SCHEMA)
    with TorchState():
        assert train.main(["--params", "params.yaml"]) == 0
        assert evaluate.main(["--params", "params.yaml"]) == 0


@pytest.fixture(scope="module", params=["linear", "lstm"])
def family_project(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    cwd = Path.cwd()
    os.chdir(root)
    try:
        build_family(root, request.param)
    finally:
        os.chdir(cwd)
    return request.param, root


@pytest.fixture
def family_dir(family_project, monkeypatch):
    family, root = family_project
    monkeypatch.chdir(root)
    with TorchState():
        torch.set_num_threads(1)
        yield family, root


def test_every_family_predicts_what_the_evaluate_stage_predicts(family_dir, capsys):
    family, _ = family_dir
    code, out, err = run_predict(capsys, "--text", f"手机 不错 {SENTIMENT_WORDS[9]}")
    assert code == 0, err
    result = json.loads(out)
    assert list(result["aspects"]) == ASPECTS
    for entry in result["aspects"].values():
        assert sum(entry["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)

    code, _, err = run_predict(capsys, "--input", "data/segmented/test.parquet", "--out", "out/pred.parquet")
    assert code == 0, err
    assert "predict: 6 reviews, 0 not predictable" in err
    ours = pd.read_parquet("out/pred.parquet")
    theirs = pd.read_parquet("reports/predictions.parquet")
    merged = theirs.merge(ours, on=["review_id", "aspect"], suffixes=("", "_ours"))
    assert len(merged) == len(theirs) == 36
    assert np.allclose(np.stack(merged["probabilities"]), np.stack(merged["probabilities_ours"]), atol=1e-4)
    assert (merged["predicted_score"] == merged["predicted_score_ours"]).all()

    code, out, err = run_predict(capsys, "--input", "data/segmented/test.parquet", "--out", "-")
    first = json.loads(out.splitlines()[0])
    reason = "model.family linear reads no image" if family == "linear" else "model.family lstm reads no image"
    assert all(item["reason"] == reason for item in first.get("images_not_read", []))


def test_explain_with_a_family_without_attention_is_one_line(family_dir, capsys, tmp_path):
    family, _ = family_dir
    code, out, err = run_predict(capsys, "--text", "手机 不错", "--explain", str(tmp_path / "pages"))
    assert code == 2 and out == ""
    assert f"--explain shows MIMN's attention, which model.family {family} does not return" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "pages").exists()


@pytest.mark.parametrize("family", FAMILIES)
def test_text_only_families_are_those_that_ignore_the_images(family):
    """predict skips the backbone for TEXT_ONLY_FAMILIES: it must be exactly the families whose output no image
    changes."""
    torch.manual_seed(0)
    sizes = {"embed_dim": 16, "hidden_dim": 8, "image_dim": 12, "max_text_len": 40, "hops": 2, "dropout": 0.0}
    model = build_model(family, sizes, vocab_size=50, num_classes=10).eval()
    inputs = make_batch()
    with torch.no_grad():
        changed = not torch.allclose(
            model(**{**inputs, "images": torch.randn_like(inputs["images"])}), model(**inputs), atol=1e-6
        )
    assert changed == (family not in TEXT_ONLY_FAMILIES)


def test_the_checkpoint_records_its_data_source_and_aspect_pairs_and_predict_says_so(family_dir, capsys, tmp_path):
    _, root = family_dir
    ckpt = torch.load("models/mimn.pt", weights_only=True)
    train_split = read_frame("data/segmented/train.parquet")
    assert ckpt["data_source"] == "sample"
    assert ckpt["aspect_train_pairs"] == train_split["aspect"].value_counts().sort_index().to_dict()
    assert "screen" not in ckpt["aspect_train_pairs"]  # the synthetic train split has no screen pair

    code, out, err = run_predict(capsys, "--text", "手机 不错", "--min-aspect-pairs", "10")
    assert code == 0, err
    assert "warning: the model was trained on the generated offline sample" in err and "mean nothing" in err
    assert "few training pairs (< 10, --min-aspect-pairs), scores mean little: screen (0)" in err
    aspects = json.loads(out)["aspects"]
    assert aspects["screen"]["few_training_pairs"] is True and aspects["screen"]["training_pairs"] == 0
    assert aspects["battery"] == {**aspects["battery"], "few_training_pairs": False, "training_pairs": 24}
    code, out, _ = run_predict(capsys, "--text", "手机 不错")  # the default threshold, 30: 24 pairs are few
    assert all(e["few_training_pairs"] for e in json.loads(out)["aspects"].values())

    # a checkpoint from before these fields: loads, and says it does not know
    for key in ("data_source", "aspect_train_pairs"):
        del ckpt[key]
    torch.save(ckpt, tmp_path / "old.pt")
    code, out, err = run_predict(
        capsys, "--text", "手机 不错", "--model", str(tmp_path / "old.pt"), "--out", str(tmp_path / "old.parquet")
    )
    assert code == 0, err
    assert "training data unknown" in err and "training pairs per aspect: unknown" in err
    rows = pd.read_parquet(tmp_path / "old.parquet")
    assert rows["training_pairs"].isna().all() and rows["few_training_pairs"].isna().all()
    assert pq.read_schema(tmp_path / "old.parquet").metadata[b"data_source"] == b"unknown"


# ---- checkpoints that are not checkpoints ---------------------------------------------------------------------


def one_line_error(capsys, *args: str) -> str:
    code, out, err = run_predict(capsys, *args)
    assert code == 2 and out == "", err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_a_broken_checkpoint_is_one_line(family_dir, capsys, tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert "is not a readable checkpoint" in one_line_error(capsys, "--text", "手机", "--model", str(empty))
    torch.save([1, 2, 3], tmp_path / "list.pt")
    assert "holds a list, not a dict" in one_line_error(capsys, "--text", "手机", "--model", str(tmp_path / "list.pt"))
    ckpt = torch.load("models/mimn.pt", weights_only=True)
    if ckpt["family"] != "linear":
        del ckpt["vocab"]
        torch.save(ckpt, tmp_path / "novocab.pt")
        assert "vocab is not a list of words" in one_line_error(
            capsys, "--text", "手机", "--model", str(tmp_path / "novocab.pt")
        )
    assert "is a folder" in one_line_error(capsys, "--text", "手机", "--model", str(tmp_path))


# ---- bad input and outputs -------------------------------------------------------------------------------------


def test_hostile_raw_lines_are_rejected_rows_with_reasons(family_dir, capsys, tmp_path):
    raw = tmp_path / "raw"
    (raw / "images").mkdir(parents=True)
    good = {"review_id": "ok1", "title": f"手机 不错 {SENTIMENT_WORDS[8]}", "scores": {"续航": 8}}
    lines = [
        json.dumps(good, ensure_ascii=False),
        "[" * 100_000 + "]" * 100_000,
        json.dumps({**good, "review_id": "nul", "images": [{"url": "u", "path": "a\x00b.jpg"}]}),
        json.dumps({**good, "review_id": "sur\ud800"}),
        json.dumps({**good, "review_id": "up", "images": [{"url": "u", "path": "../../etc/passwd"}]}),
    ]
    (raw / "reviews.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _, err = run_predict(capsys, "--input", str(raw / "reviews.jsonl"), "--out", str(tmp_path / "p.jsonl"))
    assert code == 0, err
    assert "predict: 5 reviews, 4 not predictable" in err
    results = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["review_id"] for r in results] == ["ok1", "reviews.jsonl:2", "nul", "reviews.jsonl:4", "up"]
    assert "aspects" in results[0]
    assert results[1]["error"] == "malformed_json: line 2: JSON nested too deeply to read"
    assert results[2]["error"].startswith("invalid_field: ") and "nul" in results[2]["error"].lower()
    assert results[3]["error"].startswith("malformed_json: line 4: ") and "surrogate" in results[3]["error"]
    assert results[4]["error"].startswith("invalid_field: images[0].path")


def test_a_parquet_input_of_another_shape_is_one_line(family_dir, capsys, tmp_path):
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1" + bytes(range(256)) * 4 + b"PAR1")
    assert "is not a readable Parquet file" in one_line_error(capsys, "--input", str(corrupt))
    whole = Path("data/segmented/test.parquet").read_bytes()  # a real file cut short
    (tmp_path / "cut.parquet").write_bytes(whole[: len(whole) // 2] + whole[-4096:])
    assert "is not a readable Parquet file" in one_line_error(capsys, "--input", str(tmp_path / "cut.parquet"))

    frame = read_frame("data/segmented/test.parquet")
    for column in ("tokens", "image_paths"):
        as_text = frame.assign(**{column: frame[column].map(lambda v: " ".join(v))})
        pq.write_table(pa.Table.from_pandas(as_text, preserve_index=False), tmp_path / f"{column}.parquet")
        line = one_line_error(
            capsys, "--input", str(tmp_path / f"{column}.parquet"), "--out", str(tmp_path / "x.jsonl")
        )
        assert f"column '{column}' is " in line and "string, not a list of strings" in line
        assert not (tmp_path / "x.jsonl").exists()


def test_a_split_whose_image_lists_are_all_empty_is_read(family_dir, capsys, tmp_path):
    """pandas writes list<null> for a list column with no value at all (text-only reviews): still a split."""
    frame = read_frame("data/segmented/test.parquet").head(6)
    frame["image_paths"] = [[] for _ in range(len(frame))]
    table = pa.Table.from_pandas(frame, preserve_index=False)
    assert table.schema.field("image_paths").type == pa.list_(pa.null())
    pq.write_table(table, tmp_path / "text_only.parquet")
    code, _, err = run_predict(
        capsys, "--input", str(tmp_path / "text_only.parquet"), "--out", str(tmp_path / "p.jsonl")
    )
    assert code == 0 and ", 0 not predictable" in err
    results = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(results) == frame["review_id"].nunique() and all("aspects" in r for r in results)


def test_outputs_that_cannot_be_written_are_refused_before_any_work(family_dir, capsys, tmp_path):
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine", encoding="utf-8")
    assert f"--out {folder} is a folder" in one_line_error(capsys, "--text", "手机", "--out", str(folder))
    a_file = tmp_path / "pages.txt"
    a_file.write_text("mine", encoding="utf-8")
    assert f"--explain {a_file} is a file" in one_line_error(capsys, "--text", "手机", "--explain", str(a_file))
    line = one_line_error(capsys, "--text", "手机", "--out", str(a_file / "sub/p.jsonl"))
    assert f"--out: {a_file} is a file, so no folder can be made under it" in line
    line = one_line_error(capsys, "--text", "手机", "--explain", str(a_file / "pages"))
    assert f"--explain: {a_file} is a file" in line
    assert (folder / "keep.txt").read_text(encoding="utf-8") == a_file.read_text(encoding="utf-8") == "mine"
