"""Property: any raw review line into `clean` is a pair or a rejected row with a reason; never a traceback,
never a file outside the stage's outputs (Hypothesis, the project's deterministic profile: tests/conftest.py)."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from pipeline import clean
from pipeline.clean import read_lines
from pipeline.records import REASONS, parse_line

PARAMS_YAML = (
    "data:\n  raw: raw\nclean:\n  require_image: false\n  min_text_chars: 2\n  dedupe_same_text: true\n"
    "features:\n  image_size: 32\n  max_image_pixels: 1000000\n"
)
OUTPUTS = {"data/clean/pairs.parquet", "data/clean/rejected.parquet", "metrics/clean.json", "reports/clean_detail.json"}
INPUTS = {"params.yaml", "raw/reviews.jsonl", "raw/images/a.png", "outside.png"}

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["\ud800", "\x00", "9" * 400, "外观手感", "camera"])
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
image_path = st.sampled_from(
    ["a.png", "missing.png", "../outside.png", "/etc/passwd", "a.png\x00", "C:\\x.png", "", ".", "x" * 300]
) | st.text(max_size=10)
image_entry = st.fixed_dictionaries({"path": image_path}, optional={"url": st.none() | st.text(max_size=5)})
aspect = st.sampled_from(["camera", "外观手感", "屏幕效果", "battery", "unknown"]) | st.text(max_size=4)
score = st.integers(-20, 20) | st.floats() | st.sampled_from(["8", "8.5", " 9 ", "好", "nan"]) | json_value
# mostly a plausible record (so the later checks are reached too), with some fields replaced by anything
plausible = st.fixed_dictionaries(
    {
        "review_id": st.sampled_from(["r1", "r2", "r3"]),
        "scores": st.dictionaries(aspect, score, max_size=4),
        "images": st.lists(image_entry, max_size=3),
    },
    optional={
        "product_id": st.sampled_from(["p1", None]),
        "title": st.text(max_size=12),
        "body": st.sampled_from(["拍照很清晰", "ok"]) | st.text(max_size=12),
        "image_urls": st.lists(st.text(max_size=4), max_size=2),
        "release_split": st.dictionaries(aspect, st.sampled_from(["train", "test"]), max_size=2),
        "segmented": st.booleans(),
    },
)
FIELDS = ["review_id", "product_id", "title", "body", "scores", "image_urls", "images", "release_split", "segmented"]
record = st.builds(
    lambda base, odd, dropped: {k: v for k, v in {**base, **odd}.items() if k not in dropped},
    plausible,
    st.dictionaries(st.sampled_from(FIELDS), json_value, max_size=2),
    st.lists(st.sampled_from(FIELDS), max_size=1),
)
raw_line = (
    record.map(json.dumps)
    | record.map(lambda r: json.dumps(r, ensure_ascii=False, allow_nan=True))
    | json_value.map(json.dumps)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)


def _write_raw(root: Path, lines: list[str | bytes]) -> None:
    (root / "raw/images").mkdir(parents=True)
    Image.new("RGB", (4, 4), (1, 2, 3)).save(root / "raw/images/a.png")
    Image.new("RGB", (4, 4), (1, 2, 3)).save(root / "outside.png")
    data = b"\n".join(line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass") for line in lines)
    (root / "raw/reviews.jsonl").write_bytes(data + b"\n")
    (root / "params.yaml").write_text(PARAMS_YAML, encoding="utf-8")


def _run_clean(root: Path) -> tuple[int, str]:
    cwd, err = os.getcwd(), StringIO()
    os.chdir(root)
    try:
        with redirect_stderr(err), redirect_stdout(StringIO()):
            return clean.main([]), err.getvalue()
    finally:
        os.chdir(cwd)


@given(st.lists(raw_line, min_size=1, max_size=6))
def test_any_raw_line_is_a_pair_or_a_rejected_row_with_a_reason(lines):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _write_raw(root, lines)
        code, err = _run_clean(root)
        assert code == 0, err
        files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
        assert files == INPUTS | OUTPUTS  # nothing written anywhere else
        pairs = pq.read_table(root / "data/clean/pairs.parquet").to_pylist()
        rejected = pq.read_table(root / "data/clean/rejected.parquet").to_pylist()
        assert all(r["reason"] in REASONS and r["detail"] for r in rejected)
        kept_ids = {p["review_id"] for p in pairs}
        rejected_lines = {r["line_no"] for r in rejected}
        metrics = json.loads((root / "reports/clean_detail.json").read_text(encoding="utf-8"))
        read = read_lines(root / "raw/reviews.jsonl")
        assert metrics["records_in"] + metrics["blank_lines"] == len(read)
        assert json.loads((root / "metrics/clean.json").read_text(encoding="utf-8")) == {
            "reviews": metrics["reviews_out"],
            "pairs": len(pairs),
            "rejected": len(rejected),
        }
        for line_no, line in enumerate(read, start=1):
            if line_no in rejected_lines:
                continue
            record, _ = parse_line(line)  # not rejected: a readable object or blank
            assert record is None or record["review_id"] in kept_ids, (line_no, line)
