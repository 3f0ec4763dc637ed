"""Stage segment: fixed sentences, stop words, punctuation, pre-segmented text, 1 vs 2 processes, re-run bytes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline import segment, split
from pipeline.io import write_frame
from pipeline.schema import PAIRS_SCHEMA, PRESEGMENTED_METADATA_KEY, SEGMENTED_SCHEMA, SPLITS
from pipeline.segment import SegmentParams, Segmenter, is_punctuation, resolve_processes, segment_frame, segment_texts

REPO = Path(__file__).resolve().parents[1]
LEXICON = REPO / "data/lexicon"


def params(**overrides) -> SegmentParams:
    values = dict(user_dict=str(LEXICON / "user_dict.txt"), stopwords=str(LEXICON / "stopwords.txt"),
                  remove_punctuation=True, remove_stopwords=True, processes=1)
    values.update(overrides)
    return SegmentParams(**values)


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return Segmenter(params())


def test_user_dictionary_words(segmenter):
    assert segmenter.tokens("骁龙835处理器性能强劲，全面屏很漂亮") == ["骁龙", "835", "处理器", "性能", "强劲", "全面屏", "很漂亮"]
    assert segmenter.tokens("麒麟970发热不严重，4000毫安") == ["麒麟", "970", "发热", "不", "严重", "4000", "毫安"]
    assert segmenter.tokens("iPhoneX面部识别很快，A11性能强") == ["iPhoneX", "面部识别", "很快", "A11", "性能", "强"]


def test_stopwords_and_punctuation_removed_only_when_asked(segmenter):
    text = "我觉得这个手机的拍照效果非常好！"
    assert segmenter.tokens(text) == ["觉得", "手机", "拍照", "效果", "非常", "好"]
    keep_all = Segmenter(params(remove_punctuation=False, remove_stopwords=False))
    assert keep_all.tokens(text) == ["我", "觉得", "这个", "手机", "的", "拍照", "效果", "非常", "好", "！"]


def test_aspect_tokens_never_stopword_filtered(segmenter):
    assert [segmenter.aspect_tokens(a) for a in ("外观手感", "性能配置", "电池续航", "拍照效果", "屏幕效果", "性价比")] == [
        ["外观", "手感"], ["性能", "配置"], ["电池", "续航"], ["拍照", "效果"], ["屏幕", "效果"], ["性价比"]]
    assert segmenter.aspect_tokens("这个") == ["这个"]


def test_presegmented_text_keeps_its_words(segmenter):
    assert segmenter.tokens("外观手感 一流\n的 续航能力 ， 好", presegmented=True) == ["外观手感", "一流", "续航能力", "好"]


def test_is_punctuation():
    assert all(map(is_punctuation, ["，", "。", "!", "...", "～", "★", " "]))
    assert not any(map(is_punctuation, ["好", "A11", "8.5", "^_^好"]))


def test_resolve_processes():
    assert resolve_processes(0, 10_000_000) >= 1
    assert resolve_processes(4, 100) == 1
    assert resolve_processes(2, 5000) == 2


def _frame(n: int) -> pd.DataFrame:
    texts = ["骁龙835处理器性能强劲，全面屏很漂亮", "拍照效果一般，夜景有噪点。", "外观 很 好看 的", "续航不错,充电很快!"]
    aspects = ["外观手感", "性能配置", "电池续航", "拍照效果", "屏幕效果", "性价比"]
    return pd.DataFrame({"review_id": [f"r{i:03d}" for i in range(n)], "product_id": "p", "product_name": "n",
                         "brand": "b", "aspect": "a", "aspect_zh": [aspects[i % 6] for i in range(n)],
                         "score": 8, "label": 7, "text": [f"{texts[i % 4]}{i}" for i in range(n)],
                         "image_paths": [[] for _ in range(n)], "n_images": 0, "release_split": None})


def test_one_and_two_processes_identical():
    frame = _frame(60)
    one = segment_frame(frame, {"r002"}, params(), processes=1, chunk_rows=7)
    two = segment_frame(frame, {"r002"}, params(), processes=2, chunk_rows=7)
    assert one["tokens"].tolist() == two["tokens"].tolist()
    assert one["tokens"][2] == ["外观", "很", "好看", "的2"]          # pre-segmented: split on spaces only
    assert one["tokens"][6] == ["外观", "很", "好看", "6"]            # not pre-segmented: jieba, stop word 的 dropped
    assert one["aspect_tokens"][0] == ["外观", "手感"] and one["aspect_tokens"][5] == ["性价比"]
    assert one["review_id"].tolist() == frame["review_id"].tolist()


def test_segment_texts_keeps_order_across_chunks():
    texts = [f"评论 {i} 拍照很好" for i in range(25)]
    tokens = segment_texts(texts, [False] * 25, params(), processes=2, chunk_rows=3)
    assert tokens == [["评论", str(i), "拍照", "很", "好"] for i in range(25)]


def test_main_schema_and_identical_bytes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(LEXICON, tmp_path / "data/lexicon")
    (tmp_path / "params.yaml").write_text(
        "segment:\n  user_dict: data/lexicon/user_dict.txt\n  stopwords: data/lexicon/stopwords.txt\n"
        "  remove_punctuation: true\n  remove_stopwords: true\n  processes: 0\n")
    frame = _frame(12)
    for i, name in enumerate(SPLITS):
        write_frame(frame.iloc[i * 4:(i + 1) * 4], split.SPLITS_DIR / f"{name}.parquet", PAIRS_SCHEMA,
                    metadata={PRESEGMENTED_METADATA_KEY: json.dumps(["r006"])} if name == "dev" else None)
    assert segment.main([]) == 0
    outputs = [segment.SEGMENTED_DIR / f"{n}.parquet" for n in SPLITS]
    first = [p.read_bytes() for p in outputs]
    assert segment.main([]) == 0
    assert [p.read_bytes() for p in outputs] == first
    dev = pq.read_table(outputs[1])
    assert dev.schema.remove_metadata() == SEGMENTED_SCHEMA
    assert dev.column("review_id").to_pylist() == ["r004", "r005", "r006", "r007"]
    assert dev.column("tokens").to_pylist()[2] == ["外观", "很", "好看", "的6"]   # kept as segmented
    assert "12 rows" in capsys.readouterr().out
    assert not list(tmp_path.rglob("jieba.cache"))
