"""Predict the aspect scores of new reviews with a trained MIMN checkpoint, and show what it attended to.

    python -m model.predict --text "拍照很清晰，电池能用一天" [--image photo.jpg ...]
    python -m model.predict --input data/raw/zol/reviews.jsonl --out predictions.jsonl
    python -m model.predict --input data/segmented/test.parquet --out predictions.parquet --explain explain/

Text goes through the clean stage's normalisation and the segment stage's jieba segmentation (params.yaml's
`segment` section); images through the features stage's ResNet-50, preprocessing and the checkpoint's feature
standardisation, with the backbone weights the model's training features were computed with (other weights
are refused). Output: JSON Lines, one object per review (per aspect: predicted score, class probabilities,
the true score when the input has it), or Parquet (one row per review and aspect) when --out ends in .parquet.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from common.aspects import CANONICAL_ASPECTS, aspect_zh
from common.atomic import atomic_path
from common.contract import SEGMENTED_FIELD
from common.errors import UserError, cli_entry
from common.params import DEFAULT_PARAMS, load_params
from model.data import batch_inputs, features_record
from model.evaluate import load_checkpoint
from model.explain import (AspectView, IndexEntry, ReviewView, attention_lists, forward_with_attention, index_entry,
                           write_index, write_review)
from model.labels import LabelMap
from model.mimn import MIMN
from model.vocab import UNK_ID, Vocab
from pipeline.backbone import (BACKBONE, IMAGENET_FILE_NAME, Backbone, WeightsUnavailable, file_backbone,
                               imagenet_backbone, imagenet_cache_file, random_backbone)
from pipeline.clean import TEXT_FIELDS, CleanStats, ImageChecker, Rejected, canonical_key, check_fields, parse_score
from pipeline.features import extract, prepare_model, resolve_precision
from pipeline.image_data import Preprocessing
from pipeline.io import write_table
from pipeline.segment import Segmenter, SegmentParams
from pipeline.textnorm import join_fields

DEFAULT_MODEL = Path("models/mimn.pt")
DEFAULT_FEATURES = Path("data/features/images.parquet")
REVIEWS_PER_CHUNK = 256          # reviews whose images go through the backbone together
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
PREDICTIONS_SCHEMA = pa.schema([
    ("review_id", pa.string()), ("aspect", pa.string()), ("aspect_zh", pa.string()),
    ("predicted_score", pa.int8()), ("probabilities", pa.list_(pa.float32())), ("score", pa.int8()),
    ("error", pa.string()),
])


@dataclass
class Review:
    review_id: str
    tokens: list[str]
    images: list[str]                                   # image files, as paths to read
    true_scores: dict[str, int] = field(default_factory=dict)
    images_not_read: list[tuple[str, str]] = field(default_factory=list)   # (image, why)
    error: str | None = None                            # set: the review cannot be predicted


# ---- inputs -------------------------------------------------------------------------------------------------

def review_from_text(text: str, images: list[str], review_id: str, segmenter: Segmenter) -> Review:
    """One review typed at the command line; a missing image file is the user's error."""
    for image in images:
        if not Path(image).is_file():
            raise UserError(f"--image {image}: no such file")
    review = tokenised(Review(review_id, [], list(images)), join_fields([text]), False, segmenter)
    if review.error:
        raise UserError(f"--text: {review.error}")
    return review


def tokenised(review: Review, text: str, presegmented: bool, segmenter: Segmenter) -> Review:
    review.tokens = segmenter.tokens(text, presegmented=presegmented)
    if not review.tokens:
        review.error = "no_text: no words left after normalisation and segmentation"
    return review


def true_scores(scores: object) -> dict[str, int]:
    """A raw record's `scores` -> canonical aspect -> score 1..10 (unknown labels and bad values skipped)."""
    out: dict[str, int] = {}
    for label, value in (scores.items() if isinstance(scores, dict) else ()):
        key, (score, _) = canonical_key(str(label)), parse_score(value)
        if key is not None and score is not None:
            out.setdefault(key, score)
    return out


