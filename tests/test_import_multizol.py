"""Multi-ZOL importer: both release formats on a tiny fake release, then clean -> split(predefined) -> segment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from common.errors import UserError
from pipeline import clean, import_multizol, segment, split
from pipeline.import_multizol import import_release
from pipeline.multizol_release import image_name, review_id_of

REPO = Path(__file__).resolve().parents[1]
IMG_A = "https___pro-fd.zol-img.com.cn_g5_M00_02_01_aaa.jpg"
IMG_B = "https___pro-fd.zol-img.com.cn_g5_M00_02_01_bbb.jpg"
IMG_GONE = "https___pro-fd.zol-img.com.cn_g5_M00_02_01_gone.jpg"
TEXT_1 = "外观手感 漂亮 拍照 清晰 续航 一般"  # jieba alone would cut 外观手感 in two
TEXT_2 = "屏幕 细腻 性价比 高"


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (10, 200, 10)).save(path, format="PNG")


def _txt(*samples: tuple[str, list[str], str, str]) -> str:
    return "".join(f"{text}\n{images!r}\n{aspect}\n{score}\n" for text, images, aspect, score in samples)


@pytest.fixture()
def txt_release(tmp_path: Path) -> Path:
    release = tmp_path / "release"
    release.mkdir()
    _png(release / "img" / IMG_A)
    _png(release / "img" / IMG_B)
    (release / "zol_Train_jieba.txt").write_text(
        _txt(
            (TEXT_1, [IMG_A, IMG_B], "外观手感", "10.0"),
            (TEXT_1, [IMG_A, IMG_B], "拍照效果", "8.0"),
            (TEXT_2, [IMG_GONE], "屏幕效果", "6.0"),
        ),
        encoding="utf-8",
    )
    (release / "zol_Dev_jieba.txt").write_text(_txt((TEXT_1, [IMG_A, IMG_B], "电池续航", "4.0")), encoding="utf-8")
    (release / "zol_Test_jieba.txt").write_text(
        _txt((TEXT_2, [IMG_GONE], "性价比", "10.0"), (TEXT_1, [IMG_A, IMG_B], "音质", "2.0")) + "\n\n", encoding="utf-8"
    )
    return release


@pytest.fixture()
def json_release(tmp_path: Path) -> Path:
    release = tmp_path / "release_json"
    (release / "multi_jsonData").mkdir(parents=True)
    _png(release / "img" / IMG_A)
    files = {
        "1001": {
            "review_data": "外观很漂亮，拍照清晰",
            "img_path": ["..\\img\\" + IMG_A, "http_undefined", "..\\img\\" + IMG_GONE],
            "items_score": {"外观手感": 10, "拍照效果": None},
        },
        "1002": {"review_data": "屏幕不错", "img_path": "..\\img\\" + IMG_A, "items_score": None},
    }
    for stem, data in files.items():
        (release / "multi_jsonData" / f"{stem}.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    (release / "multi_jsonData" / "1003.json").write_text("{broken", encoding="utf-8")
    return release


def _read(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "reviews.jsonl").read_text(encoding="utf-8").split("\n") if line]


def test_image_name():
    assert image_name("..\\img\\" + IMG_A) == IMG_A
    assert image_name("../img/" + IMG_A) == IMG_A
    assert image_name("http_undefined") is None and image_name(" ") is None


def test_txt_release_groups_pairs_into_reviews(txt_release, tmp_path):
    out = tmp_path / "raw"
    counts = import_release(txt_release, out)
    assert counts["format"] == "txt" and counts["reviews"] == 2 and counts["pairs"] == 6
    assert counts["images"] == {"linked": 2, "missing": 1, "undefined": 0}
    assert counts["duplicate_pairs"] == {
        "kept_as_in_release": False,
        "dropped": 0,
        "dropped_same_score": 0,
        "dropped_other_score": 0,
    }
    records = {r["review_id"]: r for r in _read(out)}
    first = records[review_id_of(TEXT_1, [IMG_A, IMG_B])]
    assert first["scores"] == {"appearance": 10.0, "camera": 8.0, "battery": 4.0, "音质": 2.0}
    assert first["release_split"] == {"appearance": "train", "camera": "train", "battery": "dev", "音质": "test"}
    assert first["body"] == TEXT_1 and first["segmented"] is True and first["source"] == "multizol"
    assert [i["path"] for i in first["images"]] == [IMG_A, IMG_B]
    assert (out / "images" / IMG_A).samefile(txt_release / "img" / IMG_A)  # hard-linked
    second = records[review_id_of(TEXT_2, [IMG_GONE])]
    assert second["images"] == [] and second["image_urls"] == [f"img/{IMG_GONE}"]  # missing image: text kept
    assert second["release_split"] == {"screen": "train", "price_performance": "test"}


def test_a_release_image_that_is_a_relative_link_is_linked_as_its_file(txt_release, tmp_path):
    """A release put together with relative links (img/x.jpg -> ../../photos/x.jpg): <out>/images holds the image
    itself, not a copy of the link, which would point nowhere from another folder."""
    photo = tmp_path / "photos" / IMG_B
    photo.parent.mkdir()
    (txt_release / "img" / IMG_B).replace(photo)
    (txt_release / "img" / IMG_B).symlink_to(Path("..", "..", "photos", IMG_B))
    out = tmp_path / "deeper" / "raw"
    counts = import_release(txt_release, out)
    assert counts["images"]["linked"] == 2
    linked = out / "images" / IMG_B
    assert not linked.is_symlink() and linked.read_bytes() == photo.read_bytes()
    with Image.open(linked) as image:  # what clean and features will open
        assert image.size == (4, 4)


def test_json_release(json_release, tmp_path, capsys):
    out = tmp_path / "raw"
    counts = import_release(json_release, out)
    assert counts["format"] == "json" and counts["reviews"] == 2
    assert counts["images"] == {"linked": 2, "missing": 1, "undefined": 1} and counts["json_files_unreadable"] == 1
    records = {r["review_id"]: r for r in _read(out)}
    assert records["mz-1001"]["scores"] == {"appearance": 10, "camera": None}  # clean quarantines the null
    assert [i["path"] for i in records["mz-1001"]["images"]] == [IMG_A]
    assert records["mz-1002"]["scores"] == {} and records["mz-1002"]["release_split"] is None
    assert "1003.json is not readable JSON" in capsys.readouterr().out


def test_not_a_release(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    with pytest.raises(UserError, match="holds no Multi-ZOL files"):
        import_release(release, tmp_path / "out")
    (release / "zol_Train_jieba.txt").write_text("a\n['x']\n外观手感\n")
    with pytest.raises(UserError, match="not a multiple of 4"):
        import_release(release, tmp_path / "out")


def test_release_through_clean_split_segment(txt_release, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(REPO / "data/lexicon", tmp_path / "data/lexicon")
    assert import_multizol.main(["--release", str(txt_release), "--out", "data/raw/multizol"]) == 0
    first = (tmp_path / "data/raw/multizol/reviews.jsonl").read_bytes()
    assert import_multizol.main(["--release", str(txt_release), "--out", "data/raw/multizol"]) == 0
    assert (tmp_path / "data/raw/multizol/reviews.jsonl").read_bytes() == first
    assert json.loads(Path("reports/import.json").read_text())["reviews"] == 2
    (tmp_path / "params.yaml").write_text(
        "data:\n  raw: data/raw/multizol\n"
        "clean:\n  require_image: false\n  min_text_chars: 5\n  dedupe_same_text: true\n"
        "features:\n  image_size: 224\n  max_image_pixels: 40000000\n"
        "split:\n  method: predefined\n  group_by: review\n  train: 0.8\n  dev: 0.1\n  test: 0.1\n  seed: 1\n"
        "segment:\n  user_dict: data/lexicon/user_dict.txt\n  stopwords: data/lexicon/stopwords.txt\n"
        "  remove_punctuation: true\n  remove_stopwords: true\n  filter_presegmented: false\n",
        encoding="utf-8",
    )
    assert clean.main([]) == 0 and split.main([]) == 0 and segment.main([]) == 0
    metrics = json.loads(Path("reports/split_detail.json").read_text())
    assert {n: m["pairs"] for n, m in metrics["splits"].items()} == {"train": 3, "dev": 1, "test": 1}
    assert metrics["overlap"]["reviews_in_several_splits"] == 2
    rejected = json.loads(Path("reports/clean_detail.json").read_text())["rejected_pairs_by_reason"]
    assert rejected == {"unknown_aspect": 1}
    from pipeline.io import read_frame

    assert read_frame("data/splits/train.parquet")["presegmented"].all()
    train = read_frame("data/segmented/train.parquet").set_index("aspect")
    assert list(train["aspect_tokens"]["appearance"]) == ["外观", "手感"]
    assert list(train["tokens"]["appearance"]) == ["外观手感", "漂亮", "拍照", "清晰", "续航", "一般"]
    assert list(train["image_paths"]["appearance"]) == [
        f"data/raw/multizol/images/{IMG_A}",
        f"data/raw/multizol/images/{IMG_B}",
    ]


def test_duplicate_pairs_are_counted_and_can_be_kept(tmp_path):
    """The release holds some pairs twice; which copy is kept decides the test set, so both choices exist."""
    release = tmp_path / "release"
    release.mkdir()
    (release / "zol_Train_jieba.txt").write_text(
        _txt((TEXT_1, [], "外观手感", "10.0"), (TEXT_1, [], "外观手感", "10.0"), (TEXT_2, [], "屏幕效果", "6.0")),
        encoding="utf-8",
    )
    (release / "zol_Test_jieba.txt").write_text(
        _txt((TEXT_2, [], "屏幕效果", "6.0"), (TEXT_2, [], "屏幕效果", "4.0"), (TEXT_2, [], "性价比", "8.0")),
        encoding="utf-8",
    )
    counts = import_release(release, tmp_path / "dropped")
    assert counts["pairs"] == 3 and counts["pairs_by_split"] == {"test": 1, "train": 2}
    assert counts["duplicate_pairs"] == {
        "kept_as_in_release": False,
        "dropped": 3,
        "dropped_same_score": 2,
        "dropped_other_score": 1,
        "kept_in_train_dropped_from_test": 2,
        "kept_in_train_dropped_from_train": 1,
    }
    kept = import_release(release, tmp_path / "kept", keep_duplicates=True)
    assert kept["pairs"] == 6 and kept["pairs_by_split"] == {"test": 3, "train": 3}
    assert kept["duplicate_pairs"] == {
        "kept_as_in_release": True,
        "dropped": 0,
        "dropped_same_score": 0,
        "dropped_other_score": 0,
        "extra_copies_kept": 3,
    }
    records = {r["review_id"]: r for r in _read(tmp_path / "kept")}
    base = review_id_of(TEXT_2, [])
    assert records[base]["scores"] == {"screen": 6.0, "price_performance": 8.0}
    assert records[f"{base}-copy2"]["scores"] == {"screen": 6.0}
    assert records[f"{base}-copy2"]["release_split"] == {"screen": "test"}
    assert records[f"{base}-copy3"]["scores"] == {"screen": 4.0}


def test_settings_from_params_and_output_replaced_whole(txt_release, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        f"multizol:\n  release: {txt_release}\n  format: txt\n  keep_duplicate_pairs: false\n"
        "data:\n  batch_rows: 2\n",  # runs of 2 pairs spilled to disk and merged: no leftover either
        encoding="utf-8",
    )
    stale = tmp_path / "data/raw/multizol/images/stale.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an older import")
    assert import_multizol.main([]) == 0
    assert not stale.exists() and (tmp_path / "data/raw/multizol/images" / IMG_A).is_file()
    assert json.loads(Path("reports/import.json").read_text())["format"] == "txt"
    assert not list(tmp_path.rglob("*.tmp"))


# ---- what --out may be: the folder is replaced whole, so nothing else may be lost with it -------------------


def _refused(capsys, *argv: str) -> str:
    assert import_multizol.main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    return err


def test_out_holding_other_files_is_refused_and_kept(txt_release, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("months of work")
    err = _refused(capsys, "--release", str(txt_release), "--out", str(out), "--counts", str(tmp_path / "m.json"))
    assert "thesis.tex" in err and "other things than this stage's output" in err
    assert [p.name for p in out.iterdir()] == ["thesis.tex"] and not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("where", ["is", "inside", "holds"])
def test_out_that_is_inside_or_holds_the_release_is_refused(where, txt_release, tmp_path, capsys):
    out = {"is": txt_release, "inside": txt_release / "raw", "holds": txt_release.parent}[where]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    err = _refused(capsys, "--release", str(txt_release), "--out", str(out), "--counts", str(tmp_path / "m.json"))
    assert "the release" in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_out_dot_is_refused(txt_release, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    err = _refused(capsys, "--release", str(txt_release), "--out", ".", "--counts", str(tmp_path / "m.json"))
    assert "working folder" in err
    assert (
        work.is_dir()
        and list(work.iterdir()) == []
        and sorted(p.name for p in tmp_path.iterdir()) == ["release", "work"]
    )


def test_out_of_an_earlier_import_is_replaced(txt_release, tmp_path):
    out = tmp_path / "raw"
    import_release(txt_release, out)
    (out / "images" / "stale.jpg").write_bytes(b"from an older import")  # inside the stage's own entries
    assert import_release(txt_release, out)["reviews"] == 2
    assert not (out / "images" / "stale.jpg").exists()


# ---- release files as they come: encodings, odd line breaks, odd JSON -------------------------------------


def test_gbk_release_file_is_read_and_counted(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    (release / "zol_Train_jieba.txt").write_bytes(_txt((TEXT_1, [], "外观手感", "10.0")).encode("gbk"))
    (release / "zol_Test_jieba.txt").write_text(_txt((TEXT_2, [], "屏幕效果", "6.0")), encoding="utf-8")
    counts = import_release(release, tmp_path / "raw")
    assert counts["files_decoded_gb18030"] == 1 and counts["pairs"] == 2
    assert {r["body"] for r in _read(tmp_path / "raw")} == {TEXT_1, TEXT_2}


def test_release_file_in_no_known_encoding_is_one_line(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    (release / "zol_Train_jieba.txt").write_bytes(_txt((TEXT_1, [], "外观手感", "10.0")).encode("utf-8") + b"\xff\n")
    with pytest.raises(UserError, match=r"zol_Train_jieba.txt is neither UTF-8 nor GB18030") as info:
        import_release(release, tmp_path / "raw")
    assert "\n" not in str(info.value) and not (tmp_path / "raw").exists()


def test_line_separator_inside_a_review_stays_in_its_text(tmp_path):
    """U+2028 (and U+0085, form feed) are no line ends of the release: str.splitlines() would cut there."""
    release = tmp_path / "release"
    release.mkdir()
    text = "屏幕 细腻\u2028 性价比\x85 高\x0c 好"
    (release / "zol_Train_jieba.txt").write_text(
        _txt((text, [], "屏幕效果", "6.0"), (TEXT_1, [], "外观手感", "8.0")), encoding="utf-8"
    )
    counts = import_release(release, tmp_path / "raw")
    assert counts["reviews"] == 2 and counts["pairs"] == 2
    assert {r["body"]: r["scores"] for r in _read(tmp_path / "raw")} == {
        text: {"screen": 6.0},
        TEXT_1: {"appearance": 8.0},
    }
    assert len(clean.read_lines(tmp_path / "raw" / "reviews.jsonl")) == 2  # and clean reads it so


def test_crlf_release_file(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    (release / "zol_Train_jieba.txt").write_bytes(
        _txt((TEXT_1, [IMG_A], "外观手感", "10.0")).replace("\n", "\r\n").encode("utf-8")
    )
    import_release(release, tmp_path / "raw")
    assert [(r["body"], r["image_urls"]) for r in _read(tmp_path / "raw")] == [(TEXT_1, [f"img/{IMG_A}"])]


def test_image_list_that_is_no_python_list_is_one_line(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    (release / "zol_Train_jieba.txt").write_text("好看 好看\n{[]: 1}\n外观手感\n10.0\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"zol_Train_jieba.txt:2: the image list .* is not a Python list"):
        import_release(release, tmp_path / "raw")


def test_json_release_odd_files_are_skipped_with_a_reason(json_release, tmp_path, capsys):
    folder = json_release / "multi_jsonData"
    (folder / "2001.json").write_text(json.dumps({"review_data": "好", "img_path": 5, "items_score": {"外观手感": 9}}))
    (folder / "2002.json").write_text(json.dumps({"review_data": "好", "img_path": [["..\\img\\a.jpg"]]}))
    (folder / "2003.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "2004.json").write_text(
        json.dumps({"review_data": "好看", "img_path": [], "items_score": {"音质": 8}}, ensure_ascii=False),
        encoding="gbk",
    )
    counts = import_release(json_release, tmp_path / "raw")
    assert counts["reviews"] == 3 and counts["json_files_rejected"] == 2 and counts["json_files_unreadable"] == 2
    assert counts["files_decoded_gb18030"] == 1
    out = capsys.readouterr().out
    assert "2001.json: img_path must be a string or a list of strings, got int; skipped" in out
    assert "2003.json is not readable JSON" in out
    assert {r["review_id"] for r in _read(tmp_path / "raw")} == {"mz-1001", "mz-1002", "mz-2004"}


@pytest.mark.parametrize("text", ["0", "-3", "many", "1.5", ""])
def test_batch_rows_below_one_or_not_a_number_is_refused_by_the_parser(text: str, capsys):
    with pytest.raises(SystemExit) as exit_info:
        import_multizol.parser().parse_args(["--batch-rows", text])
    assert exit_info.value.code == 2
    assert f"must be a whole number >= 1, got {text!r}" in capsys.readouterr().err


def test_batch_rows_of_one_or_more_is_taken():
    assert import_multizol.parser().parse_args(["--batch-rows", "1"]).batch_rows == 1
    assert import_multizol.parser().parse_args(["--batch-rows", "100000"]).batch_rows == 100_000
