"""The evaluate stage's reports beside its metrics: reports/per_aspect.csv, reports/predictions.parquet, the
confusion and learning-curve plots, plots/confusion.csv (DVC's plot) and the attention pages of reports/explain."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from common.aspects import aspect_zh
from common.atomic import atomic_path, new_staging_dir, replace_dir, write_text
from model.data import ImageFeatures, PairDataset
from model.explain import (
    AspectView,
    ReviewView,
    attention_lists,
    forward_with_attention,
    index_entry,
    write_index,
    write_review,
)
from model.labels import LabelMap
from model.metrics import confusion
from model.plots import confusion_png, learning_curve_png
from model.vocab import UNK_ID, Vocab
from pipeline.io import write_table

REPORTS_DIR = Path("reports")
EXPLAIN_DIR = REPORTS_DIR / "explain"
CONFUSION_PLOT = Path("plots/confusion.csv")
PREDICTIONS_SCHEMA = pa.schema(
    [
        ("review_id", pa.string()),
        ("aspect", pa.string()),
        ("score", pa.int8()),
        ("predicted_score", pa.int8()),
        ("label", pa.int8()),
        ("predicted_label", pa.int8()),
        ("probabilities", pa.list_(pa.float32())),
    ]
)


def write_reports(
    frame: pd.DataFrame, probs: np.ndarray, metrics: dict, no_image: dict, majority: dict, ckpt: dict, labels: LabelMap
) -> None:
    rows = [
        {
            "aspect": a,
            "pairs": m["pairs"],
            "accuracy": round(m["accuracy"], 6),
            "macro_f1": round(m["macro_f1"], 6),
            "weighted_f1": round(m["weighted_f1"], 6),
            "no_image_accuracy": round(no_image[a]["accuracy"], 6),
            "no_image_macro_f1": round(no_image[a]["macro_f1"], 6),
            "majority_accuracy": round(majority[a]["accuracy"], 6),
        }
        for a, m in metrics["per_aspect"].items()
    ]
    REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    with atomic_path(REPORTS_DIR / "per_aspect.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    predictions = frame.assign(probabilities=list(probs)).sort_values(["review_id", "aspect"], kind="stable")
    predictions["score"] = predictions["score"].astype(np.int8)
    write_table(
        pa.Table.from_pandas(predictions[PREDICTIONS_SCHEMA.names], schema=PREDICTIONS_SCHEMA, preserve_index=False),
        REPORTS_DIR / "predictions.parquet",
    )
    names = [str(s) for s in labels.class_scores]
    confusion_png(
        confusion(frame["label"], frame["predicted_label"], labels.num_classes),
        names,
        REPORTS_DIR / "confusion.png",
        f"test confusion (accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f})",
    )
    learning_curve_png(ckpt["history"], REPORTS_DIR / "learning_curve.png", int(ckpt["epoch"]))  # empty for linear
    # the confusion matrix as DVC draws it (`dvc plots show` / `dvc plots diff`): one row per test pair
    scores = np.asarray(labels.class_scores)
    pd.DataFrame(
        {
            "actual": scores[frame["label"].to_numpy()],
            "predicted": scores[frame["predicted_label"].to_numpy()],
            "review_id": frame["review_id"],
            "aspect": frame["aspect"],
        }
    ).sort_values(["review_id", "aspect"], kind="stable")[["actual", "predicted"]].pipe(
        lambda rows: write_text(rows.to_csv(index=False, lineterminator="\n"), CONFUSION_PLOT)
    )


def explain_selection(frame: pd.DataFrame) -> list[str]:
    """Per aspect, the first test review (by id) the model scored right and the first it scored wrong."""
    chosen: set[str] = set()
    for _, group in frame.groupby("aspect", sort=True):
        correct = group["label"] == group["predicted_label"]
        for hits in (group[correct], group[~correct]):
            if len(hits):
                chosen.add(str(hits["review_id"].min()))
    return sorted(chosen)


@dataclass
class ExplainInputs:
    """What the attention pages need beside the scored pairs: the chosen reviews' words and image paths (their first
    pair's: model/splits.py first_pairs), the test dataset, the features' usable paths and the vocabulary."""

    texts: dict[str, dict]  # review id -> {"tokens": ..., "image_paths": ...}
    dataset: PairDataset
    features: ImageFeatures
    vocab: Vocab


def write_explain_pages(
    frame: pd.DataFrame,
    pages: ExplainInputs,
    model: torch.nn.Module,
    labels: LabelMap,
    device: torch.device,
    out_dir: Path,
) -> None:
    """reports/explain/: attention pages (model.explain) of a few test reviews, right and wrong, and index.html."""
    config, usable_index, vocab = model.config, pages.features.index, pages.vocab
    staging = new_staging_dir(out_dir)
    entries = []
    for review_id in explain_selection(frame):
        rows = frame.index[frame["review_id"] == review_id].tolist()  # frame rows = dataset items
        probs, text_att, image_att = forward_with_attention(model, pages.dataset.collate(rows)[0], device)
        tokens = list(pages.texts[review_id]["tokens"])
        paths = pages.texts[review_id]["image_paths"]
        words = tokens[: config.max_text_len]
        usable = [p for p in paths if p in usable_index]
        read = usable[: config.max_images]
        not_read = [(p, "unusable (features stage)") for p in paths if p not in usable_index]
        not_read += [(p, f"past the model's {config.max_images} images") for p in usable[config.max_images :]]
        aspects = [
            AspectView(
                str(frame.at[row, "aspect"]),
                aspect_zh(str(frame.at[row, "aspect"])),
                int(frame.at[row, "predicted_score"]),
                {s: float(p) for s, p in zip(labels.class_scores, probs[n], strict=False)},
                int(frame.at[row, "score"]),
                attention_lists(text_att[n], len(words)),
                attention_lists(image_att[n], len(read)),
            )
            for n, row in enumerate(rows)
        ]
        view = ReviewView(
            review_id,
            words,
            [vocab.id(w) == UNK_ID for w in words],
            len(tokens) - len(words),
            read,
            [Path(p) for p in read],
            not_read,
            aspects,
        )
        write_review(view, staging)
        entries.append(index_entry(view))
    write_index(entries, staging, "Test reviews: what the model attended to (per aspect one scored right, one wrong)")
    replace_dir(staging, out_dir)


def write_no_explain_pages(family: str) -> None:
    """The output folder always exists (a DVC output); only MIMN returns its attention."""
    staging = new_staging_dir(EXPLAIN_DIR)
    write_index([], staging, f"No attention pages: model.family {family} does not return its attention")
    replace_dir(staging, EXPLAIN_DIR)
