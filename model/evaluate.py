"""Stage `evaluate`: score models/mimn.pt on data/segmented/test.parquet; metrics, reports and predictions.

    python -m model.evaluate [--params params.yaml]

metrics/test.json holds the headline (accuracy, weighted_f1, macro_f1, pairs, pairs_without_usable_image);
reports/test_detail.json everything: per aspect, per class, over seeds, the baselines and the no-image ablation.
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

from common.aspects import aspect_zh
from common.atomic import atomic_path, new_staging_dir, replace_dir, write_text
from common.errors import UserError, cli_entry
from common.metrics import detail_path, write_metrics
from common.params import load_params
from common.runlog import write_run_log
from model.checkpoint import load_checkpoint
from model.data import ImageFeatures, PairDataset, check_feature_coverage, read_features, read_split
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
from model.linear import LinearModel, fit_linear
from model.loop import predict
from model.metrics import PAPER_F1_NOTE, classification_metrics, confusion, per_class_report
from model.plots import confusion_png, learning_curve_png
from model.sampler import ordered_batches, restore_order
from model.train import FEATURES_PATH, MODEL_PATH, SEGMENTED_DIR, choose_device, configure_torch
from model.vocab import UNK_ID, Vocab
from pipeline.io import write_table

TEST_PATH = SEGMENTED_DIR / "test.parquet"
METRICS_PATH = Path("metrics/test.json")
DETAIL_PATH = detail_path("test")
HEADLINE = ("accuracy", "weighted_f1", "macro_f1", "pairs", "pairs_without_usable_image")
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


def without_images(batch):
    """The image-memory ablation: every pair's visual memory is masked out."""
    inputs, targets = batch
    return {**inputs, "image_lengths": torch.zeros_like(inputs["image_lengths"])}, targets


def group_metrics(frame: pd.DataFrame, truth: str, pred: str) -> dict[str, dict[str, float]]:
    return {aspect: classification_metrics(g[truth], g[pred]) for aspect, g in frame.groupby("aspect", sort=True)}


def mimn_probabilities(
    model: torch.nn.Module, dataset: PairDataset, batch_size: int, device: torch.device, images: bool = True
) -> np.ndarray:
    """(n, C) probabilities in the dataset's order; batches sorted by length (little padding)."""
    batches = ordered_batches([len(t) for t in dataset.text], batch_size)
    collate = dataset.collate if images else (lambda idx: without_images(dataset.collate(idx)))
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate)
    model.to(device)
    probs, _, _ = predict(model, loader, device)
    return restore_order(probs, batches)


def summary(values: list[dict]) -> dict:
    """mean, std (population, over seeds) and the values of accuracy, macro-F1 and weighted-F1."""
    out = {}
    for key in ("accuracy", "macro_f1", "weighted_f1"):
        xs = np.array([v[key] for v in values], dtype=np.float64)
        out[key] = {"mean": float(xs.mean()), "std": float(xs.std()), "values": [float(x) for x in xs]}
    return out


def linear_baseline(labels: LabelMap, test: pd.DataFrame, y_test: np.ndarray, params: dict, ckpt: dict) -> dict:
    """The linear baseline, fitted on train with its C chosen on dev: always reported. The train stage already
    fitted it with the same params when the model is the baseline or starts its wide path from it; else fit here."""
    fitted = ckpt.get("linear") if ckpt.get("family") == "linear" else ckpt.get("linear_baseline")
    if fitted is not None:
        model = LinearModel.from_checkpoint(fitted)
    else:
        train, dev = read_split(SEGMENTED_DIR / "train.parquet"), read_split(SEGMENTED_DIR / "dev.parquet")
        model, _ = fit_linear(
            train,
            labels.scores_to_classes(train["score"]),
            dev,
            labels.scores_to_classes(dev["score"]),
            labels.num_classes,
            params["model"]["linear_c"],
            params["train"]["select_metric"],
            int(params["train"]["seed"]),
        )
    return {"c": model.c, **classification_metrics(y_test, model.predict_proba(test).argmax(1))}


