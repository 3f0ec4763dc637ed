"""Stage `evaluate`: score models/mimn.pt on data/segmented/test.parquet; metrics, reports and predictions.

    python -m model.evaluate [--params params.yaml] [--threads N]

metrics/test.json holds the headline (accuracy, weighted_f1, macro_f1, pairs, pairs_without_usable_image);
reports/test_detail.json everything: per aspect, per class, over seeds, the baselines and the no-image ablation.
Reads params.yaml's `train` section (device, batch_size) and `data.batch_rows`: the test split and the image
features are read that many rows at a time (model/splits.py).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from common.device import choose_device
from common.errors import UserError
from common.metrics import detail_path, write_metrics
from common.params import load_params, read_section, section_of
from common.runlog import write_run_log
from common.stage import run_stage, stage_parser
from model.checkpoint import MODEL_PATH, load_checkpoint
from model.data import (
    FEATURES_PATH,
    SEGMENTED_DIR,
    ImageFeatures,
    PairDataset,
    check_feature_coverage,
    read_features,
    standardised,
)
from model.labels import LabelMap
from model.linear import LinearModel, fit_linear
from model.loop import predict
from model.metrics import PAPER_F1_NOTE, classification_metrics, per_class_report
from model.pairs import PairKeys, encode_pairs, read_keys
from model.reports import (
    EXPLAIN_DIR,
    REPORTS_DIR,
    ExplainInputs,
    explain_selection,
    write_explain_pages,
    write_no_explain_pages,
    write_reports,
)
from model.runtime import add_threads_option, configure_torch, torch_threads
from model.sampler import ordered_batches, restore_order
from model.settings import TrainParams
from model.splits import SplitFile
from model.vocab import Vocab
from pipeline.paths import DataParams

TEST_PATH = SEGMENTED_DIR / "test.parquet"
METRICS_PATH = Path("metrics/test.json")
DETAIL_PATH = detail_path("test")
HEADLINE = ("accuracy", "weighted_f1", "macro_f1", "pairs", "pairs_without_usable_image")
PAIR_TEXT = ["tokens", "aspect"]  # what the linear baseline reads of a pair


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
    batches = ordered_batches(dataset.text.lengths(), batch_size)
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


def linear_baseline(labels: LabelMap, test: SplitFile, y_test: np.ndarray, params: dict, ckpt: dict) -> dict:
    """The linear baseline, fitted on train with its C chosen on dev: always reported. The train stage already
    fitted it with the same params when the model is the baseline or starts its wide path from it; else fit here."""
    fitted = ckpt.get("linear") if ckpt.get("family") == "linear" else ckpt.get("linear_baseline")
    if fitted is not None:
        model = LinearModel.from_checkpoint(fitted)
    else:
        train, dev = (SplitFile(SEGMENTED_DIR / f"{s}.parquet", test.batch_rows) for s in ("train", "dev"))
        model, _ = fit_linear(
            train.reader(PAIR_TEXT),
            labels.scores_to_classes(train.scores()),
            dev.reader(PAIR_TEXT),
            labels.scores_to_classes(dev.scores()),
            labels.num_classes,
            params["model"]["linear_c"],
            params["train"]["select_metric"],
            int(params["train"]["seed"]),
        )
    return {"c": model.c, **classification_metrics(y_test, model.predict_proba(test.reader(PAIR_TEXT)).argmax(1))}


@dataclass
class Scored:
    """The test pairs' class probabilities, with and without images, and what the attention pages need."""

    keys: PairKeys  # which pair each row is, and its score
    probs: np.ndarray
    ablation_probs: np.ndarray
    n_images: np.ndarray
    seeds_metrics: list[dict] = field(default_factory=list)  # the checkpoint's other seeds
    dataset: PairDataset | None = None
    features: ImageFeatures | None = None
    vocab: Vocab | None = None


def score_neural(model, ckpt: dict, labels: LabelMap, test: SplitFile, batch_size: int, device) -> Scored:
    """A neural model's probabilities on the test pairs, without images (the ablation), and each seed's scores."""
    config, vocab = model.config, Vocab(tuple(ckpt["vocab"]))
    referenced = test.image_paths()
    features = read_features(FEATURES_PATH, test.batch_rows, referenced)
    check_feature_coverage(referenced, features, TEST_PATH)
    if not len(features.matrix):  # text-only data
        features = features.without_features(config.image_dim)
    norm = ckpt["feature_norm"]
    sizes = (config.max_text_len, config.max_aspect_len, config.max_images)
    images = standardised(features, norm["mean"].numpy(), norm["std"].numpy())
    dataset = PairDataset(encode_pairs(test, vocab, features.index, *sizes), labels, images)
    probs = mimn_probabilities(model, dataset, batch_size, device)
    ablation = mimn_probabilities(model, dataset, batch_size, device, images=False)
    n_images = dataset.image_rows.lengths()
    targets = dataset.targets.numpy()
    seeds_metrics = []
    for repeat in ckpt.get("repeats", []):
        model.load_state_dict(repeat["model"])
        seeds_metrics.append(
            classification_metrics(targets, mimn_probabilities(model, dataset, batch_size, device).argmax(1))
        )
    model.load_state_dict(ckpt["model"])  # the reported seed's weights again, for the attention pages
    return Scored(dataset.keys, probs, ablation, n_images, seeds_metrics, dataset, features, vocab)


