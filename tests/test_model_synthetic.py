"""Tiny synthetic segmented splits and image features, written with the pipeline's exact schemas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from common.aspects import ASPECT_ZH
from pipeline.io import write_frame
from pipeline.schema import FEATURE_DIM, FEATURES_SCHEMA, SEGMENTED_SCHEMA

# how jieba (with the project's user dictionary or without) might segment each aspect name
ASPECT_TOKENS = {
    "price_performance": ["性价比"],
    "performance": ["性能", "配置"],
    "battery": ["电池", "续航"],
    "appearance": ["外观", "手感"],
    "camera": ["拍照", "效果"],
    "screen": ["屏幕", "效果"],
}
SENTIMENT_WORDS = {score: f"词{score}" for score in range(1, 11)}  # one word that gives the score away
FILLER = ["手机", "不错", "用", "了", "一个", "月", "系统", "流畅", "发热", "信号"]


def make_split(
    n_reviews: int,
    seed: int,
    aspects: list[str],
    prefix: str,
    n_image_paths: int = 12,
    text_len: tuple[int, int] = (3, 25),
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_reviews):
        n_images = int(rng.integers(0, 7))  # 0 (no image) .. 6 (more than K = 5)
        paths = [f"data/raw/images/full/img{int(rng.integers(0, n_image_paths)):03d}.jpg" for _ in range(n_images)]
        for aspect in aspects:
            score = int(rng.integers(1, 11))
            length = int(rng.integers(*text_len))
            tokens = [FILLER[int(i)] for i in rng.integers(0, len(FILLER), length)]
            tokens.insert(int(rng.integers(0, length)), SENTIMENT_WORDS[score])
            rows.append(
                {
                    "review_id": f"{prefix}{r:04d}",
                    "product_id": "p1",
                    "product_name": "手机",
                    "brand": "b",
                    "aspect": aspect,
                    "aspect_zh": ASPECT_ZH[aspect],
                    "score": score,
                    "label": score - 1,
                    "text": "".join(tokens),
                    "image_paths": paths,
                    "n_images": len(paths),
                    "release_split": None,
                    "presegmented": False,
                    "tokens": tokens,
                    "aspect_tokens": ASPECT_TOKENS[aspect],
                }
            )
    return pd.DataFrame(rows).astype({"score": "int8", "label": "int8", "n_images": "int16"})


def make_features(n_image_paths: int = 12, seed: int = 0, broken: tuple[int, ...] = (3,)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_image_paths):
        ok = i not in broken
        rows.append(
            {
                "image_id": f"{i:064x}",
                "path": f"data/raw/images/full/img{i:03d}.jpg",
                "ok": ok,
                "error": None if ok else "cannot identify image file",
                "feature": (rng.normal(0, 50, FEATURE_DIM) if ok else np.zeros(FEATURE_DIM)).astype(np.float32),
            }
        )
    return pd.DataFrame(rows)


def write_dataset(
    root: Path,
    n_train: int = 24,
    n_dev: int = 6,
    n_test: int = 6,
    seed: int = 0,
    text_len: tuple[int, int] = (3, 25),
    n_image_paths: int = 12,
) -> None:
    """data/segmented/{train,dev,test}.parquet and data/features/images.parquet under root; test has an aspect
    (screen) that train lacks, so its tokens must still get vocabulary ids."""
    train_aspects = ["price_performance", "performance", "battery", "appearance", "camera"]
    splits = {
        "train": make_split(n_train, seed, train_aspects, "a", n_image_paths, text_len),
        "dev": make_split(n_dev, seed + 1, train_aspects, "b", n_image_paths, text_len),
        "test": make_split(n_test, seed + 2, [*train_aspects, "screen"], "c", n_image_paths, text_len),
    }
    for name, frame in splits.items():
        write_frame(frame, root / "data" / "segmented" / f"{name}.parquet", SEGMENTED_SCHEMA)
    write_frame(make_features(n_image_paths, seed=seed), root / "data" / "features" / "images.parquet", FEATURES_SCHEMA)


def test_synthetic_files_match_the_pipeline_schemas(tmp_path):
    write_dataset(tmp_path)
    assert pq.read_schema(tmp_path / "data/segmented/train.parquet").remove_metadata() == SEGMENTED_SCHEMA
    assert pq.read_schema(tmp_path / "data/features/images.parquet").remove_metadata() == FEATURES_SCHEMA