def run(train_params: dict) -> dict:
    started = time.perf_counter()
    device = choose_device(str(train_params.get("device", "auto")))
    configure_torch(device, int(train_params.get("num_threads", 0)))
    model, ckpt = load_checkpoint(MODEL_PATH, for_evaluation=True)
    labels = LabelMap.from_dict(ckpt["labels"])
    frame = read_split(TEST_PATH)
    if frame.empty:
        raise UserError(f"{TEST_PATH} has no rows; check the split stage's output")
    targets = labels.scores_to_classes(frame["score"])
    batch_size = int(train_params.get("batch_size", 128))
    seeds_metrics = []
    if isinstance(model, LinearModel):
        probs = model.predict_proba(frame)
        ablation_probs, n_images = probs, np.zeros(len(frame), dtype=np.int64)
    else:
        config, vocab = model.config, Vocab(tuple(ckpt["vocab"]))
        features = read_features(FEATURES_PATH)
        check_feature_coverage(frame, features, TEST_PATH)
        if not len(features.matrix):  # text-only data
            features = ImageFeatures(features.index, np.zeros((0, config.image_dim), np.float32), features.unusable)
        dataset = PairDataset(
            frame,
            vocab,
            labels,
            features,
            ckpt["feature_norm"]["mean"].numpy(),
            ckpt["feature_norm"]["std"].numpy(),
            config.max_text_len,
            config.max_aspect_len,
            config.max_images,
        )
        probs = mimn_probabilities(model, dataset, batch_size, device)
        ablation_probs = mimn_probabilities(model, dataset, batch_size, device, images=False)
        n_images = np.array([len(r) for r in dataset.image_rows])
        for repeat in ckpt.get("repeats", []):
            model.load_state_dict(repeat["model"])
            seeds_metrics.append(
                classification_metrics(targets, mimn_probabilities(model, dataset, batch_size, device).argmax(1))
            )
        model.load_state_dict(ckpt["model"])  # the reported seed's weights again, for the attention pages

    majority = int(np.argmax(ckpt["train_class_counts"]))
    frame = frame.assign(
        label=targets.astype(np.int8),
        predicted_label=probs.argmax(-1).astype(np.int8),
        no_image_label=ablation_probs.argmax(-1),
        majority_label=majority,
        n_usable_images=n_images,
    )
    frame["predicted_score"] = labels.classes_to_scores(frame["predicted_label"]).astype(np.int8)
    names = {c: str(s) for c, s in enumerate(labels.class_scores)}

    overall = classification_metrics(frame["label"], frame["predicted_label"])
    no_image = classification_metrics(frame["label"], frame["no_image_label"])
    per_aspect = group_metrics(frame, "label", "predicted_label")
    per_aspect_no_image = group_metrics(frame, "label", "no_image_label")
    per_aspect_majority = group_metrics(frame, "label", "majority_label")
    params = ckpt["params"]
    seeds = [int(params["train"]["seed"])] + [int(r["seed"]) for r in ckpt.get("repeats", [])]
    metrics = {
        **overall,
        "family": ckpt.get("family", "mimn"),
        "note": PAPER_F1_NOTE,
        "pairs": len(frame),
        "pairs_without_usable_image": int((frame["n_usable_images"] == 0).sum()),
        "num_classes": labels.num_classes,
        "class_scores": list(labels.class_scores),
        "checkpoint_epoch": int(ckpt["epoch"]),
        "seeds": seeds,
        "over_seeds": summary([overall, *seeds_metrics]),
        "per_aspect": {a: {"pairs": int((frame["aspect"] == a).sum()), **m} for a, m in per_aspect.items()},
        "per_class": per_class_report(frame["label"], frame["predicted_label"], names),
        "majority_baseline": {
            "score": labels.class_scores[majority],
            **classification_metrics(frame["label"], frame["majority_label"]),
        },
        "linear_baseline": linear_baseline(labels, frame, targets, params, ckpt),
        "ablation_no_images": {
            **{k: no_image[k] for k in ("accuracy", "macro_f1")},
            "per_aspect": {a: {k: m[k] for k in ("accuracy", "macro_f1")} for a, m in per_aspect_no_image.items()},
        },
    }
    write_metrics({key: metrics[key] for key in HEADLINE}, metrics, METRICS_PATH, DETAIL_PATH)
    write_reports(frame, probs, metrics, per_aspect_no_image, per_aspect_majority, ckpt, labels)
    if metrics["family"] == "mimn":
        write_explain_pages(frame, dataset, features, model, vocab, labels, device, EXPLAIN_DIR)
    else:  # the output folder always exists (a DVC output); only MIMN returns its attention
        staging = new_staging_dir(EXPLAIN_DIR)
        write_index([], staging, f"No attention pages: model.family {metrics['family']} does not return its attention")
        replace_dir(staging, EXPLAIN_DIR)
    metrics["seconds"] = round(time.perf_counter() - started, 2)  # printed and in logs/, not in metrics/ nor reports/
    write_run_log("evaluate", {"seconds": metrics["seconds"]})
    return metrics


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


def write_explain_pages(
    frame: pd.DataFrame,
    dataset: PairDataset,
    features: ImageFeatures,
    model: torch.nn.Module,
    vocab: Vocab,
    labels: LabelMap,
    device: torch.device,
    out_dir: Path,
) -> None:
    """reports/explain/: attention pages (model.explain) of a few test reviews, right and wrong, and index.html."""
    config = model.config
    staging = new_staging_dir(out_dir)
    entries = []
    for review_id in explain_selection(frame):
        rows = frame.index[frame["review_id"] == review_id].tolist()  # frame rows = dataset items
        probs, text_att, image_att = forward_with_attention(model, dataset.collate(rows)[0], device)
        tokens = list(frame.at[rows[0], "tokens"])
        words = tokens[: config.max_text_len]
        usable = [p for p in frame.at[rows[0], "image_paths"] if p in features.index]
        read = usable[: config.max_images]
        not_read = [
            (p, "unusable (features stage)") for p in frame.at[rows[0], "image_paths"] if p not in features.index
        ]
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


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="parameter file (reads train.device, batch_size)")
    args = parser.parse_args(argv)
    metrics = run(load_params("train", args.params))
    print(
        f"evaluate: {metrics['pairs']} test pairs ({metrics['pairs_without_usable_image']} without a usable image): "
        f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, weighted-F1 "
        f"{metrics['weighted_f1']:.4f} (over seeds {metrics['seeds']}: accuracy "
        f"{metrics['over_seeds']['accuracy']['mean']:.4f} ± {metrics['over_seeds']['accuracy']['std']:.4f}); "
        f"majority baseline accuracy {metrics['majority_baseline']['accuracy']:.4f}; linear baseline accuracy "
        f"{metrics['linear_baseline']['accuracy']:.4f} macro-F1 {metrics['linear_baseline']['macro_f1']:.4f}; "
        f"without images accuracy {metrics['ablation_no_images']['accuracy']:.4f}; {metrics['seconds']:.1f}s "
        f"-> {METRICS_PATH}, {DETAIL_PATH}, {REPORTS_DIR}/"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