def test_metrics(
    frame: pd.DataFrame, test: SplitFile, labels: LabelMap, scored: Scored, ckpt: dict, majority: int
) -> dict:
    """Everything reports/test_detail.json holds (metrics/test.json: the HEADLINE keys of it)."""
    overall = classification_metrics(frame["label"], frame["predicted_label"])
    no_image = classification_metrics(frame["label"], frame["no_image_label"])
    per_aspect = group_metrics(frame, "label", "predicted_label")
    per_aspect_no_image = group_metrics(frame, "label", "no_image_label")
    params = ckpt["params"]
    names = {c: str(s) for c, s in enumerate(labels.class_scores)}
    return {
        **overall,
        "family": ckpt.get("family", "mimn"),
        "note": PAPER_F1_NOTE,
        "pairs": len(frame),
        "pairs_without_usable_image": int((frame["n_usable_images"] == 0).sum()),
        "num_classes": labels.num_classes,
        "class_scores": list(labels.class_scores),
        "checkpoint_epoch": int(ckpt["epoch"]),
        "seeds": [int(params["train"]["seed"])] + [int(r["seed"]) for r in ckpt.get("repeats", [])],
        "over_seeds": summary([overall, *scored.seeds_metrics]),
        "per_aspect": {a: {"pairs": int((frame["aspect"] == a).sum()), **m} for a, m in per_aspect.items()},
        "per_class": per_class_report(frame["label"], frame["predicted_label"], names),
        "majority_baseline": {
            "score": labels.class_scores[majority],
            **classification_metrics(frame["label"], frame["majority_label"]),
        },
        "linear_baseline": linear_baseline(labels, test, frame["label"].to_numpy(), params, ckpt),
        "ablation_no_images": {
            **{k: no_image[k] for k in ("accuracy", "macro_f1")},
            "per_aspect": {a: {k: m[k] for k in ("accuracy", "macro_f1")} for a, m in per_aspect_no_image.items()},
        },
    }


def run(train: TrainParams, threads: int = 0, batch_rows: int = DataParams.batch_rows) -> dict:
    """Score the test split (read `batch_rows` rows at a time), write the metrics, reports and attention pages;
    returns reports/test_detail.json's content (plus the seconds)."""
    started = time.perf_counter()
    device = choose_device(train.device, "params.yaml: 'train.device'")
    configure_torch(device, threads)
    model, ckpt = load_checkpoint(MODEL_PATH, for_evaluation=True)
    labels = LabelMap.from_dict(ckpt["labels"])
    test = SplitFile(TEST_PATH, batch_rows)
    if not test.rows:
        raise UserError(f"{TEST_PATH} has no rows; check the split stage's output")
    if isinstance(model, LinearModel):
        probs, keys = model.predict_proba(test.reader(PAIR_TEXT)), read_keys(test)
        scored = Scored(keys, probs, probs, np.zeros(len(keys), dtype=np.int64))
    else:
        scored = score_neural(model, ckpt, labels, test, train.batch_size, device)
    majority = int(np.argmax(ckpt["train_class_counts"]))
    frame = scored.keys.frame().assign(
        label=labels.scores_to_classes(scored.keys.scores).astype(np.int8),
        predicted_label=scored.probs.argmax(-1).astype(np.int8),
        no_image_label=scored.ablation_probs.argmax(-1),
        majority_label=majority,
        n_usable_images=scored.n_images,
    )
    frame["predicted_score"] = labels.classes_to_scores(frame["predicted_label"]).astype(np.int8)
    metrics = test_metrics(frame, test, labels, scored, ckpt, majority)
    write_metrics({key: metrics[key] for key in HEADLINE}, metrics, METRICS_PATH, DETAIL_PATH)
    per_aspect_no_image = group_metrics(frame, "label", "no_image_label")
    per_aspect_majority = group_metrics(frame, "label", "majority_label")
    write_reports(frame, scored.probs, metrics, per_aspect_no_image, per_aspect_majority, ckpt, labels)
    if metrics["family"] == "mimn":
        texts = test.first_pairs(set(explain_selection(frame)), ["tokens", "image_paths"])
        pages = ExplainInputs(texts, scored.dataset, scored.features, scored.vocab)
        write_explain_pages(frame, pages, model, labels, device, EXPLAIN_DIR)
    else:
        write_no_explain_pages(metrics["family"])
    metrics["seconds"] = round(time.perf_counter() - started, 2)  # printed and in logs/, not in metrics/ nor reports/
    write_run_log("evaluate", {"seconds": metrics["seconds"]})
    return metrics


def run_args(args: argparse.Namespace) -> str:
    params = load_params(None, args.params)
    train = read_section(TrainParams, section_of(params, "train", args.params), "train", args.params)
    batch_rows = read_section(DataParams, params.get("data"), "data", args.params).batch_rows
    metrics = run(train, torch_threads(args.threads), batch_rows)
    return (
        f"evaluate: {metrics['pairs']} test pairs ({metrics['pairs_without_usable_image']} without a usable image): "
        f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, weighted-F1 "
        f"{metrics['weighted_f1']:.4f} (over seeds {metrics['seeds']}: accuracy "
        f"{metrics['over_seeds']['accuracy']['mean']:.4f} ± {metrics['over_seeds']['accuracy']['std']:.4f}); "
        f"majority baseline accuracy {metrics['majority_baseline']['accuracy']:.4f}; linear baseline accuracy "
        f"{metrics['linear_baseline']['accuracy']:.4f} macro-F1 {metrics['linear_baseline']['macro_f1']:.4f}; "
        f"without images accuracy {metrics['ablation_no_images']['accuracy']:.4f} "
        f"-> {METRICS_PATH}, {DETAIL_PATH}, {REPORTS_DIR}/"
    )


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("python -m model.evaluate", __doc__)
    add_threads_option(parser)
    return run_stage(parser, run_args, argv)


if __name__ == "__main__":
    raise SystemExit(main())
