"""Arrow schemas of the Parquet files the data stages write (docs/data-contract.md describes each column)."""

from __future__ import annotations

import pyarrow as pa

FEATURE_DIM = 2048
SPLITS: tuple[str, ...] = ("train", "dev", "test")

# data/clean/pairs.parquet and data/splits/{train,dev,test}.parquet: one row per (review, scored aspect)
PAIRS_SCHEMA = pa.schema(
    [
        ("review_id", pa.string()),
        ("product_id", pa.string()),
        ("product_name", pa.string()),
        ("brand", pa.string()),
        ("aspect", pa.string()),  # canonical key (common.aspects), or an unknown site label as-is
        ("aspect_zh", pa.string()),  # the paper's Chinese aspect name
        ("score", pa.int8()),  # 1..10 (editors' decimals rounded half up)
        ("label", pa.int8()),  # class index: score - 1 (10 classes, as the paper states)
        ("text", pa.string()),  # cleaned title, pros, cons, summary, body joined with newlines
        ("image_paths", pa.list_(pa.string())),  # downloaded images in page order, relative to the repo root
        ("n_images", pa.int16()),
        ("release_split", pa.string()),  # the split a release put this pair in (Multi-ZOL), else null
        ("presegmented", pa.bool_()),  # text came already segmented (space-separated words, Multi-ZOL's txt files)
    ]
)

# data/segmented/{train,dev,test}.parquet
SEGMENTED_SCHEMA = PAIRS_SCHEMA.append(pa.field("tokens", pa.list_(pa.string()))).append(
    pa.field("aspect_tokens", pa.list_(pa.string()))
)

# data/clean/rejected.parquet: every dropped record or pair, with why
REJECTED_SCHEMA = pa.schema(
    [
        ("line_no", pa.int64()),  # 1-based line in reviews.jsonl
        ("review_id", pa.string()),  # null when the line could not be parsed
        ("aspect", pa.string()),  # null when the whole record was dropped
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw", pa.string()),  # the offending JSON line (whole record) or the score value
    ]
)

# data/features/images.parquet: one row per image path the splits reference
FEATURES_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),  # sha256 of the file's bytes (null when the file is missing)
        ("path", pa.string()),  # as in the splits' image_paths
        ("ok", pa.bool_()),
        ("error", pa.string()),  # null, or why the image could not be used
        ("feature", pa.list_(pa.float32(), FEATURE_DIM)),  # zeros when ok is false
    ]
)

PAIR_SORT_KEY: list[str] = ["review_id", "aspect"]
