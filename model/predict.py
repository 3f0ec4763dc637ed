"""Predict the aspect scores of new reviews with a trained checkpoint (any model.family), and show what MIMN
attended to.

    python -m model.predict --text "拍照很清晰，电池能用一天" [--image photo.jpg ...]
    python -m model.predict --input data/raw/zol/reviews.jsonl --out predictions.jsonl
    python -m model.predict --input data/segmented/test.parquet --out predictions.parquet --explain explain/

Text goes through the clean stage's normalisation and the segment stage's jieba segmentation (params.yaml's
`segment` section); images through the features stage's ResNet-50, preprocessing and the checkpoint's feature
standardisation, with the backbone weights the model's training features were computed with (other weights
are refused). Output: JSON Lines, one object per review (per aspect: predicted score, class probabilities,
the model's training pairs of the aspect and whether they are too few to trust, the true score when the input
has it), or Parquet (one row per review and aspect) when --out ends in .parquet. A line on stderr says what the
model was trained on (the generated sample's models mean nothing for real text). The linear baseline scores text
alone; --explain needs MIMN (the only family that returns its attention).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from tqdm import tqdm

from common.aspects import CANONICAL_ASPECTS, aspect_zh
from common.atomic import atomic_path
from common.errors import UserError, cli_entry
from common.params import DEFAULT_PARAMS, load_params
from model.checkpoint import load_checkpoint
from model.data import batch_inputs
from model.explain import (
    AspectView,
    IndexEntry,
    ReviewView,
    attention_lists,
    forward_with_attention,
    index_entry,
    write_index,
    write_review,
)
from model.labels import LabelMap
from model.linear import LinearModel
from model.loop import autocast_for, to_device
from model.mimn import MIMN
from model.predict_images import ImageFeaturizer, checkpoint_features_record, trained_without_images
from model.predict_inputs import (
    Preprocessing,
    Review,
    Segmenter,
    review_from_text,
    reviews_from_jsonl,  # noqa: F401
    reviews_from_parquet,
)
from model.provenance import (
    DEFAULT_MIN_ASPECT_PAIRS,
    checkpoint_aspect_pairs,
    checkpoint_source,
    few_pairs,
    model_notes,
)
from model.vocab import UNK_ID, Vocab
from pipeline.io import write_table
from pipeline.segment import SegmentParams

DEFAULT_MODEL = Path("models/mimn.pt")
DEFAULT_FEATURES = Path("data/features/images.parquet")
# the baselines that read text alone, as in the paper (docs/baselines.md): their images are not featurised
TEXT_ONLY_FAMILIES = frozenset({"lstm", "atae_lstm", "memnet", "ian", "ram"})
REVIEWS_PER_CHUNK = 256  # reviews whose images go through the backbone together
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
PREDICTIONS_SCHEMA = pa.schema(
    [
        ("review_id", pa.string()),
        ("aspect", pa.string()),
        ("aspect_zh", pa.string()),
        ("predicted_score", pa.int8()),
        ("probabilities", pa.list_(pa.float32())),
        ("score", pa.int8()),
        ("training_pairs", pa.int32()),
        ("few_training_pairs", pa.bool_()),
        ("error", pa.string()),
    ]
)


# ---- scoring: one (review, aspect) pair -> class probabilities (and MIMN's attention) -----------------------------


@dataclass
class Pair:
    tokens: list[str]
    aspect: str
    images: torch.Tensor  # (k, image_dim) standardised features of the images the model reads


class NeuralScorer:
    """Any neural family (MIMN and the baselines): the same inputs as training; only MIMN returns its attention."""

    def __init__(self, model: torch.nn.Module, vocab: Vocab, segmenter: Segmenter, device: torch.device) -> None:
        self.model, self.vocab, self.device = model, vocab, device
        self.config = model.config
        self.attention = isinstance(model, MIMN)
        self.max_text_len, self.max_images = self.config.max_text_len, self.config.max_images
        self._aspects = {
            a: torch.from_numpy(vocab.encode(segmenter.aspect_tokens(aspect_zh(a)), self.config.max_aspect_len))
            for a in CANONICAL_ASPECTS
        }

    def unknown(self, word: str) -> bool:
        return self.vocab.id(word) == UNK_ID

    @torch.no_grad()
    def __call__(self, pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        inputs = batch_inputs(
            [torch.from_numpy(self.vocab.encode(p.tokens, self.max_text_len)) for p in pairs],
            [self._aspects[p.aspect] for p in pairs],
            [p.images for p in pairs],
            self.config.image_dim,
        )
        if self.attention:
            return forward_with_attention(self.model, inputs, self.device)
        self.model.eval()
        with autocast_for(self.device):
            logits = self.model(**to_device(inputs, self.device))
        return torch.softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float32), None, None


class LinearScorer:
    """The linear baseline: TF-IDF over the words and (aspect, word) pairs; it reads no image and has no attention."""

    attention = False
    max_text_len = None
    max_images = 0

    def __init__(self, model: LinearModel) -> None:
        self.model = model
        self._features = set(model.features)

    def unknown(self, word: str) -> bool:
        return word not in self._features

    def __call__(self, pairs: list[Pair]) -> tuple[np.ndarray, None, None]:
        frame = pd.DataFrame({"tokens": [p.tokens for p in pairs], "aspect": [p.aspect for p in pairs]})
        return self.model.predict_proba(frame), None, None


@dataclass
class Predictor:
    scorer: NeuralScorer | LinearScorer
    labels: LabelMap
    featurizer: ImageFeaturizer | None  # None: the model reads no image (trained without, or linear)
    image_dim: int
    aspect_pairs: dict[str, int] | None  # the model's training pairs per aspect (None: not recorded)
    min_aspect_pairs: int = DEFAULT_MIN_ASPECT_PAIRS
    batch_size: int = 64
    no_images_reason: str = "the model was trained without images"
    features: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # the current chunk's images

    def read_images(self, reviews: list[Review]) -> dict[int, list[str]]:
        """Per predictable review, the images the model reads; every other image goes to its images_not_read."""
        files = [f for r in reviews if not r.error for f in r.images]
        self.features, errors = self.featurizer(files) if self.featurizer else ({}, {})
        image_rows: dict[int, list[str]] = {}
        for index, review in enumerate(reviews):
            if review.error:
                continue
            usable = [f for f in review.images if f in self.features]
            review.images_not_read += [(f, errors[f]) for f in review.images if f in errors]
            if self.featurizer is None and review.images:
                review.images_not_read += [(f, self.no_images_reason) for f in review.images]
            review.images_not_read += [
                (f, f"past the model's {self.scorer.max_images} images") for f in usable[self.scorer.max_images :]
            ]
            image_rows[index] = usable[: self.scorer.max_images]
        return image_rows

    def score(self, reviews: list[Review], image_rows: dict[int, list[str]], aspects: list[str]):
        """(pair -> row, probabilities, text attention, image attention) of every (review, aspect) pair; attention
        rows are None for a family without attention."""
        pairs = [(i, a) for i in image_rows for a in aspects]
        probs, text_att, image_att = [], [], []
        for start in range(0, len(pairs), self.batch_size):
            batch = [
                Pair(reviews[i].tokens, a, self.image_matrix(image_rows[i]))
                for i, a in pairs[start : start + self.batch_size]
            ]
            p, t, m = self.scorer(batch)
            probs.extend(p)
            text_att.extend(t if t is not None else [None] * len(batch))
            image_att.extend(m if m is not None else [None] * len(batch))
        return {pair: n for n, pair in enumerate(pairs)}, probs, text_att, image_att

    def image_matrix(self, files: list[str]) -> torch.Tensor:
        if not files:
            return torch.zeros((0, self.image_dim))
        return torch.from_numpy(np.stack([self.features[f] for f in files]).astype(np.float32))

    def run(self, reviews: list[Review], aspects: list[str], explain: bool) -> list[tuple[dict, ReviewView | None]]:
        """(output object, explanation or None) per review, in input order."""
        image_rows = self.read_images(reviews)
        by_pair, probs, text_att, image_att = self.score(reviews, image_rows, aspects)
        results = []
        for index, review in enumerate(reviews):
            if review.error:
                results.append(({"review_id": review.review_id, "error": review.error}, None))
                continue
            out = {
                "review_id": review.review_id,
                "words": len(review.tokens),
                "images": len(image_rows[index]),
                "aspects": {},
            }
            if review.images_not_read:
                out["images_not_read"] = [{"image": f, "reason": why} for f, why in review.images_not_read]
            words = review.tokens[: self.scorer.max_text_len]
            views = []
            for aspect in aspects:
                n = by_pair[(index, aspect)]
                class_probs = {s: float(p) for s, p in zip(self.labels.class_scores, probs[n], strict=False)}
                predicted = int(self.labels.class_scores[int(np.argmax(probs[n]))])
                few = few_pairs(self.aspect_pairs, aspect, self.min_aspect_pairs)
                out["aspects"][aspect] = {
                    "aspect_zh": aspect_zh(aspect),
                    "predicted_score": predicted,
                    "probabilities": {str(s): round(p, 6) for s, p in class_probs.items()},
                    "training_pairs": None if self.aspect_pairs is None else self.aspect_pairs.get(aspect, 0),
                    "few_training_pairs": few,
                    **({"score": review.true_scores[aspect]} if aspect in review.true_scores else {}),
                }
                if explain:
                    views.append(
                        AspectView(
                            aspect,
                            aspect_zh(aspect),
                            predicted,
                            class_probs,
                            review.true_scores.get(aspect),
                            attention_lists(text_att[n], len(words)),
                            attention_lists(image_att[n], len(image_rows[index])),
                            out["aspects"][aspect]["training_pairs"],
                            few,
                        )
                    )
            view = None
            if explain:
                view = ReviewView(
                    review.review_id,
                    words,
                    [self.scorer.unknown(w) for w in words],
                    len(review.tokens) - len(words),
                    image_rows[index],
                    [Path(f) for f in image_rows[index]],
                    review.images_not_read,
                    views,
                )
            results.append((out, view))
        return results


# ---- output ---------------------------------------------------------------------------------------------------


def parquet_rows(out: dict) -> list[dict]:
    if "error" in out:
        return [
            {
                "review_id": out["review_id"],
                "aspect": None,
                "aspect_zh": None,
                "predicted_score": None,
                "probabilities": None,
                "score": None,
                "training_pairs": None,
                "few_training_pairs": None,
                "error": out["error"],
            }
        ]
    return [
        {
            "review_id": out["review_id"],
            "aspect": aspect,
            "aspect_zh": e["aspect_zh"],
            "predicted_score": e["predicted_score"],
            "probabilities": [float(p) for p in e["probabilities"].values()],
            "score": e.get("score"),
            "training_pairs": e["training_pairs"],
            "few_training_pairs": e["few_training_pairs"],
            "error": None,
        }
        for aspect, e in out["aspects"].items()
    ]


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
    parser = argparse.ArgumentParser(
        prog="python -m model.predict",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="one review's text, as written (title, pros, cons... in one string)")
    source.add_argument(
        "--input",
        type=Path,
        help="many reviews: the crawler's raw JSON Lines (reviews.jsonl, images "
        "under its folder's images/) or a Parquet split (data/splits or data/segmented)",
    )
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="FILE",
        help="an image of the --text review (repeat for several, in page order)",
    )
    parser.add_argument(
        "--review-id", default="review", help="id of the --text review in the output (default: %(default)s)"
    )
    parser.add_argument(
        "--aspect",
        action="append",
        choices=CANONICAL_ASPECTS,
        metavar="ASPECT",
        help=f"aspect to score (repeatable; default all six: {', '.join(CANONICAL_ASPECTS)})",
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="checkpoint (default: %(default)s)")
    parser.add_argument(
        "--params",
        type=Path,
        default=DEFAULT_PARAMS,
        help="params file whose `segment` section segments the text (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        default="-",
        help="output file: JSON Lines, or Parquet when it ends in .parquet "
        "(default: stdout, JSON Lines); an existing file is replaced whole, a folder is refused",
    )
    parser.add_argument(
        "--explain",
        type=Path,
        metavar="DIR",
        help="also write, per review, MIMN's attention of every "
        "hop over words and images as <page>.json and a self-contained <page>.html, plus index.html "
        "linking them, into DIR (created; pages of the same names in it are replaced, other files "
        "kept; an existing file is refused)",
    )
    parser.add_argument(
        "--min-aspect-pairs",
        type=int,
        default=DEFAULT_MIN_ASPECT_PAIRS,
        metavar="N",
        help="an aspect the model saw fewer training pairs of is marked few_training_pairs (default: %(default)s)",
    )
    parser.add_argument(
        "--weights",
        help="ResNet-50 weights for new images: imagenet, random:seed=N or a .pth path "
        "(default: the ones the model's training features were computed with; others are refused)",
    )
    parser.add_argument(
        "--features",
        type=Path,
        default=DEFAULT_FEATURES,
        help="features file whose metadata names "
        "the backbone weights when the checkpoint does not record them (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per model batch (default: %(default)s)")
    parser.add_argument(
        "--image-batch-size", type=int, default=16, help="images per backbone batch (default: %(default)s)"
    )
    parser.add_argument("--num-workers", type=int, default=2, help="image decoding processes (default: %(default)s)")
    parser.add_argument(
        "--max-image-pixels",
        type=int,
        default=DEFAULT_MAX_IMAGE_PIXELS,
        help="larger images are refused as decompression bombs (default: %(default)s)",
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: %(default)s (GPU when present)"
    )
    args = parser.parse_args(argv)
    if args.image and args.text is None:
        parser.error("--image goes with --text (a raw or Parquet --input names its own images)")
    if args.batch_size < 1 or args.image_batch_size < 1 or args.num_workers < 0 or args.min_aspect_pairs < 0:
        parser.error("--batch-size and --image-batch-size must be >= 1, --num-workers and --min-aspect-pairs >= 0")
    return args


def check_destinations(args: argparse.Namespace) -> None:
    """Refuse, before any work, outputs that cannot be written where they are asked for."""
    if args.out != "-":
        if Path(args.out).is_dir():
            raise UserError(f"--out {args.out} is a folder; name the output file (.jsonl, or .parquet)")
        refuse_file_in_path("--out", Path(args.out).parent)
    if args.explain is not None:
        if args.explain.exists() and not args.explain.is_dir():
            raise UserError(f"--explain {args.explain} is a file; name a folder for the pages")
        refuse_file_in_path("--explain", args.explain)


def refuse_file_in_path(option: str, folder: Path) -> None:
    """A folder to create whose path runs through an existing file cannot be made: one line, naming the file."""
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            raise UserError(f"{option}: {part} is a file, so no folder can be made under it")


def make_predictor(
    args: argparse.Namespace, model, ckpt: dict, segmenter: Segmenter, device: torch.device, explain: bool
) -> Predictor:
    family = ckpt.get("family", "mimn")
    labels, counts = LabelMap.from_dict(ckpt["labels"]), checkpoint_aspect_pairs(ckpt)
    featurizer, reason = None, f"model.family {family} reads no image"
    if isinstance(model, LinearModel):
        scorer, image_dim = LinearScorer(model), 0
    else:
        model.to(device)
        scorer, image_dim = NeuralScorer(model, Vocab(tuple(ckpt["vocab"])), segmenter, device), model.config.image_dim
        if family not in TEXT_ONLY_FAMILIES:
            reason = "the model was trained without images"
        if family not in TEXT_ONLY_FAMILIES and not trained_without_images(ckpt):
            featurizer = ImageFeaturizer(
                lambda: checkpoint_features_record(ckpt, args.model, args.features),
                ckpt["feature_norm"]["mean"].numpy(),
                ckpt["feature_norm"]["std"].numpy(),
                device,
                args.weights,
                args.max_image_pixels,
                args.image_batch_size,
                args.num_workers,
            )
    if explain and not scorer.attention:
        raise UserError(
            f"--explain shows MIMN's attention, which model.family {family} does not return; predict without --explain"
        )
    if featurizer is None and args.image:
        print(f"warning: {reason}; the given images are not used", file=sys.stderr)
    return Predictor(scorer, labels, featurizer, image_dim, counts, args.min_aspect_pairs, args.batch_size, reason)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_destinations(args)
    aspects = list(dict.fromkeys(args.aspect or CANONICAL_ASPECTS))
    device = choose_device(args.device)
    model, ckpt = load_checkpoint(args.model)
    segmenter = Segmenter(SegmentParams.from_section(load_params("segment", args.params)))
    predictor = make_predictor(args, model, ckpt, segmenter, device, args.explain is not None)
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
        reviews, total = (
            reviews_from_jsonl(args.input, segmenter, Preprocessing(image_size, args.max_image_pixels)),
            None,
        )
    notes = model_notes(ckpt, aspects, predictor.aspect_pairs, args.min_aspect_pairs)
    for note in notes:
        print(note, file=sys.stderr)
    done, failed, last = write_predictions(args, predictor, reviews, total, aspects, notes, ckpt)
    if args.text is not None:
        print(
            "  ".join(
                f"{e['aspect_zh']} {e['predicted_score']}"
                + (" (few training pairs)" if e["few_training_pairs"] else "")
                for e in last["aspects"].values()
            ),
            file=sys.stderr,
        )
    else:
        print(
            f"predict: {done} reviews, {failed} not predictable (their output says why), {len(aspects)} aspect(s) "
            f"each"
            + (f" -> {args.out}" if args.out != "-" else "")
            + (f"; pages in {args.explain}/" if args.explain else ""),
            file=sys.stderr,
        )
    return 0


def write_predictions(
    args: argparse.Namespace,
    predictor: Predictor,
    reviews: Iterator[Review],
    total: int | None,
    aspects: list[str],
    notes: list[str],
    ckpt: dict,
) -> tuple[int, int, dict]:
    """Score every review and write the output (and the pages); (reviews, not predictable, the last output)."""
    parquet = args.out.endswith(".parquet")
    rows: list[dict] = []
    index: list[IndexEntry] = []
    done = failed = 0
    last: dict = {}
    with (
        contextlib.nullcontext() if parquet else jsonl_sink(args.out) as sink,
        tqdm(total=total, desc="predict", unit=" reviews", file=sys.stderr, disable=args.text is not None) as bar,
    ):
        for chunk in chunks(reviews, REVIEWS_PER_CHUNK):
            for last, view in predictor.run(chunk, aspects, explain=args.explain is not None):
                if parquet:
                    rows.extend(parquet_rows(last))
                else:
                    sink.write(json.dumps(last, ensure_ascii=False) + "\n")
                if view is not None:
                    view.notes = notes
                    write_review(view, args.explain)
                    index.append(index_entry(view))
                done += 1
                failed += "error" in last
            bar.update(len(chunk))
    if parquet:
        write_table(
            pa.Table.from_pylist(rows, schema=PREDICTIONS_SCHEMA),
            args.out,
            metadata={
                "class_scores": json.dumps(list(predictor.labels.class_scores)),
                "data_source": checkpoint_source(ckpt),
                "min_aspect_pairs": str(args.min_aspect_pairs),
            },
        )
    if args.explain is not None:
        write_index(index, args.explain, f"What {args.model} attended to", notes)
    return done, failed, last


if __name__ == "__main__":
    raise SystemExit(main())
