"""bench/bench_scale.py at a small size: a release of real-looking lines copied twice goes through the real
import, clean, split and segment, each in its own process, and every stage is reported with its memory and time."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_scale", REPO / "bench" / "bench_scale.py")
bench_scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_scale)  # bench/ is scripts, not an installed package

PAIRS = [
    ("屏幕 很 清晰 ， 拍照 也 不错", "['..\\\\img\\\\a.jpg']", "屏幕效果", "8.0"),
    ("屏幕 很 清晰 ， 拍照 也 不错", "['..\\\\img\\\\a.jpg']", "拍照效果", "10.0"),
    ("电池 不 耐用 ， 发热 严重", "[]", "电池续航", "2.0"),
    ("电池 不 耐用 ， 发热 严重", "[]", "外观手感", "6.0"),
    ("性价比 高 ， 运行 流畅", "[]", "运行速度", "8.0"),
]


def _release(folder: Path) -> Path:
    folder.mkdir()
    for index, name in enumerate(bench_scale.SPLIT_FILES):
        groups = PAIRS if index == 0 else PAIRS[index : index + 2]
        text = "".join(f"{t}\n{i}\n{a}\n{s}\n" for t, i, a, s in groups)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_every_stage_measured_on_the_copies(tmp_path, capsys):
    release = _release(tmp_path / "release")
    out = tmp_path / "scale.json"
    assert (
        bench_scale.main(["--scales", "2", "--release", str(release), "--out", str(out), "--max-other-cpu", "1e9"]) == 0
    )
    report = json.loads(out.read_text(encoding="utf-8"))
    (result,) = report["results"]
    assert result["copies"] == 2 and result["pairs"] == 2 * (len(PAIRS) + 2 + 2)
    for stage in bench_scale.STAGES:
        measured = result[stage]
        assert measured["peak_rss_mb"] > 20 and measured["seconds"] > 0 and measured["loaded"] is False
        assert measured["other_cpu_cores"] >= 0 and measured["load_1min_before"] >= 0
        assert measured["us_per_pair"] == round(measured["seconds"] / result["pairs"] * 1e6, 1)
    assert "2 reviews" not in result["import"]["summary"] and "6 reviews" in result["import"]["summary"]
    assert report["ratios"] == {} and "| segment |" in capsys.readouterr().out


def test_ratios_are_of_the_two_largest_scales_and_carry_the_load_flag():
    def scale(copies: int, rss: float, us: float, loaded: bool) -> dict:
        return {"copies": copies, "segment": {"peak_rss_mb": rss, "us_per_pair": us, "loaded": loaded}}

    results = [scale(32, 300.0, 90.0, False), scale(1, 100.0, 200.0, False), scale(8, 200.0, 100.0, True)]
    assert bench_scale.ratios(results) == {
        "of": [8, 32],
        "segment": {"rss": 1.5, "time_per_pair": 0.9, "loaded": True},
    }
