"""Stage `evaluate`: score models/mimn.pt on data/segmented/test.parquet; metrics, reports and predictions.

    python -m model.evaluate [--params params.yaml]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch.utils.data import DataLoader

from model.config import MIMNConfig
from model.data import ImageFeatures, PairDataset, check_feature_coverage, read_features, read_split
from model.explain import (AspectView, ReviewView, attention_lists, forward_with_attention, index_entry, write_index,
                           write_review)
from model.labels import LabelMap
from model.loop import predict
from model.metrics import PAPER_F1_NOTE, classification_metrics, confusion, per_class_report
from model.mimn import MIMN
from model.plots import confusion_png, learning_curve_png
from model.train import FEATURES_PATH, MODEL_PATH, SEGMENTED_DIR, choose_device, configure_torch
from model.vocab import UNK_ID, Vocab
from common.errors import UserError, cli_entry
from common.aspects import aspect_zh
from common.atomic import atomic_path, new_staging_dir, replace_dir, write_json
from pipeline.io import write_table
from common.params import load_params

TEST_PATH = SEGMENTED_DIR / "test.parquet"
METRICS_PATH = Path("metrics/test.json")
REPORTS_DIR = Path("reports")
EXPLAIN_DIR = REPORTS_DIR / "explain"
PREDICTIONS_SCHEMA = pa.schema([
    ("review_id", pa.string()), ("aspect", pa.string()), ("score", pa.int8()), ("predicted_score", pa.int8()),
    ("label", pa.int8()), ("predicted_label", pa.int8()), ("probabilities", pa.list_(pa.float32())),
])


def load_checkpoint(path: str | Path) -> tuple[MIMN, dict]:
    """The trained model (eval mode, CPU) and the checkpoint dict, loaded with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run the train stage first (dvc repro train)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model = MIMN(MIMNConfig(**ckpt["config"]))
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} is not a checkpoint of this model ({exc}); re-run dvc repro train") from exc
    return model.eval(), ckpt


def without_images(batch):
    """The image-memory ablation: every pair's visual memory is masked out."""
    inputs, targets = batch
    return {**inputs, "image_lengths": torch.zeros_like(inputs["image_lengths"])}, targets


def group_metrics(frame: pd.DataFrame, truth: str, pred: str) -> dict[str, dict[str, float]]:
    return {aspect: classification_metrics(g[truth], g[pred]) for aspect, g in frame.groupby("aspect", sort=True)}


def run(train_params: dict) -> dict:
    started = time.perf_counter()
    device = choose_device(str(train_params.get("device", "auto")))
    configure_torch(device, int(train_params.get("num_threads", 0)))
    model, ckpt = load_checkpoint(MODEL_PATH)
    config, labels, vocab = model.config, LabelMap.from_dict(ckpt["labels"]), Vocab(tuple(ckpt["vocab"]))
    frame = read_split(TEST_PATH)
    if frame.empty:
        raise UserError(f"{TEST_PATH} has no rows; check the split stage's output")
    features = read_features(FEATURES_PATH)
    check_feature_coverage(frame, features, TEST_PATH)
    dataset = PairDataset(frame, vocab, labels, features, ckpt["feature_norm"]["mean"].numpy(),
                          ckpt["feature_norm"]["std"].numpy(), config.max_text_len, config.max_aspect_len,
                          config.max_images)
    batch_size = int(train_params.get("batch_size", 128))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=dataset.collate)
    ablation = DataLoader(dataset, batch_size=batch_size, shuffle=False,
                          collate_fn=lambda idx: without_images(dataset.collate(idx)))
    model.to(device)
    probs, targets, _ = predict(model, loader, device)
    ablation_probs, _, _ = predict(model, ablation, device)

    majority = int(np.argmax(ckpt["train_class_counts"]))
    frame = frame.assign(label=targets.astype(np.int8), predicted_label=probs.argmax(-1).astype(np.int8),
                         no_image_label=ablation_probs.argmax(-1), majority_label=majority,
                         n_usable_images=[len(r) for r in dataset.image_rows])
    frame["predicted_score"] = labels.classes_to_scores(frame["predicted_label"]).astype(np.int8)
    names = {c: str(s) for c, s in enumerate(labels.class_scores)}

    overall = classification_metrics(frame["label"], frame["predicted_label"])
    no_image = classification_metrics(frame["label"], frame["no_image_label"])
    per_aspect = group_metrics(frame, "label", "predicted_label")
    per_aspect_no_image = group_metrics(frame, "label", "no_image_label")
    per_aspect_majority = group_metrics(frame, "label", "majority_label")
    metrics = {
        **overall,
        "note": PAPER_F1_NOTE,
        "pairs": len(frame),
        "pairs_without_usable_image": int((frame["n_usable_images"] == 0).sum()),
        "num_classes": labels.num_classes,
        "class_scores": list(labels.class_scores),
        "checkpoint_epoch": int(ckpt["epoch"]),
        "per_aspect": {a: {"pairs": int((frame["aspect"] == a).sum()), **m} for a, m in per_aspect.items()},
        "per_class": per_class_report(frame["label"], frame["predicted_label"], names),
        "majority_baseline": {"score": labels.class_scores[majority],
                              **classification_metrics(frame["label"], frame["majority_label"])},
        "ablation_no_images": {**{k: no_image[k] for k in ("accuracy", "macro_f1")},
                               "per_aspect": {a: {k: m[k] for k in ("accuracy", "macro_f1")}
                                              for a, m in per_aspect_no_image.items()}},
    }
    write_json(metrics, METRICS_PATH)
    write_reports(frame, probs, metrics, per_aspect_no_image, per_aspect_majority, ckpt, labels)
    write_explain_pages(frame, dataset, features, model, vocab, labels, device, EXPLAIN_DIR)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    return metrics


