"""Stage segment: fixed sentences, stop words, punctuation, pre-segmented text, 1 vs 2 processes, re-run bytes,
word counts, empty splits, the three files replaced together (also when killed), no jieba cache file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline import segment, split
from pipeline.io import write_frame
from pipeline.schema import PAIRS_SCHEMA, SEGMENTED_SCHEMA, SPLITS
from pipeline.segment import Segmenter, SegmentParams, is_punctuation, resolve_processes, segment_frame, segment_texts

REPO = Path(__file__).resolve().parents[1]
LEXICON = REPO / "data/lexicon"


def params(**overrides) -> SegmentParams:
    values = dict(
        user_dict=str(LEXICON / "user_dict.txt"),
        stopwords=str(LEXICON / "stopwords.txt"),
        remove_punctuation=True,
        remove_stopwords=True,
        filter_presegmented=False,
    )
    values.update(overrides)
    return SegmentParams(**values)


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return Segmenter(params())


def test_user_dictionary_words(segmenter):
    assert segmenter.tokens("骁龙835处理器性能强劲，全面屏很漂亮") == [
        "骁龙",
        "835",
        "处理器",
        "性能",
        "强劲",
        "全面屏",
        "很漂亮",
    ]
    assert segmenter.tokens("麒麟970发热不严重，4000毫安") == ["麒麟", "970", "发热", "不", "严重", "4000", "毫安"]
    assert segmenter.tokens("iPhoneX面部识别很快，A11性能强") == ["iPhoneX", "面部识别", "很快", "A11", "性能", "强"]


def test_stopwords_and_punctuation_removed_only_when_asked(segmenter):
    text = "我觉得这个手机的拍照效果非常好！"
    assert segmenter.tokens(text) == ["觉得", "手机", "拍照", "效果", "非常", "好"]
    keep_all = Segmenter(params(remove_punctuation=False, remove_stopwords=False))
    assert keep_all.tokens(text) == ["我", "觉得", "这个", "手机", "的", "拍照", "效果", "非常", "好", "！"]


def test_aspect_tokens_never_stopword_filtered(segmenter):
    assert [
        segmenter.aspect_tokens(a) for a in ("外观手感", "性能配置", "电池续航", "拍照效果", "屏幕效果", "性价比")
    ] == [["外观", "手感"], ["性能", "配置"], ["电池", "续航"], ["拍照", "效果"], ["屏幕", "效果"], ["性价比"]]
    assert segmenter.aspect_tokens("这个") == ["这个"]


def test_presegmented_text_keeps_its_words_unless_asked(segmenter):
    text = "外观手感 一流\n的 续航能力 ， 时间 好"
    tokens, counts = segmenter.tokens_and_counts(text, presegmented=True)
    assert tokens == ["外观手感", "一流", "的", "续航能力", "，", "时间", "好"]  # the paper: the release's words
    assert counts == {"words": 7, "tokens": 7}
    filtering = Segmenter(params(filter_presegmented=True))
    tokens, counts = filtering.tokens_and_counts(text, presegmented=True)
    assert tokens == ["外观手感", "一流", "续航能力", "好"]
    assert counts == {"words": 7, "tokens": 4, "punctuation_removed": 1, "stopwords_removed": 2}


def test_jieba_reads_no_cache_file(tmp_path, monkeypatch):
    """A cache planted in the shared temp folder (where jieba looks by default) changes nothing."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    import jieba

    planted = jieba.Tokenizer()
    planted.tmp_dir = str(tmp_path)
    planted.initialize()  # writes tmp_path/jieba.cache, as any user of jieba would
    cache = tmp_path / "jieba.cache"
    assert cache.is_file()
    import marshal

    cache.write_bytes(marshal.dumps(({"拍": 1, "拍照": 0, "照": 1}, 2)))  # a dictionary without 拍照
    os.utime(cache)
    assert Segmenter(params()).tokens("拍照很清晰") == ["拍照", "很", "清晰"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jieba.cache"]


def test_is_punctuation():
    assert all(map(is_punctuation, ["，", "。", "!", "...", "～", "★", " "]))
    assert not any(map(is_punctuation, ["好", "A11", "8.5", "^_^好"]))


def test_resolve_processes():
    assert resolve_processes(0, 10_000_000) >= 1
    assert resolve_processes(4, 100) == 1
    assert resolve_processes(2, 5000) == 2


def _frame(n: int) -> pd.DataFrame:
    texts = [
        "骁龙835处理器性能强劲，全面屏很漂亮",
        "拍照效果一般，夜景有噪点。",
        "外观 很 好看 的",
        "续航不错,充电很快!",
    ]
    aspects = ["外观手感", "性能配置", "电池续航", "拍照效果", "屏幕效果", "性价比"]
    return pd.DataFrame(
        {
            "review_id": [f"r{i:03d}" for i in range(n)],
            "product_id": "p",
            "product_name": "n",
            "brand": "b",
            "aspect": "a",
            "aspect_zh": [aspects[i % 6] for i in range(n)],
            "score": 8,
            "label": 7,
            "text": [f"{texts[i % 4]}{i}" for i in range(n)],
            "image_paths": [[] for _ in range(n)],
            "n_images": 0,
            "release_split": None,
            "presegmented": [i == 2 or i == 6 and n == 12 for i in range(n)],
        }
    )


def test_one_and_two_processes_identical():
    frame = _frame(60)
    one = segment_frame(frame, params(), processes=1, chunk_rows=7)
    two = segment_frame(frame, params(), processes=2, chunk_rows=7)
    assert one["tokens"].tolist() == two["tokens"].tolist()
    assert one["tokens"][2] == ["外观", "很", "好看", "的2"]  # pre-segmented: split on spaces only
    assert one["tokens"][6] == ["外观", "很", "好看", "6"]  # not pre-segmented: jieba, stop word 的 dropped
    assert one["aspect_tokens"][0] == ["外观", "手感"] and one["aspect_tokens"][5] == ["性价比"]
    assert one["review_id"].tolist() == frame["review_id"].tolist()


def test_segment_texts_keeps_order_across_chunks():
    texts = [f"评论 {i} 拍照很好" for i in range(25)]
    tokens = segment_texts(texts, [False] * 25, params(), processes=2, chunk_rows=3)
    assert tokens == [["评论", str(i), "拍照", "很", "好"] for i in range(25)]


PARAMS_YAML = (
    "data:\n  batch_rows: 8192\n"
    "segment:\n  user_dict: data/lexicon/user_dict.txt\n  stopwords: data/lexicon/stopwords.txt\n"
    "  remove_punctuation: true\n  remove_stopwords: true\n  filter_presegmented: false\n"
)


def _write_splits(root: Path, frame: pd.DataFrame, sizes=(4, 4, 4)) -> None:
    shutil.copytree(LEXICON, root / "data/lexicon", dirs_exist_ok=True)
    (root / "params.yaml").write_text(PARAMS_YAML)
    start = 0
    for name, size in zip(SPLITS, sizes, strict=False):
        write_frame(frame.iloc[start : start + size], split.SPLITS_DIR / f"{name}.parquet", PAIRS_SCHEMA)
        start += size


def test_main_schema_identical_bytes_and_word_counts(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _write_splits(tmp_path, _frame(12))
    assert segment.main([]) == 0
    outputs = [segment.SEGMENTED_DIR / f"{n}.parquet" for n in SPLITS] + [segment.METRICS_PATH, segment.DETAIL_PATH]
    first = [p.read_bytes() for p in outputs]
    assert segment.main([]) == 0
    assert [p.read_bytes() for p in outputs] == first
    dev = pq.read_table(outputs[1])
    assert dev.schema.remove_metadata() == SEGMENTED_SCHEMA
    assert dev.column("review_id").to_pylist() == ["r004", "r005", "r006", "r007"]
    assert dev.column("tokens").to_pylist()[2] == ["外观", "很", "好看", "的6"]  # kept as segmented
    metrics = json.loads(segment.DETAIL_PATH.read_text())
    assert metrics["filter_presegmented"] is False
    tokens = sum(len(t) for n in SPLITS for t in pq.read_table(outputs[SPLITS.index(n)]).column("tokens").to_pylist())
    assert json.loads(segment.METRICS_PATH.read_text()) == {"tokens": tokens}
    assert metrics["splits"]["dev"]["presegmented"] == {
        "rows": 1,
        "words": 4,
        "tokens": 4,
        "punctuation_removed": 0,
        "stopwords_removed": 0,
    }
    train = metrics["splits"]["train"]
    assert train["presegmented"]["rows"] == 1 and train["jieba"]["rows"] == 3
    assert train["jieba"]["words"] == (
        train["jieba"]["tokens"] + train["jieba"]["punctuation_removed"] + train["jieba"]["stopwords_removed"]
    )
    assert train["jieba"]["punctuation_removed"] == 5  # ，  ，。  , !
    assert "12 rows" in capsys.readouterr().out
    assert not list(tmp_path.rglob("jieba*.cache"))


def test_processes_come_from_the_command_line_or_the_environment(tmp_path, monkeypatch, capsys):
    """How many processes segment is no param (it changes no output): --processes, else $ZOL_SEGMENT_PROCESSES."""
    monkeypatch.chdir(tmp_path)
    _write_splits(tmp_path, _frame(12))
    outputs = [segment.SEGMENTED_DIR / f"{n}.parquet" for n in SPLITS]
    assert segment.main(["--processes", "3"]) == 0
    first = [p.read_bytes() for p in outputs]
    monkeypatch.setenv("ZOL_SEGMENT_PROCESSES", "2")
    assert segment.main([]) == 0 and [p.read_bytes() for p in outputs] == first
    assert segment.parser().parse_args([]).processes == 2
    assert segment.parser().parse_args(["--processes", "0"]).processes == 0
    capsys.readouterr()
    for argv, env in ((["--processes", "-1"], "2"), ([], "many")):
        monkeypatch.setenv("ZOL_SEGMENT_PROCESSES", env)
        with pytest.raises(SystemExit) as exc:
            segment.main(argv)
        assert exc.value.code == 2 and "must be 0 (all cores) or a positive count" in capsys.readouterr().err


def test_an_empty_split_gives_valid_empty_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_splits(tmp_path, _frame(8), sizes=(8, 0, 0))
    assert segment.main([]) == 0
    for name, rows in zip(SPLITS, (8, 0, 0), strict=False):
        table = pq.read_table(segment.SEGMENTED_DIR / f"{name}.parquet")
        assert table.schema.remove_metadata() == SEGMENTED_SCHEMA and table.num_rows == rows
    _write_splits(tmp_path, _frame(8), sizes=(0, 0, 0))
    assert segment.main([]) == 2  # nothing at all: a clear error, files untouched
    assert pq.read_table(segment.SEGMENTED_DIR / "train.parquet").num_rows == 8


def test_a_failure_after_the_first_file_leaves_all_three_old_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_splits(tmp_path, _frame(12))
    assert segment.main([]) == 0
    outputs = [segment.SEGMENTED_DIR / f"{n}.parquet" for n in SPLITS]
    old = [p.read_bytes() for p in outputs]
    _write_splits(tmp_path, _frame(9), sizes=(3, 3, 3))
    real_write = segment.segment_split_file

    def write_then_fail(source, target, *args):
        metrics = real_write(source, target, *args)
        if target.name == "train.parquet":
            raise OSError(28, "No space left on device")
        return metrics

    monkeypatch.setattr(segment, "segment_split_file", write_then_fail)
    with pytest.raises(OSError):
        segment.main([])
    assert [p.read_bytes() for p in outputs] == old
    assert not list(tmp_path.rglob("*.tmp"))


KILLED_WRITER = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from pipeline import segment
real_write = segment.segment_split_file
def write_then_die(source, target, *args):
    metrics = real_write(source, target, *args)
    if target.name == "dev.parquet":
        os.kill(os.getpid(), signal.SIGKILL)
    return metrics
segment.segment_split_file = write_then_die
sys.exit(segment.main([]))
"""


def test_a_killed_run_leaves_no_temporary_file_in_the_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_splits(tmp_path, _frame(12))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(REPO)], cwd=tmp_path, env=env, capture_output=True)
    assert run.returncode == -signal.SIGKILL
    segmented = tmp_path / segment.SEGMENTED_DIR
    assert not segmented.exists()  # nothing half-written where DVC looks
    assert [p.name for p in segmented.parent.glob(".segmented.*.tmp")]  # the killed run's staging folder
    done = subprocess.run([sys.executable, "-m", "pipeline.segment"], cwd=tmp_path, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in segmented.iterdir()) == sorted(f"{n}.parquet" for n in SPLITS)
    assert not list(tmp_path.rglob("*.tmp"))  # the next run removed the leftovers
