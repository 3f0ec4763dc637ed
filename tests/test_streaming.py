"""Streaming (issue 21): clean, split and segment in batches of data.batch_rows give the same rows, metrics and
reports whatever the batch; a batch larger than a file gives write_frame's bytes; no stage reads a whole file.
The Multi-ZOL import groups the release's pairs into reviews through sorted runs with the bytes of one batch."""

from __future__ import annotations

import json
import math
import pathlib
import random
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import clean, segment, split
from pipeline.io import write_frame
from pipeline.schema import PAIRS_SCHEMA, SPLITS
from pipeline.stream import RowSorter, frame_writer

REPO = Path(__file__).resolve().parents[1]
ASPECTS = ["appearance", "battery", "camera", "performance", "screen", "value"]

pair_rows = st.lists(
    st.fixed_dictionaries(
        {
            "review_id": st.sampled_from(["r1", "r2", "r3", "r10", "ä", ""]),
            "aspect": st.sampled_from(ASPECTS),
            "score": st.integers(1, 10),
            "text": st.text(max_size=8),
            "product_id": st.none() | st.sampled_from(["p1", "p2"]),
            "image_paths": st.lists(st.sampled_from(["a.jpg", "b.jpg"]), max_size=2),
        }
    ),
    max_size=30,
)


def _full(row: dict) -> dict:
    return dict(row, product_name=None, brand="b", aspect_zh="z", label=row["score"] - 1, n_images=0) | {
        "release_split": None,
        "presegmented": False,
    }