def write_reports(frame: pd.DataFrame, probs: np.ndarray, metrics: dict, no_image: dict, majority: dict,
                  ckpt: dict, labels: LabelMap) -> None:
    rows = [{"aspect": a, "pairs": m["pairs"], "accuracy": round(m["accuracy"], 6), "macro_f1": round(m["macro_f1"], 6),
             "weighted_f1": round(m["weighted_f1"], 6), "no_image_accuracy": round(no_image[a]["accuracy"], 6),
             "no_image_macro_f1": round(no_image[a]["macro_f1"], 6),
             "majority_accuracy": round(majority[a]["accuracy"], 6)} for a, m in metrics["per_aspect"].items()]
    REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    with atomic_path(REPORTS_DIR / "per_aspect.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    predictions = frame.assign(probabilities=list(probs)).sort_values(["review_id", "aspect"], kind="stable")
    predictions["score"] = predictions["score"].astype(np.int8)
    write_table(pa.Table.from_pandas(predictions[PREDICTIONS_SCHEMA.names], schema=PREDICTIONS_SCHEMA,
                                     preserve_index=False), REPORTS_DIR / "predictions.parquet")
    names = [str(s) for s in labels.class_scores]
    confusion_png(confusion(frame["label"], frame["predicted_label"], labels.num_classes), names,
                  REPORTS_DIR / "confusion.png",
                  f"test confusion (accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f})")
    learning_curve_png(ckpt["history"], REPORTS_DIR / "learning_curve.png", int(ckpt["epoch"]))


def explain_selection(frame: pd.DataFrame) -> list[str]:
    """Per aspect, the first test review (by id) the model scored right and the first it scored wrong."""
    chosen: set[str] = set()
    for _, group in frame.groupby("aspect", sort=True):
        correct = group["label"] == group["predicted_label"]
        for hits in (group[correct], group[~correct]):
            if len(hits):
                chosen.add(str(hits["review_id"].min()))
    return sorted(chosen)


def write_explain_pages(frame: pd.DataFrame, dataset: PairDataset, features: ImageFeatures, model: MIMN, vocab: Vocab,
                        labels: LabelMap, device: torch.device, out_dir: Path) -> None:
    """reports/explain/: attention pages (model.explain) of a handful of test reviews, right and wrong, and index.html."""
    config = model.config
    staging = new_staging_dir(out_dir)
    entries = []
    for review_id in explain_selection(frame):
        rows = frame.index[frame["review_id"] == review_id].tolist()   # frame rows = dataset items
        probs, text_att, image_att = forward_with_attention(model, dataset.collate(rows)[0], device)
        tokens = list(frame.at[rows[0], "tokens"])
        words = tokens[:config.max_text_len]
        usable = [p for p in frame.at[rows[0], "image_paths"] if p in features.index]
        read = usable[:config.max_images]
        not_read = [(p, "unusable (features stage)") for p in frame.at[rows[0], "image_paths"] if p not in features.index]
        not_read += [(p, f"past the model's {config.max_images} images") for p in usable[config.max_images:]]
        aspects = [AspectView(str(frame.at[row, "aspect"]), aspect_zh(str(frame.at[row, "aspect"])),
                              int(frame.at[row, "predicted_score"]),
                              {s: float(p) for s, p in zip(labels.class_scores, probs[n])}, int(frame.at[row, "score"]),
                              attention_lists(text_att[n], len(words)), attention_lists(image_att[n], len(read)))
                   for n, row in enumerate(rows)]
        view = ReviewView(review_id, words, [vocab.id(w) == UNK_ID for w in words], len(tokens) - len(words), read,
                          [Path(p) for p in read], not_read, aspects)
        write_review(view, staging)
        entries.append(index_entry(view))
    write_index(entries, staging, "Test reviews: what the model attended to (per aspect one scored right, one wrong)")
    replace_dir(staging, out_dir)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="parameter file (reads train.device, batch_size)")
    args = parser.parse_args(argv)
    metrics = run(load_params("train", args.params))
    print(f"evaluate: {metrics['pairs']} test pairs ({metrics['pairs_without_usable_image']} without a usable image): "
          f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, weighted-F1 "
          f"{metrics['weighted_f1']:.4f}; majority baseline accuracy {metrics['majority_baseline']['accuracy']:.4f}; "
          f"without images accuracy {metrics['ablation_no_images']['accuracy']:.4f}; {metrics['seconds']:.1f}s "
          f"-> {METRICS_PATH}, {REPORTS_DIR}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
