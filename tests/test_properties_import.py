"""Property: any release txt or JSON record into the Multi-ZOL import gives raw records or a one-line error;
never a traceback, never a file outside --out (and its --counts), never the earlier import lost on an error."""

from __future__ import annotations

import json
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pipeline import import_multizol

EARLIER = b'{"review_id": "from an earlier import"}\n'
# text a release file can hold: any character but a lone surrogate, which no encoding writes
line_text = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=12)
image_line = line_text | st.lists(
    st.sampled_from(["..\\img\\a.jpg", "http_undefined", "../img/a.jpg", "", "a\x00b", "x" * 300]) | line_text,
    max_size=3,
).map(repr)
aspect_line = st.sampled_from(["外观手感", "拍照效果", "音质"]) | line_text
score_line = st.sampled_from(["10.0", "8", "nan", "inf", "-1e400", "1_0"]) | st.floats().map(str) | line_text
txt_group = st.tuples(line_text, image_line, aspect_line, score_line)
json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
json_record = (
    st.fixed_dictionaries(
        {},
        optional={
            "review_data": st.text(max_size=10) | json_value,
            "img_path": st.lists(
                st.sampled_from(["..\\img\\a.jpg", "http_undefined"]) | st.text(max_size=5), max_size=2
            )
            | json_value,
            "items_score": st.dictionaries(
                st.sampled_from(["外观手感", "屏幕效果"]) | st.text(max_size=3), json_value, max_size=3
            )
            | json_value,
        },
    )
    | json_value
)


def _import(root: Path) -> tuple[int, str]:
    out, err = StringIO(), StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        code = import_multizol.main(
            ["--release", str(root / "release"), "--out", str(root / "raw"), "--counts", str(root / "counts.json")]
        )
    return code, err.getvalue()


def _earlier_import(root: Path) -> None:
    (root / "raw/images").mkdir(parents=True)
    (root / "raw/reviews.jsonl").write_bytes(EARLIER)


def _tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def _check_outcome(root: Path, release_before: list[str], code: int, err: str) -> list[dict]:
    """One line of error and the earlier import intact, or the new records; files only where they belong."""
    assert _tree(root / "release") == release_before
    if code != 0:
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        assert (root / "raw/reviews.jsonl").read_bytes() == EARLIER
        assert sorted(p.name for p in root.iterdir()) == ["raw", "release"]
        return []
    assert sorted(p.name for p in root.iterdir()) == ["counts.json", "raw", "release"]
    assert sorted(p.name for p in (root / "raw").iterdir()) == ["images", "reviews.jsonl"]
    lines = (root / "raw/reviews.jsonl").read_text(encoding="utf-8").split("\n")
    return [json.loads(line) for line in lines if line]


@given(st.lists(txt_group, min_size=1, max_size=5), st.sampled_from(["utf-8", "gb18030"]), st.booleans())
def test_any_txt_release_is_records_or_one_line(groups, encoding, crlf):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "release/img").mkdir(parents=True)
        (root / "release/img/a.jpg").write_bytes(b"an image")
        text = "".join(f"{t}\n{i}\n{a}\n{s}\n" for t, i, a, s in groups)
        (root / "release/zol_Train_jieba.txt").write_bytes(
            text.replace("\n", "\r\n" if crlf else "\n").encode(encoding)
        )
        _earlier_import(root)
        before = _tree(root / "release")
        records = _check_outcome(root, before, *_import(root))
        assert sum(len(r["scores"]) for r in records) <= len(groups)


@given(st.lists(json_record, min_size=1, max_size=4))
def test_any_json_release_record_is_a_record_or_skipped_with_a_reason(datas):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "release/multi_jsonData").mkdir(parents=True)
        for index, data in enumerate(datas):
            (root / f"release/multi_jsonData/{index}.json").write_text(json.dumps(data), encoding="utf-8")
        _earlier_import(root)
        before = _tree(root / "release")
        code, err = _import(root)
        records = _check_outcome(root, before, code, err)
        counts = json.loads((root / "counts.json").read_text(encoding="utf-8"))
        assert code == 0 and len(records) == counts["reviews"]
        assert counts["reviews"] + counts["json_files_unreadable"] + counts["json_files_rejected"] == len(datas)