def reviews_from_jsonl(path: Path, segmenter: Segmenter, prep: Preprocessing) -> Iterator[Review]:
    """Raw records as the crawler writes them (common/contract.py), texts and images resolved as the clean stage
    does; images are under `<folder of the file>/images/`. A bad line becomes a Review with an error."""
    checker = ImageChecker(path.parent, prep, CleanStats())
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8").lstrip("\ufeff"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                yield Review(f"{path.name}:{line_no}", [], [], error=f"malformed_json: line {line_no}: {exc}")
                continue
            if not isinstance(record, dict):
                yield Review(f"{path.name}:{line_no}", [], [], error=f"malformed_json: line {line_no} is not an object")
                continue
            review_id = str(record.get("review_id") or f"{path.name}:{line_no}")
            try:
                check_fields(record, checker.images_dir)   # the clean stage's contract check
            except Rejected as exc:
                yield Review(review_id, [], [], error=f"{exc.reason}: {exc.detail}")
                continue
            usable = checker.usable_paths(record)
            listed = [(path.parent / "images" / e["path"]).as_posix() for e in record.get("images") or []
                      if isinstance(e, dict) and isinstance(e.get("path"), str) and e["path"]]
            review = Review(review_id, [], usable, true_scores(record.get("scores")),
                            [(p, "missing or undecodable") for p in dict.fromkeys(listed) if p not in usable])
            text = join_fields([record.get(name) for name in TEXT_FIELDS])
            yield tokenised(review, text, record.get(SEGMENTED_FIELD) is True, segmenter)


def reviews_from_parquet(path: Path, segmenter: Segmenter) -> Iterator[Review]:
    """A split (one row per review and aspect): a segmented one's tokens are used as they are, else `text` is
    segmented; image paths are relative to the working directory (the repository root), as the pipeline writes."""
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path} is not a readable Parquet file ({exc})") from exc
    needed = ["review_id", "image_paths", "tokens" if "tokens" in names else "text"]
    missing = [c for c in needed if c not in names]
    if missing:
        raise UserError(f"{path} lacks columns {missing}: give a split of data/splits or data/segmented")
    optional = [c for c in ("aspect", "score", "presegmented") if c in names]
    frame = pq.read_table(path, columns=needed + optional).to_pandas()
    for review_id, rows in frame.groupby("review_id", sort=True):
        first = rows.iloc[0]   # the pipeline's splits repeat a review's text and images on each of its rows
        scores = ({str(a): int(s) for a, s in zip(rows["aspect"], rows["score"]) if pd.notna(s)}
                  if {"aspect", "score"} <= set(rows) else {})
        review = Review(str(review_id), [], [str(p) for p in as_list(first["image_paths"])], scores)
        if "tokens" in rows:
            review.tokens = [str(t) for t in as_list(first["tokens"])]
            if not review.tokens:
                review.error = "no_text: the row has no tokens"
            yield review
        else:
            presegmented = bool(first["presegmented"]) if "presegmented" in rows else False
            yield tokenised(review, str(first["text"] or ""), presegmented, segmenter)


def as_list(value: object) -> list:
    return [] if value is None else list(value)


# ---- image features -------------------------------------------------------------------------------------------

def weights_identity(label: str) -> str:
    """What must match between two weights labels: a file's content hash, else the whole label."""
    return f"file-sha256:{label.rsplit(':', 1)[1]}" if label.startswith("file:") else label


def backbone_for_label(label: str, download_timeout_s: float) -> Backbone:
    """Load exactly the weights a features label names (never a fallback)."""
    if label.startswith("imagenet:"):
        try:
            return imagenet_backbone(download_timeout_s)
        except WeightsUnavailable as exc:
            raise UserError(f"the images need ResNet-50 weights {label} (those of the model's training features), "
                            f"which are {exc}; put {IMAGENET_FILE_NAME} into {imagenet_cache_file().parent}") from exc
    if label.startswith("random:seed="):
        return random_backbone(int(label.split("=", 1)[1]))
    if label.startswith("file:"):
        path = label[len("file:"):].rsplit(":", 1)[0]
        if not Path(path).is_file():
            raise UserError(f"the model's image features came from ResNet-50 weights in {path}, which is not there; "
                            "pass --weights PATH of that file")
        return file_backbone(path)
    raise UserError(f"unknown backbone weights label {label!r} in the checkpoint; re-run dvc repro features train")


