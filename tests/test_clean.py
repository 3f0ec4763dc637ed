"""Stage clean: text cleaning of fixed strings, every rejection reason, images, and a byte-identical re-run."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline import clean
from pipeline.clean import CleanParams, records_to_pairs
from pipeline.imaging import Preprocessing, read_preprocessing
from pipeline.records import parse_score, round_half_up
from pipeline.schema import PAIRS_SCHEMA, REJECTED_SCHEMA
from pipeline.textnorm import clean_text, join_fields, normalise_width, remove_urls, strip_html

PARAMS = CleanParams(require_image=True, min_text_chars=5, dedupe_same_text=True)


# ---- text cleaning -------------------------------------------------------------------------------


def test_strip_html_keeps_line_structure_and_decodes_entities():
    assert strip_html("<p>拍照<b>很好</b></p><p>续航&nbsp;一般</p>") == "拍照很好\n续航\xa0一般\n"
    assert strip_html("第一行<br/>第二行") == "第一行\n第二行"
    assert strip_html("5 > 3 and 2 < 4") == "5 > 3 and 2 < 4"  # no tag: left alone


def test_remove_urls_stops_at_chinese_text():
    assert remove_urls("详见https://detail.zol.com.cn/1207/1206100/review.shtml谢谢") == "详见谢谢"
    assert remove_urls("官网 www.mi.com，价格") == "官网 ，价格"
    assert remove_urls("no url here: a.b") == "no url here: a.b"


def test_normalise_width_policy():
    assert normalise_width("ＯＰＰＯ　Ｒ１５，８＋１２８Ｇ，好评！") == "OPPO R15，8+128G，好评！"
    assert normalise_width("很好,拍照不错!续航呢?") == "很好，拍照不错！续航呢？"
    assert normalise_width("评分8.5,A11:快") == "评分8.5,A11:快"  # after Latin/digits: unchanged


def test_clean_text_end_to_end():
    raw = "  <div>外观 \t 很漂亮&amp;手感好</div>\r\n\r\n\u200b看图 http://x.cn/a.jpg \n\u3000\n屏幕ＯＫ"
    assert clean_text(raw) == "外观 很漂亮&手感好\n看图\n屏幕OK"


def test_join_fields_skips_empty_fields():
    assert join_fields(["标题", None, "", "  ", "<p>正文</p>", 123]) == "标题\n正文\n123"


@pytest.mark.parametrize(
    "value, expected",
    [
        (9.2, (9, None)),
        (int("9" * 400), (None, "score_out_of_range")),
        ("9" * 400, (None, "score_not_numeric")),
        (8.5, (9, None)),
        (10, (10, None)),
        ("6", (6, None)),
        (0.2, (None, "score_out_of_range")),
        (11, (None, "score_out_of_range")),
        ("好", (None, "score_not_numeric")),
        (None, (None, "score_not_numeric")),
        (True, (None, "score_not_numeric")),
        (float("nan"), (None, "score_not_numeric")),
    ],
)
def test_parse_score(value, expected):
    assert parse_score(value) == expected


def test_round_half_up_is_not_bankers():
    assert [round_half_up(x) for x in (0.5, 1.5, 2.5, 9.49, 9.5)] == [1, 2, 3, 9, 10]


# ---- records -> pairs ----------------------------------------------------------------------------


def _png(path: Path, color=(200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), color).save(path)


def _record(review_id: str, **overrides) -> dict:
    record = {
        "review_id": review_id,
        "product_id": "1206100",
        "product_name": "OPPO R15",
        "brand": "OPPO",
        "title": "很满意",
        "pros": "拍照清晰",
        "cons": "续航一般",
        "summary": None,
        "body": None,
        "scores": {"battery": 6, "camera": 10},
        "image_urls": ["https://i/a.jpg", "https://i/b.jpg"],
        "images": [{"url": "https://i/b.jpg", "path": "full/b.jpg"}, {"url": "https://i/a.jpg", "path": "full/a.jpg"}],
        "source": "zol",
    }
    record.update(overrides)
    return record


@pytest.fixture()
def raw_dir(tmp_path: Path) -> Path:
    _png(tmp_path / "images/full/a.jpg")
    _png(tmp_path / "images/full/b.jpg", (0, 0, 255))
    (tmp_path / "images/full/broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    return tmp_path


def _lines(*records) -> list[str]:
    return [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]


def test_good_record_gives_one_pair_per_aspect(raw_dir):
    pairs, rejected, metrics = records_to_pairs(_lines(_record("r1")), raw_dir, PARAMS)
    assert rejected.empty
    assert list(pairs["aspect"]) == ["battery", "camera"]
    assert list(pairs["aspect_zh"]) == ["电池续航", "拍照效果"]
    assert list(pairs["score"]) == [6, 10] and list(pairs["label"]) == [5, 9]
    row = pairs.iloc[0]
    assert row["text"] == "很满意\n拍照清晰\n续航一般"
    # page order (image_urls), not the order of `images`
    assert list(row["image_paths"]) == [
        f"{raw_dir.as_posix()}/images/full/a.jpg",
        f"{raw_dir.as_posix()}/images/full/b.jpg",
    ]
    assert row["n_images"] == 2 and row["release_split"] is None and not row["presegmented"]
    assert metrics["pairs_out"] == 2 and metrics["reviews_out"] == 1 and metrics["records_in"] == 1
    assert metrics["label_histogram"]["5"] == 1 and metrics["label_histogram"]["9"] == 1
    assert metrics["pairs_by_aspect"] == {"battery": 1, "camera": 1}


def test_every_rejection_reason(raw_dir):
    no_image = [
        {"url": "https://i/x.jpg", "path": "full/missing.jpg"},
        {"url": "https://i/y.jpg", "path": "full/broken.jpg"},
    ]
    lines = _lines(
        "{not json",  # 1 malformed_json
        {"product_id": "1", "scores": {"camera": 8}},  # 2 missing_field (review_id)
        {"review_id": "r3", "title": "很满意的手机"},  # 3 missing_field (scores)
        _record(
            "r4",
            scores={
                "camera": 9.2,
                "性价比": 8,
                "续航": 4,
                "battery": 2,  # 4 good + pair rejections
                "音质": 8,
                "screen": 0,
                "performance": "很好",
            },
        ),
        _record("r4"),  # 5 duplicate_id
        _record("r6", scores={}),  # 6 no_score
        _record("r7", title="<b>好</b>", pros=None, cons="", summary=None),  # 7 no_text
        _record("r8", images=no_image, title="另一条不同的评论"),  # 8 no_image
        _record("r9"),  # 9 duplicate_text (same product+text as r4)
        "[1, 2]",  # 10 malformed_json (not an object)
        "",  # blank line: not a record
    )
    pairs, rejected, metrics = records_to_pairs(lines, raw_dir, PARAMS)
    assert list(zip(pairs["review_id"], pairs["aspect"], pairs["score"], strict=False)) == [
        ("r4", "battery", 4),
        ("r4", "camera", 9),
        ("r4", "price_performance", 8),
    ]
    aspects = [a if isinstance(a, str) else None for a in rejected["aspect"]]
    got = list(zip(rejected["line_no"], aspects, rejected["reason"], strict=False))
    assert got == [
        (1, None, "malformed_json"),
        (2, None, "missing_field"),
        (3, None, "missing_field"),
        (4, "battery", "duplicate_aspect"),
        (4, "performance", "score_not_numeric"),
        (4, "screen", "score_out_of_range"),
        (4, "音质", "unknown_aspect"),
        (5, None, "duplicate_id"),
        (6, None, "no_score"),
        (7, None, "no_text"),
        (8, None, "no_image"),
        (9, None, "duplicate_text"),
        (10, None, "malformed_json"),
    ]
    assert rejected.loc[rejected["aspect"] == "screen", "raw"].item() == "0"
    assert json.loads(rejected.loc[rejected["line_no"] == 5, "raw"].item())["review_id"] == "r4"
    assert metrics["records_in"] == 10 and metrics["blank_lines"] == 1
    assert metrics["rejected_records_by_reason"] == {
        "duplicate_id": 1,
        "duplicate_text": 1,
        "malformed_json": 2,
        "missing_field": 2,
        "no_image": 1,
        "no_score": 1,
        "no_text": 1,
    }
    assert metrics["rejected_pairs_by_reason"] == {
        "duplicate_aspect": 1,
        "score_not_numeric": 1,
        "score_out_of_range": 1,
        "unknown_aspect": 1,
    }
    assert metrics["images"] == {"usable": 4, "missing": 1, "undecodable": 1}


def test_a_dropped_copy_does_not_make_a_later_usable_copy_a_duplicate(raw_dir):
    without_images = _record("r1", images=[{"url": "https://i/x.jpg", "path": "full/missing.jpg"}])
    pairs, rejected, _ = records_to_pairs(_lines(without_images, _record("r1"), _record("r1")), raw_dir, PARAMS)
    assert list(rejected["reason"]) == ["no_image", "duplicate_id"]
    assert list(rejected["line_no"]) == [1, 3]
    assert set(pairs["review_id"]) == {"r1"} and len(pairs) == 2


def test_text_only_reviews_kept_when_images_not_required(raw_dir):
    params = CleanParams(require_image=False, min_text_chars=5, dedupe_same_text=False)
    lines = _lines(_record("r1", images=[], image_urls=[]), _record("r2"))
    pairs, rejected, metrics = records_to_pairs(lines, raw_dir, params)
    assert rejected.empty  # same text, but dedupe is off
    assert list(pairs["n_images"]) == [0, 0, 2, 2]
    assert list(pairs.loc[0, "image_paths"]) == []
    assert metrics["text_only_reviews_out"] == 1


def test_same_text_without_product_is_not_a_duplicate(raw_dir):
    lines = _lines(_record("r1", product_id=None), _record("r2", product_id=None))
    pairs, rejected, _ = records_to_pairs(lines, raw_dir, PARAMS)
    assert rejected.empty and pairs["review_id"].nunique() == 2


def test_release_split_and_undecodable_line(raw_dir):
    lines = [
        json.dumps(_record("r1", release_split={"battery": "dev", "camera": "test"}), ensure_ascii=False).encode(),
        b"\xff\xfe not utf-8",
    ]
    pairs, rejected, _ = records_to_pairs(lines, raw_dir, PARAMS)
    assert list(pairs["release_split"]) == ["dev", "test"]
    assert list(rejected["reason"]) == ["malformed_json"] and "not UTF-8" in rejected.loc[0, "detail"]


def _write_repo(tmp_path: Path, records: list) -> None:
    raw = tmp_path / "data/raw/zol"
    _png(raw / "images/full/a.jpg")
    _png(raw / "images/full/b.jpg", (0, 0, 255))
    (raw / "reviews.jsonl").write_text("\n".join(_lines(*records)) + "\n", encoding="utf-8")
    (tmp_path / "params.yaml").write_text(
        "data:\n  raw: data/raw/zol\nclean:\n  require_image: true\n  min_text_chars: 5\n  dedupe_same_text: true\n"
        "features:\n  image_size: 224\n  max_image_pixels: 40000000\n",
        encoding="utf-8",
    )


def test_main_writes_schemas_and_identical_bytes_on_rerun(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _write_repo(tmp_path, [_record("r2"), _record("r1", title="第二条评论内容", scores={"camera": 8, "xx": 3}), "oops"])
    assert clean.main([]) == 0
    outputs = [clean.PAIRS_PATH, clean.REJECTED_PATH, clean.METRICS_PATH, clean.DETAIL_PATH]
    first = [p.read_bytes() for p in outputs]
    assert clean.main([]) == 0
    assert [p.read_bytes() for p in outputs] == first
    pairs = pq.read_table(clean.PAIRS_PATH)
    assert pairs.schema.remove_metadata() == PAIRS_SCHEMA
    assert pq.read_table(clean.REJECTED_PATH).schema.remove_metadata() == REJECTED_SCHEMA
    assert pairs.column("review_id").to_pylist() == ["r1", "r2", "r2"]  # sorted by (review_id, aspect)
    assert pairs.column("image_paths").to_pylist()[0] == [
        "data/raw/zol/images/full/a.jpg",
        "data/raw/zol/images/full/b.jpg",
    ]
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith(
        "clean: 3 records in -> 3 pairs of 2 reviews; rejected 2 (malformed_json 1, unknown_aspect 1)"
    )
    assert json.loads(clean.METRICS_PATH.read_text()) == {"reviews": 2, "pairs": 3, "rejected": 2}
    assert json.loads(clean.DETAIL_PATH.read_text())["rejected_records_by_reason"] == {"malformed_json": 1}


def test_main_missing_input_is_a_user_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "data:\n  raw: nowhere\nclean:\n  require_image: true\n  min_text_chars: 5\n  dedupe_same_text: true\n"
        "features:\n  image_size: 224\n  max_image_pixels: 40000000\n"
    )
    assert clean.main([]) == 2
    assert "nowhere/reviews.jsonl not found" in capsys.readouterr().err


# ---- what real data holds: one rejected row each, never a traceback ----------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    "line, reason, detail",
    [
        (_record("r1", image_urls=[{}]), "invalid_field", "image_urls must be a list of strings"),
        (_record("r1", images=[{"url": ["https://i/a.jpg"], "path": "full/a.jpg"}]), "invalid_field", "images[0].url"),
        (_record("r1", images=[{}]), "invalid_field", "images[0] must be an object with a string path"),
        (_record("r1", images="full/a.jpg"), "invalid_field", "images must be a list"),
        (_record("r1", images=[{"url": "u", "path": "../../outside.jpg"}]), "invalid_field", "is outside images/"),
        (_record("r1", images=[{"url": "u", "path": "/etc/passwd"}]), "invalid_field", "is outside images/"),
        (_record("r1", images=[{"url": "u", "path": "C:\\x.jpg"}]), "invalid_field", "is outside images/"),
        (_record("r1", title={"a": 1}), "invalid_field", "title must be a string or null, got dict"),
        (_record("r1", product_id=1206100), "invalid_field", "product_id must be a string or null, got int"),
        (
            '{"review_id": NaN, "scores": {"camera": 8}, "title": "很满意的手机"}',
            "invalid_field",
            "review_id must be a string",
        ),
        (_record(7), "invalid_field", "review_id must be a string, got int"),
        (_record("r1", scores=[8, 9]), "invalid_field", "scores must be an object"),
        (_record("r1", release_split={"camera": 1}), "invalid_field", "release_split must be an object of strings"),
        (_record("r1", segmented="yes"), "invalid_field", "segmented must be true, false or null"),
        ('{"review_id": "r1", "nested": ' + DEEP + "}", "malformed_json", "nested too deeply"),
        (DEEP, "malformed_json", "nested too deeply"),
        (
            _record("r1", images=[{"url": "u", "path": "full/a.jpg\x00.png"}]),
            "invalid_field",
            "contains a NUL character",
        ),
        (
            '{"review_id": "r1\\ud800", "scores": {"camera": 8}, "title": "很满意的手机"}',
            "malformed_json",
            "lone surrogate",
        ),
        (
            '{"review_id": "r1", "scores": {"camera\\udc00": 8}, "title": "很满意的手机"}',
            "malformed_json",
            "lone surrogate",
        ),
    ],
)
def test_malformed_record_is_rejected_with_a_reason(raw_dir, line, reason, detail):
    lines = _lines(line, _record("r2", title="另一条评论"))
    pairs, rejected, metrics = records_to_pairs(lines, raw_dir, PARAMS)
    assert list(rejected["reason"]) == [reason] and detail in rejected.loc[0, "detail"]
    assert rejected.loc[0, "line_no"] == 1 and rejected.loc[0, "review_id"] in (None, "r1")
    assert set(pairs["review_id"]) == {"r2"}  # the next line is read as usual
    assert metrics["rejected_records_by_reason"] == {reason: 1}


def test_a_400_digit_score_is_a_rejected_pair(raw_dir):
    line = json.dumps(_record("r1")).replace('"camera": 10', '"camera": ' + "9" * 400)
    pairs, rejected, _ = records_to_pairs([line], raw_dir, PARAMS)
    assert list(pairs["aspect"]) == ["battery"]
    assert list(zip(rejected["aspect"], rejected["reason"], strict=False)) == [("camera", "score_out_of_range")]


def _truncated_jpeg(path: Path) -> None:
    import io

    import numpy as np

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 6 // 10])


def test_images_features_would_refuse_do_not_make_a_review_multimodal(raw_dir):
    """clean keeps an image exactly when the features stage can decode it (one check: decode_pixels)."""
    from pipeline.imaging import decode_image

    _truncated_jpeg(raw_dir / "images/full/truncated.jpg")
    Image.new("RGB", (300, 200)).save(raw_dir / "images/full/bomb.png")  # 60,000 px > the limit below
    params = CleanParams(require_image=True, min_text_chars=5, dedupe_same_text=True)
    images = Preprocessing(image_size=64, max_image_pixels=50_000)
    lines = _lines(
        _record("r1", images=[{"url": "https://i/a.jpg", "path": "full/truncated.jpg"}]),
        _record("r2", title="另一条评论", images=[{"url": "https://i/a.jpg", "path": "full/bomb.png"}]),
        _record("r3", title="第三条评论"),
    )
    pairs, rejected, metrics = records_to_pairs(lines, raw_dir, params, images)
    assert list(rejected["reason"]) == ["no_image", "no_image"]
    assert set(pairs["review_id"]) == {"r3"}
    assert metrics["images"] == {"usable": 2, "missing": 0, "undecodable": 2}
    for name in ("truncated.jpg", "bomb.png"):  # and features refuses them too
        with pytest.raises(Exception, match="truncated|too_large"):
            decode_image(raw_dir / "images/full" / name, images)


def test_presegmented_flag_is_a_column(raw_dir):
    pairs, _, metrics = records_to_pairs(
        _lines(_record("r1", segmented=True), _record("r2", title="另一条评论")), raw_dir, PARAMS
    )
    assert dict(zip(pairs["review_id"], pairs["presegmented"], strict=False)) == {"r1": True, "r2": False}
    assert metrics["presegmented_reviews_out"] == 1


def test_nul_path_and_lone_surrogates_through_main_are_rejected_rows(tmp_path, monkeypatch, capsys):
    """End to end: the rejected rows (with the raw line) are written to Parquet, which stores UTF-8 only."""
    monkeypatch.chdir(tmp_path)
    _write_repo(
        tmp_path,
        [
            _record("r1", images=[{"url": "u", "path": "full/a.jpg\x00"}]),
            '{"review_id": "r2", "scores": {"camera": 8}, "title": "很满意的手机\\udfff"}',
            _record("r3"),
        ],
    )
    assert clean.main([]) == 0
    rejected = pq.read_table(clean.REJECTED_PATH).to_pylist()
    assert [(r["line_no"], r["reason"]) for r in rejected] == [(1, "invalid_field"), (2, "malformed_json")]
    assert "\\udfff" in rejected[1]["raw"]
    assert pq.read_table(clean.PAIRS_PATH).column("review_id").to_pylist() == ["r3", "r3"]


def test_a_str_line_with_a_lone_surrogate_is_a_rejected_row(raw_dir):
    pairs, rejected, _ = records_to_pairs(
        ['{"review_id": "r1", "title": "\udc80"}', json.dumps(_record("r2"))], raw_dir, PARAMS
    )
    assert list(rejected["reason"]) == ["malformed_json"] and "not UTF-8" in rejected.loc[0, "detail"]
    assert rejected.loc[0, "raw"].encode("utf-8") and set(pairs["review_id"]) == {"r2"}


@pytest.mark.parametrize(
    "size, wanted", [(16, "in 32..1024"), (100_000, "in 32..1024"), (True, "a whole number"), ("224", "a whole number")]
)
def test_image_size_out_of_range_is_one_line(size, wanted):
    """Unbounded, 100000 made clean's image check ask for a 100000 x 100000 array (120 GB) per image."""
    with pytest.raises(clean.UserError) as info:
        read_preprocessing({"weights": "random", "image_size": size, "max_image_pixels": 40_000_000})
    assert str(info.value) == f"params.yaml: 'features.image_size' must be {wanted}, got {size!r}"