def _pairs(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([_full(row) for row in rows], columns=PAIRS_SCHEMA.names)


@settings(max_examples=25, deadline=None)
@given(pair_rows, st.integers(1, 5), st.randoms(use_true_random=False))
def test_frame_writer_bytes_and_row_groups(rows, row_group_rows, rnd):
    frame = _pairs(rows)
    with pytest.MonkeyPatch.context() as mp, _tmp() as folder:
        mp.chdir(folder)
        write_frame(frame, "whole.parquet", PAIRS_SCHEMA)
        for name, group_rows in (("big.parquet", 10_000), ("small.parquet", row_group_rows)):
            with frame_writer(name, PAIRS_SCHEMA, group_rows, lambda: frame.iloc[:0]) as out:
                start = 0
                while start < len(frame):  # frames of any size in
                    size = rnd.randint(0, 7)
                    out.write(frame.iloc[start : start + size])
                    start += size
        assert Path("big.parquet").read_bytes() == Path("whole.parquet").read_bytes()
        small = pq.ParquetFile("small.parquet")
        assert small.read().equals(pq.read_table("whole.parquet"))
        assert small.schema_arrow.metadata == pq.read_schema("whole.parquet").metadata
        assert small.metadata.num_row_groups == max(1, math.ceil(len(frame) / row_group_rows))
        assert not list(Path(".").glob(".*.tmp"))


@settings(max_examples=25, deadline=None)
@given(pair_rows, st.integers(1, 4))
def test_row_sorter_is_a_stable_sort_through_runs(rows, run_rows):
    rows = [_full(row) for row in rows]
    with _tmp() as folder:
        sorter = RowSorter(PAIRS_SCHEMA, lambda r: (r["review_id"], r["aspect"]), run_rows, folder / "out.parquet")
        for row in rows:
            sorter.add(row)
        spilled = len(sorter.runs)
        assert list(sorter.sorted_rows()) == sorted(rows, key=lambda r: (r["review_id"], r["aspect"]))
        assert spilled == len(rows) // run_rows  # the input never sat in memory whole
        assert not list(folder.iterdir())  # the runs are gone


class _tmp:
    """A fresh temporary folder per Hypothesis example (pytest's tmp_path is one per test)."""

    def __enter__(self) -> Path:
        import tempfile

        self.folder = tempfile.TemporaryDirectory()
        return Path(self.folder.name)

    def __exit__(self, *exc) -> None:
        self.folder.cleanup()


# ---- the three stages, batch of 3 rows vs one batch -------------------------------------------------------


def _raw_lines(seed: int) -> list[str]:
    """Reviews out of id order, with duplicates, rejects and a broken line: the sort and the reject paths run."""
    rng = random.Random(seed)
    lines = []
    for i in rng.sample(range(40), 40):
        scores = {a: rng.randint(1, 10) for a in rng.sample(ASPECTS, rng.randint(1, 4))}
        if i % 9 == 0:
            scores["音效"] = 5  # unknown aspect: a rejected pair
        body = "不错" if i % 13 == 0 else f"第{i % 30}条评论：拍照清晰，续航一般，屏幕很好"  # short: no_text
        record = {"review_id": f"r{i:03d}", "product_id": f"p{i % 4}", "body": body, "scores": scores}
        record["segmented"] = i % 5 == 0
        lines.append(json.dumps(record, ensure_ascii=False))
    return [*lines[:20], "{broken", lines[3], *lines[20:]]  # lines[3] again: duplicate_id


def _params(batch_rows: int) -> str:
    return (
        f"data:\n  raw: raw\n  batch_rows: {batch_rows}\n"
        "clean:\n  require_image: false\n  min_text_chars: 5\n  dedupe_same_text: true\n"
        "features:\n  image_size: 224\n  max_image_pixels: 40000000\n"
        "split:\n  method: random\n  group_by: review\n  train: 0.6\n  dev: 0.2\n  test: 0.2\n  seed: 3\n"
        "segment:\n  user_dict: data/lexicon/user_dict.txt\n  stopwords: data/lexicon/stopwords.txt\n"
        "  remove_punctuation: true\n  remove_stopwords: true\n  filter_presegmented: false\n"
    )


OUTPUTS = [
    clean.PAIRS_PATH,
    clean.REJECTED_PATH,
    *(split.SPLITS_DIR / f"{name}.parquet" for name in SPLITS),
    *(segment.SEGMENTED_DIR / f"{name}.parquet" for name in SPLITS),
]
REPORTS = [m for stage in (clean, split, segment) for m in (stage.METRICS_PATH, stage.DETAIL_PATH)]


def _run_stages(root: Path, batch_rows: int, processes: str, monkeypatch) -> None:
    (root / "raw").mkdir(parents=True)
    (root / "raw/reviews.jsonl").write_text("\n".join(_raw_lines(0)) + "\n", encoding="utf-8")
    shutil.copytree(REPO / "data/lexicon", root / "data/lexicon")
    (root / "params.yaml").write_text(_params(batch_rows), encoding="utf-8")
    monkeypatch.chdir(root)
    assert clean.main([]) == 0
    assert split.main([]) == 0
    assert segment.main(["--processes", processes]) == 0


def _forbid_whole_file_reads(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a whole-file read in a streaming stage")

    for target, name in ((pq, "read_table"), (pd, "read_parquet"), (pathlib.Path, "read_bytes")):
        monkeypatch.setattr(target, name, refuse)


def test_batch_of_three_rows_gives_the_rows_metrics_and_reports_of_one_batch(tmp_path, monkeypatch):
    _run_stages(tmp_path / "one", 10_000, "1", monkeypatch)
    with monkeypatch.context() as inner:
        _forbid_whole_file_reads(inner)
        _run_stages(tmp_path / "three", 3, "2", inner)
    one, three = tmp_path / "one", tmp_path / "three"
    for path in OUTPUTS:
        whole, batched = pq.ParquetFile(one / path), pq.ParquetFile(three / path)
        assert whole.metadata.num_row_groups == 1, path
        assert whole.metadata.num_rows > 0, path
        assert batched.metadata.num_row_groups == math.ceil(whole.metadata.num_rows / 3), path
        assert batched.read().equals(whole.read()), path
        assert batched.schema_arrow.metadata == whole.schema_arrow.metadata, path
    for path in REPORTS:
        assert (three / path).read_bytes() == (one / path).read_bytes(), path
    pairs = pq.read_table(one / clean.PAIRS_PATH).to_pylist()
    keys = [(p["review_id"], p["aspect"]) for p in pairs]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    reasons = {r["reason"] for r in pq.read_table(one / clean.REJECTED_PATH).to_pylist()}
    assert reasons == {"malformed_json", "duplicate_id", "no_text", "unknown_aspect"}
    assert not list(tmp_path.rglob("*.tmp"))  # no sort run or staging file left


def test_split_sorts_pairs_that_come_unsorted(tmp_path, monkeypatch):
    """pairs.parquet not in key order (not from clean): the batched split sorts through runs, as the whole one."""
    monkeypatch.chdir(tmp_path)
    pairs = _pairs(
        [
            {
                "review_id": f"r{i % 7}",
                "aspect": ASPECTS[i % 6],
                "score": 1 + i % 10,
                "text": "t",
                "product_id": None,
                "image_paths": [],
            }
            for i in range(30)
        ]
    ).sample(frac=1, random_state=1)
    pairs = pairs.astype({"score": "int8", "label": "int8", "n_images": "int16"})
    outputs = {}
    for batch_rows in (10_000, 3):
        write_frame(pairs, split.PAIRS_PATH, PAIRS_SCHEMA)
        Path("params.yaml").write_text(_params(batch_rows), encoding="utf-8")
        assert split.main([]) == 0
        outputs[batch_rows] = {n: pq.read_table(split.SPLITS_DIR / f"{n}.parquet") for n in SPLITS}
    expected = split.split_pairs(pairs.reset_index(drop=True), split.SplitParams(train=0.6, dev=0.2, test=0.2, seed=3))
    for name in SPLITS:
        assert outputs[3][name].equals(outputs[10_000][name])
        assert outputs[3][name].to_pandas()[["review_id", "aspect"]].equals(expected[name][["review_id", "aspect"]])


# ---- import: the release's pair lines grouped into reviews through sorted runs -------------------------------

release_pair = st.tuples(
    st.sampled_from(["好 手机", "屏幕 大", "a\u2028b", " 续航 \x0c久 "]),  # review text: 4 reviews at most
    st.sampled_from(["[]", "['..\\\\img\\\\a.jpg']", "['http_undefined']"]),
    st.sampled_from(["外观手感", "拍照效果", "电池续航", "未知"]),
    st.sampled_from(["10.0", "8", "2.0", "n/a"]),
    st.sampled_from(["zol_Train_jieba.txt", "zol_Dev_jieba.txt", "zol_Test_jieba.txt"]),
)


def _write_release(root: Path, pairs: list[tuple], blank_tail: str) -> Path:
    release = root / "release"
    (release / "img").mkdir(parents=True)
    (release / "img/a.jpg").write_bytes(b"an image")
    files: dict[str, list[str]] = {}
    for text, images, aspect, score, name in pairs:
        files.setdefault(name, []).append(f"{text}\n{images}\n{aspect}\n{score}\n")
    for name, groups in files.items():
        (release / name).write_text("".join(groups) + blank_tail, encoding="utf-8", newline="\n")
    return release


@settings(max_examples=30, deadline=None)
@given(
    st.lists(release_pair, min_size=1, max_size=14),
    st.integers(1, 3),
    st.booleans(),
    st.sampled_from(["", "\n", " \n\n"]),
)
def test_import_in_runs_gives_the_bytes_and_counts_of_one_batch(pairs, batch_rows, keep_duplicates, blank_tail):
    from pipeline.import_multizol import import_release

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        release = _write_release(root, pairs, blank_tail)
        counts_whole = import_release(release, root / "whole", "txt", keep_duplicates, batch_rows=10_000)
        counts_runs = import_release(release, root / "runs", "txt", keep_duplicates, batch_rows=batch_rows)
        assert counts_runs == counts_whole
        lines = (root / "runs/reviews.jsonl").read_text(encoding="utf-8").split("\n")[:-1]  # not at U+2028
        assert (root / "runs/reviews.jsonl").read_bytes() == (root / "whole/reviews.jsonl").read_bytes()
        records = [json.loads(line) for line in lines]
        assert [r["review_id"] for r in records] == sorted(r["review_id"] for r in records)
        kept = counts_runs["pairs"] + counts_runs["duplicate_pairs"]["dropped"]
        assert kept == len(pairs) and sum(counts_runs["pairs_by_split"].values()) == counts_runs["pairs"]
        assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_import_reads_a_release_line_by_line(tmp_path, monkeypatch):
    """No whole-file read of a txt file: the 4-line samples come from the open file as it is read; a text with
    U+2028 or a form feed stays one line (only '\n' ends a line)."""
    from pipeline import multizol_release

    release = _write_release(tmp_path, [("好\u2028手机\x0c", "[]", "外观手感", "8", "zol_Train_jieba.txt")] * 3, "\n\n")
    _forbid_whole_file_reads(monkeypatch)
    monkeypatch.setattr(pathlib.Path, "read_text", pathlib.Path.read_bytes)  # refused as well
    samples = list(multizol_release.read_txt_file(release / "zol_Train_jieba.txt", Counter()))
    assert samples == [("好\u2028手机", "[]", "外观手感", "8")] * 3