def named_weights(value: str) -> str | None:
    """The label of --weights when it names weights (imagenet, random:seed=N); None for a file (known once read)."""
    if value in ("random", "auto"):
        raise UserError(f"--weights {value}: name the exact weights (imagenet, random:seed=N or a .pth path)")
    if value == "imagenet" or value.startswith("imagenet:"):
        return f"imagenet:{value.partition(':')[2] or 'IMAGENET1K_V2'}"
    return value if value.startswith("random:seed=") else None


def refuse_other_weights(recorded: str, given: str) -> None:
    if weights_identity(given) != weights_identity(recorded):
        raise UserError(f"the model was trained on image features from ResNet-50 weights {recorded}, but --weights "
                        f"gives {given}: features from other weights mean nothing to it. Use the weights its features "
                        "were computed with (metrics/features.json)")


class ImageFeaturizer:
    """New images -> standardised 2048-d features, computed as the model's training features were.

    The backbone is loaded on first use only (text-only input never loads it)."""

    def __init__(self, record: Callable[[], dict[str, str]], mean: np.ndarray, std: np.ndarray, device: torch.device,
                 weights: str | None, max_image_pixels: int, batch_size: int, num_workers: int,
                 download_timeout_s: float = 20.0) -> None:
        self.record_source, self.mean, self.std, self.device = record, mean, std, device
        self.weights_option, self.batch_size, self.num_workers = weights, batch_size, num_workers
        self.max_image_pixels, self.download_timeout_s = max_image_pixels, download_timeout_s
        self.model: torch.nn.Module | None = None
        self.prep: Preprocessing | None = None
        self.precision = "fp32"

    @staticmethod
    def _preprocessing(record: dict[str, str], max_image_pixels: int) -> Preprocessing:
        if record.get("backbone") != BACKBONE:
            raise UserError(f"the model's image features came from backbone {record.get('backbone')!r}, this code "
                            f"computes {BACKBONE!r}; re-run dvc repro features train")
        try:
            recorded = json.loads(record["preprocessing"])
            prep = Preprocessing(int(recorded["resize"][0]), max_image_pixels)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UserError(f"the checkpoint's features record has no readable preprocessing ({exc}); "
                            "re-run dvc repro features train") from exc
        if prep.describe() != recorded:
            raise UserError("the model's image features were preprocessed differently from what this code does "
                            f"({record['preprocessing']}); re-run dvc repro features train")
        return prep

    def load(self) -> None:
        """Check the record against this code and load the backbone: refused, with the reason, on any mismatch."""
        if self.model is not None:
            return
        record = self.record_source()
        self.prep = self._preprocessing(record, self.max_image_pixels)
        recorded = record["weights"]
        named = named_weights(self.weights_option) if self.weights_option else recorded
        if named is not None:
            refuse_other_weights(recorded, named)   # before loading anything
            backbone = backbone_for_label(named, self.download_timeout_s)
        else:
            backbone = file_backbone(str(self.weights_option))
            refuse_other_weights(recorded, backbone.weights)
        # the features stage's precision when this device can use it, else fp32 (they differ by rounding only)
        recorded_precision = record.get("precision", "fp32")
        if recorded_precision != "fp32":
            self.precision = resolve_precision("auto", self.device)   # bf16 on CPUs with native bf16, else fp32
        self.model = prepare_model(backbone.model, self.device)       # channels-last, as the stage runs it

    def __call__(self, files: list[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """path -> standardised feature for the decodable files; path -> error for the others."""
        files = list(dict.fromkeys(files))
        if not files:
            return {}, {}
        self.load()
        assert self.model is not None and self.prep is not None
        matrix, errors, _ = extract(self.model, [Path(f) for f in files], self.prep, self.batch_size,
                                    self.num_workers if len(files) >= 2 * self.batch_size else 0,
                                    self.device, self.precision)
        standardised = (matrix - self.mean) / self.std
        return ({f: standardised[i] for i, f in enumerate(files) if i not in errors},
                {f: errors[i] for i, f in enumerate(files) if i in errors})


def checkpoint_features_record(ckpt: dict, model_path: Path, features_path: Path) -> dict[str, str]:
    """The checkpoint's record of what produced its training features; a checkpoint written before train stored
    it falls back, loudly, to the features file the pipeline trained it on."""
    record = ckpt.get("features")
    if isinstance(record, dict) and record.get("weights"):
        return {k: str(v) for k, v in record.items()}
    record = features_record(features_path)
    if record.get("weights"):
        print(f"warning: {model_path} does not record which backbone weights produced its image features; "
              f"assuming those of {features_path} ({record['weights']}). Re-run dvc repro train to record them.",
              file=sys.stderr)
        return record
    raise UserError(f"{model_path} does not record which backbone weights produced its image features and "
                    f"{features_path} is not there to tell; re-run dvc repro train, or predict without images")


def trained_without_images(ckpt: dict) -> bool:
    """The training split had no usable image: the standardisation is the identity (model.data.feature_norm)."""
    norm = ckpt["feature_norm"]
    return bool((norm["mean"] == 0).all() and (norm["std"] == 1).all())


# ---- prediction -------------------------------------------------------------------------------------------------

@dataclass
class Predictor:
    model: MIMN
    vocab: Vocab
    labels: LabelMap
    segmenter: Segmenter
    featurizer: ImageFeaturizer | None     # None: the model was trained without images
    device: torch.device
    batch_size: int = 64

    def aspect_ids(self, aspect: str) -> torch.Tensor:
        tokens = self.segmenter.aspect_tokens(aspect_zh(aspect))
        return torch.from_numpy(self.vocab.encode(tokens, self.model.config.max_aspect_len))

    def run(self, reviews: list[Review], aspects: list[str], explain: bool) -> list[tuple[dict, ReviewView | None]]:
        """(output object, explanation or None) per review, in input order."""
        config = self.model.config
        files = [f for r in reviews if not r.error for f in r.images]
        features, errors = self.featurizer(files) if self.featurizer else ({}, {})
        image_rows: dict[int, list[str]] = {}
        for index, review in enumerate(reviews):
            if review.error:
                continue
            usable = [f for f in review.images if f in features]
            review.images_not_read += [(f, errors[f]) for f in review.images if f in errors]
            if self.featurizer is None and review.images:
                review.images_not_read += [(f, "the model was trained without images") for f in review.images]
            review.images_not_read += [(f, f"past the model's {config.max_images} images") for f in usable[config.max_images:]]
            image_rows[index] = usable[:config.max_images]
        pairs = [(i, a) for i in image_rows for a in aspects]
        aspect_cache = {a: self.aspect_ids(a) for a in aspects}
        probs, text_att, image_att = [], [], []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start:start + self.batch_size]
            inputs = batch_inputs(
                [torch.from_numpy(self.vocab.encode(reviews[i].tokens, config.max_text_len)) for i, _ in chunk],
                [aspect_cache[a] for _, a in chunk],
                [torch.from_numpy(np.stack([features[f] for f in image_rows[i]]).astype(np.float32))
                 if image_rows[i] else torch.zeros((0, config.image_dim)) for i, _ in chunk],
                config.image_dim)
            p, t, m = forward_with_attention(self.model, inputs, self.device)
            probs.extend(p)
            text_att.extend(t)
            image_att.extend(m)
        by_pair = {pair: n for n, pair in enumerate(pairs)}
        results = []
        for index, review in enumerate(reviews):
            if review.error:
                results.append(({"review_id": review.review_id, "error": review.error}, None))
                continue
            out = {"review_id": review.review_id, "words": len(review.tokens), "images": len(image_rows[index]),
                   "aspects": {}}
            if review.images_not_read:
                out["images_not_read"] = [{"image": f, "reason": why} for f, why in review.images_not_read]
            views = []
            n_words = min(len(review.tokens), config.max_text_len)
            for aspect in aspects:
                n = by_pair[(index, aspect)]
                class_probs = {s: float(p) for s, p in zip(self.labels.class_scores, probs[n])}
                predicted = int(self.labels.class_scores[int(np.argmax(probs[n]))])
                entry = {"aspect_zh": aspect_zh(aspect), "predicted_score": predicted,
                         "probabilities": {str(s): round(p, 6) for s, p in class_probs.items()}}
                if aspect in review.true_scores:
                    entry["score"] = review.true_scores[aspect]
                out["aspects"][aspect] = entry
                views.append(AspectView(aspect, aspect_zh(aspect), predicted, class_probs,
                                        review.true_scores.get(aspect),
                                        attention_lists(text_att[n], n_words),
                                        attention_lists(image_att[n], len(image_rows[index]))))
            view = None
            if explain:
                words = review.tokens[:config.max_text_len]
                view = ReviewView(review.review_id, words, [self.vocab.id(w) == UNK_ID for w in words],
                                  len(review.tokens) - len(words), image_rows[index],
                                  [Path(f) for f in image_rows[index]], review.images_not_read, views)
            results.append((out, view))
        return results


# ---- output ---------------------------------------------------------------------------------------------------

def parquet_rows(out: dict) -> list[dict]:
    if "error" in out:
        return [{"review_id": out["review_id"], "aspect": None, "aspect_zh": None, "predicted_score": None,
                 "probabilities": None, "score": None, "error": out["error"]}]
    return [{"review_id": out["review_id"], "aspect": aspect, "aspect_zh": e["aspect_zh"],
             "predicted_score": e["predicted_score"], "probabilities": [float(p) for p in e["probabilities"].values()],
             "score": e.get("score"), "error": None} for aspect, e in out["aspects"].items()]


@contextlib.contextmanager
def jsonl_sink(out: str) -> Iterator[TextIO]:
    """stdout for '-', else a file that appears whole when everything was written."""
    if out == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    with atomic_path(out) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as handle:
        yield handle


def choose_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no GPU is visible; use auto or cpu")
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def chunks(items: Iterator[Review], size: int) -> Iterator[list[Review]]:
    chunk: list[Review] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m model.predict", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="one review's text, as written (title, pros, cons... in one string)")
    source.add_argument("--input", type=Path, help="many reviews: the crawler's raw JSON Lines (reviews.jsonl, images "
                        "under its folder's images/) or a Parquet split (data/splits or data/segmented)")
    parser.add_argument("--image", action="append", default=[], metavar="FILE", help="an image of the --text review "
                        "(repeat for several, in page order)")
    parser.add_argument("--review-id", default="review", help="id of the --text review in the output (default: %(default)s)")
    parser.add_argument("--aspect", action="append", choices=CANONICAL_ASPECTS, metavar="ASPECT",
                        help=f"aspect to score (repeatable; default all six: {', '.join(CANONICAL_ASPECTS)})")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="checkpoint (default: %(default)s)")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS,
                        help="params file whose `segment` section segments the text (default: %(default)s)")
    parser.add_argument("--out", default="-", help="output: JSON Lines file, or Parquet when it ends in .parquet "
                        "(default: stdout, JSON Lines)")
    parser.add_argument("--explain", type=Path, metavar="DIR", help="also write, per review, the attention of every hop "
                        "over words and images as <id>.json and a self-contained <id>.html page, plus index.html")
    parser.add_argument("--weights", help="ResNet-50 weights for new images: imagenet, random:seed=N or a .pth path "
                        "(default: the ones the model's training features were computed with; others are refused)")
    parser.add_argument("--features", type=Path, default=DEFAULT_FEATURES, help="features file whose metadata names "
                        "the backbone weights when the checkpoint does not record them (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per model batch (default: %(default)s)")
    parser.add_argument("--image-batch-size", type=int, default=16, help="images per backbone batch (default: %(default)s)")
    parser.add_argument("--num-workers", type=int, default=2, help="image decoding processes (default: %(default)s)")
    parser.add_argument("--max-image-pixels", type=int, default=DEFAULT_MAX_IMAGE_PIXELS,
                        help="larger images are refused as decompression bombs (default: %(default)s)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: %(default)s (GPU when present)")
    args = parser.parse_args(argv)
    if args.image and args.text is None:
        parser.error("--image goes with --text (a raw or Parquet --input names its own images)")
    if args.batch_size < 1 or args.image_batch_size < 1 or args.num_workers < 0:
        parser.error("--batch-size and --image-batch-size must be >= 1, --num-workers >= 0")
    return args


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    aspects = list(dict.fromkeys(args.aspect or CANONICAL_ASPECTS))
    device = choose_device(args.device)
    model, ckpt = load_checkpoint(args.model)
    model.to(device)
    segmenter = Segmenter(SegmentParams.from_section(load_params("segment", args.params)))
    if args.text is not None:
        reviews: Iterator[Review] = iter([review_from_text(args.text, args.image, args.review_id, segmenter)])
        total: int | None = 1
    elif not args.input.is_file():
        raise UserError(f"--input {args.input}: no such file")
    elif args.input.suffix == ".parquet":
        reviews, total = reviews_from_parquet(args.input, segmenter), None
    else:
        # decodability as the clean stage judges it (the target size only picks JPEG draft decoding)
        image_size = int((load_params(None, args.params).get("features") or {}).get("image_size", 224))
        reviews, total = reviews_from_jsonl(args.input, segmenter, Preprocessing(image_size, args.max_image_pixels)), None

    featurizer = None
    if not trained_without_images(ckpt):
        featurizer = ImageFeaturizer(lambda: checkpoint_features_record(ckpt, args.model, args.features),
                                     ckpt["feature_norm"]["mean"].numpy(), ckpt["feature_norm"]["std"].numpy(), device,
                                     args.weights, args.max_image_pixels, args.image_batch_size, args.num_workers)
    elif args.image:
        print("warning: the model was trained without images; the given images are not used", file=sys.stderr)
    predictor = Predictor(model, Vocab(tuple(ckpt["vocab"])), LabelMap.from_dict(ckpt["labels"]), segmenter,
                          featurizer, device, args.batch_size)

    parquet = args.out.endswith(".parquet")
    rows: list[dict] = []
    index: list[IndexEntry] = []
    done = failed = 0
    last: dict = {}
    with (contextlib.nullcontext() if parquet else jsonl_sink(args.out)) as sink, \
            tqdm(total=total, desc="predict", unit=" reviews", file=sys.stderr, disable=args.text is not None) as bar:
        for chunk in chunks(reviews, REVIEWS_PER_CHUNK):
            for last, view in predictor.run(chunk, aspects, explain=args.explain is not None):
                if parquet:
                    rows.extend(parquet_rows(last))
                else:
                    sink.write(json.dumps(last, ensure_ascii=False) + "\n")
                if view is not None:
                    write_review(view, args.explain)
                    index.append(index_entry(view))
                done += 1
                failed += "error" in last
            bar.update(len(chunk))
    if parquet:
        write_table(pa.Table.from_pylist(rows, schema=PREDICTIONS_SCHEMA), args.out,
                    metadata={"class_scores": json.dumps(list(predictor.labels.class_scores))})
    if args.explain is not None:
        write_index(index, args.explain, f"What {args.model} attended to")
    if args.text is not None:
        print("  ".join(f"{e['aspect_zh']} {e['predicted_score']}" for e in last["aspects"].values()), file=sys.stderr)
    else:
        print(f"predict: {done} reviews, {failed} not predictable (their output says why), {len(aspects)} aspect(s) "
              f"each" + (f" -> {args.out}" if args.out != "-" else "")
              + (f"; pages in {args.explain}/" if args.explain else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