def test_bad_image_size_through_main_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _write_repo(tmp_path, [_record("r1")])
    params = tmp_path / "params.yaml"
    params.write_text(params.read_text().replace("image_size: 224", "image_size: 16"))
    assert clean.main([]) == 2
    assert capsys.readouterr().err == "error: params.yaml: 'features.image_size' must be in 32..1024, got 16\n"
    assert not (tmp_path / "data/clean").exists()


def test_short_2026_reviews_are_counted_as_unlabelled_not_lost(raw_dir):
    """A 2026 short review (text and overall score, no aspect score) is a review the crawler writes; clean keeps it
    out of the pairs as no_score and counts it, so a user sees how much of a crawl is labelled."""
    short = _record(
        "s1",
        layout="2026-short",
        title=None,
        pros=None,
        cons=None,
        body="充电器就一定要加密吗？",
        scores={},
        overall_score=6.0,
    )
    scored = _record("s2", layout="2026-scored", overall_score=8.0)
    pairs, rejected, metrics = records_to_pairs(_lines(short, scored), raw_dir, PARAMS)
    assert metrics["rejected_records_by_reason"] == {"no_score": 1} and list(rejected["review_id"]) == ["s1"]
    assert set(pairs["review_id"]) == {"s2"} and metrics["reviews_out"] == 1
