"""Predict the aspect scores of new reviews with a trained checkpoint (any model.family), and show what MIMN
attended to.

    python -m tools.predict --text "拍照很清晰，电池能用一天" [--image photo.jpg ...]
    python -m tools.predict --input data/raw/zol/reviews.jsonl --out predictions.jsonl
    python -m tools.predict --input data/segmented/test.parquet --out predictions.parquet --explain explain/

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
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from common.aspects import CANONICAL_ASPECTS
from common.device import DEVICES, choose_device
from common.errors import UserError, cli_entry
from common.params import DEFAULT_PARAMS, load_params, load_section, read_section
from model.checkpoint import MODEL_PATH, load_checkpoint
from model.data import FEATURES_PATH
from model.labels import LabelMap
from model.linear import LinearModel
from model.provenance import DEFAULT_MIN_ASPECT_PAIRS, checkpoint_aspect_pairs, model_notes
from model.vocab import Vocab
from pipeline.features.config import FeatureConfig
from pipeline.segment import Segmenter, SegmentParams
from tools.predict_images import ImageFeaturizer, checkpoint_features_record, trained_without_images
from tools.predict_inputs import Preprocessing, Review, review_from_text, reviews_from_jsonl, reviews_from_parquet
from tools.predict_output import write_predictions
from tools.predict_scoring import LinearScorer, NeuralScorer, Predictor

# the baselines that read text alone, as in the paper (docs/baselines.md): their images are not featurised
TEXT_ONLY_FAMILIES = frozenset({"lstm", "atae_lstm", "memnet", "ian", "ram"})
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000  # params.yaml's features.max_image_pixels


def add_input_options(parser: argparse.ArgumentParser) -> None:
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


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=MODEL_PATH, help="checkpoint (default: %(default)s)")
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


def add_image_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        help="ResNet-50 weights for new images: imagenet, random:seed=N or a .pth path "
        "(default: the ones the model's training features were computed with; others are refused)",
    )
    parser.add_argument(
        "--features",
        type=Path,
        default=FEATURES_PATH,
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
    parser.add_argument("--device", choices=DEVICES, default="auto", help="default: %(default)s (GPU when present)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.predict",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input_options(parser)
    add_model_options(parser)
    add_image_options(parser)
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


def segment_params(params_path: Path) -> SegmentParams:
    """The segment stage's params (params.yaml `segment`), read as that stage reads them."""
    return load_section(SegmentParams, "segment", params_path)


def read_reviews(args: argparse.Namespace, segmenter: Segmenter) -> tuple[Iterator[Review], int | None]:
    """The reviews to score and their count when known: one typed in, raw JSON Lines or a Parquet split."""
    if args.text is not None:
        return iter([review_from_text(args.text, args.image, args.review_id, segmenter)]), 1
    if not args.input.is_file():
        raise UserError(f"--input {args.input}: no such file")
    if args.input.suffix == ".parquet":
        return reviews_from_parquet(args.input, segmenter), None
    # decodability as the clean stage judges it (the target size only picks JPEG draft decoding)
    features = load_params(None, args.params).get("features")  # a params file without it: the defaults
    image_size = read_section(FeatureConfig, features, "features", args.params).image_size
    return reviews_from_jsonl(args.input, segmenter, Preprocessing(image_size, args.max_image_pixels)), None


def predict(args: argparse.Namespace) -> str:
    """Score the reviews, write the output; the summary line (stderr, so that stdout holds only the output)."""
    check_destinations(args)
    aspects = list(dict.fromkeys(args.aspect or CANONICAL_ASPECTS))
    device = choose_device(args.device, "--device")
    model, ckpt = load_checkpoint(args.model)
    segmenter = Segmenter(segment_params(args.params))
    predictor = make_predictor(args, model, ckpt, segmenter, device, args.explain is not None)
    reviews, total = read_reviews(args, segmenter)
    notes = model_notes(ckpt, aspects, predictor.aspect_pairs, args.min_aspect_pairs)
    for note in notes:
        print(note, file=sys.stderr)
    done, failed, last = write_predictions(args, predictor, reviews, total, aspects, notes, ckpt)
    if args.text is not None:
        return "  ".join(
            f"{e['aspect_zh']} {e['predicted_score']}" + (" (few training pairs)" if e["few_training_pairs"] else "")
            for e in last["aspects"].values()
        )
    return (
        f"predict: {done} reviews, {failed} not predictable (their output says why), {len(aspects)} aspect(s) each"
        + (f" -> {args.out}" if args.out != "-" else "")
        + (f"; pages in {args.explain}/" if args.explain else "")
    )


@cli_entry
def main(argv: list[str] | None = None) -> int:
    print(predict(parse_args(argv)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
