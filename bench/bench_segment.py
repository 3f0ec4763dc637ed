"""Segmentation throughput (characters/s) with one process and with all cores, on generated review-like text.

    python bench/bench_segment.py [--mb 3]

Prints the figures and writes them to bench/results/segment.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.segment import SegmentParams, segment_texts  # noqa: E402

PHRASES = [
    "骁龙835处理器性能强劲",
    "全面屏很漂亮",
    "拍照效果非常好",
    "夜景有点糊",
    "续航一般，一天一充",
    "4000毫安电池",
    "快充很快",
    "手感不错",
    "颜值高",
    "玩游戏有点发热",
    "王者荣耀不卡顿",
    "面部识别速度快",
    "指纹识别偶尔失灵",
    "性价比很高",
    "屏幕色彩鲜艳",
    "系统流畅",
    "信号比较差",
    "外放音质一般",
    "双摄虚化自然",
    "机身有点重",
    "售后服务态度好",
    "京东物流很快",
    "麒麟970发热控制得不错",
    "OPPO R15的刘海屏习惯了就好",
    "vivo X21屏下指纹很新颖",
]


def review_texts(megabytes: float, seed: int = 0) -> list[str]:
    """Review-like texts of 5..40 phrases joined with Chinese punctuation, about `megabytes` MB of UTF-8."""
    rng = random.Random(seed)
    texts, size = [], 0
    while size < megabytes * 1_000_000:
        text = "，".join(rng.choice(PHRASES) for _ in range(rng.randint(5, 40))) + "。"
        texts.append(text)
        size += len(text.encode("utf-8"))
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=3.0, help="MB of generated text (default 3)")
    args = parser.parse_args(argv)
    os.chdir(REPO)
    params = SegmentParams(
        user_dict="data/lexicon/user_dict.txt",
        stopwords="data/lexicon/stopwords.txt",
        remove_punctuation=True,
        remove_stopwords=True,
    )
    texts = review_texts(args.mb)
    chars = sum(len(t) for t in texts)
    cores = os.cpu_count() or 1
    results = {
        "texts": len(texts),
        "characters": chars,
        "megabytes": round(sum(len(t.encode()) for t in texts) / 1e6, 2),
        "cores": cores,
    }
    segment_texts(texts[:1], [False], params)  # load the dictionaries outside the timings (forked workers inherit them)
    outputs = {}
    for label, processes in (("one_process", 1), ("all_cores", cores)):
        started = time.perf_counter()
        outputs[label] = segment_texts(texts, [False] * len(texts), params, processes=processes)
        seconds = time.perf_counter() - started
        results[label] = {"processes": processes, "seconds": round(seconds, 2), "chars_per_s": round(chars / seconds)}
        print(
            f"segment {label}: {processes} process(es), {chars} chars in {seconds:.2f} s "
            f"= {chars / seconds:,.0f} chars/s"
        )
    results["speedup"] = round(results["one_process"]["seconds"] / results["all_cores"]["seconds"], 2)
    results["identical_output"] = outputs["one_process"] == outputs["all_cores"]
    print(f"speed-up with {cores} cores: {results['speedup']}x; identical output: {results['identical_output']}")
    out = REPO / "bench/results/segment.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
