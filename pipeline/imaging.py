"""Decoding one review image: the single check of "is this image usable?" that both `clean` and `features` apply.

No torch here, so the clean stage can import it cheaply; pipeline/image_data.py batches these decodes for the
backbone.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from common.params import DEFAULT_PARAMS, IMAGE_SIZE_RANGE, bounded, read_section

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# error kinds recorded as "<kind>: <detail>" in the features table
MISSING, UNREADABLE, TRUNCATED, TOO_LARGE, NON_FINITE = "missing", "unreadable", "truncated", "too_large", "non_finite"

# single-channel modes with more than 8 bits per sample (16-bit PNG greyscale opens as I;16); PIL's own
# convert("RGB") clips them at 255, so anything above 1/256 of full scale would turn white
WIDE_GREY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
WIDE_GREY_MAX = 65535.0


@dataclass(frozen=True)
class Preprocessing:
    """How an image is decoded: params.yaml's features.image_size and features.max_image_pixels, the two keys of
    the `features` section that the clean stage reads too (pipeline/features/config.py reads the whole section)."""

    image_size: int = bounded(224, *IMAGE_SIZE_RANGE)
    max_image_pixels: int = bounded(40_000_000, 1)  # larger images are refused as decompression bombs

    def describe(self) -> dict[str, Any]:
        """What shapes the features (recorded in the output's metadata and in the cache key)."""
        return {
            "decode": "PIL, EXIF orientation applied, JPEG draft decoding at >= target size",
            "color": "RGB (transparency composited on white; 16-bit grey scaled by 255/65535)",
            "resize": [self.image_size, self.image_size],
            "interpolation": "bilinear (PIL, antialiased), aspect ratio not kept",
            "scale": "1/255",
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
        }


PREPROCESSING_KEYS = frozenset(f.name for f in fields(Preprocessing))


def read_preprocessing(features: Any, source: str | Path = DEFAULT_PARAMS) -> Preprocessing:
    """The decoding settings from params.yaml's `features` section; its other keys are the features stage's."""
    if isinstance(features, Mapping):
        features = {key: value for key, value in features.items() if key in PREPROCESSING_KEYS}
    return read_section(Preprocessing, features, "features", source)


class ImageError(Exception):
    """Why one image cannot be used; `kind` is one of the error kinds above."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def error_kind(error: str) -> str:
    """The kind part of an error string written by this module ("too_large: ..." -> "too_large")."""
    return error.split(":", 1)[0]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes (the image_id); OSError when it cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _wide_grey_to_8bit(img: Image.Image) -> Image.Image:
    values = np.asarray(img, dtype=np.float64) * (255.0 / WIDE_GREY_MAX)
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in WIDE_GREY_MODES:
        img = _wide_grey_to_8bit(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if not has_alpha:
        return img.convert("RGB")
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def image_to_pixels(img: Image.Image, image_size: int) -> np.ndarray:
    """A decoded PIL image -> uint8 HWC RGB array resized to image_size² (PIL's antialiased bilinear)."""
    return np.array(to_rgb(img).resize((image_size, image_size), Image.Resampling.BILINEAR), dtype=np.uint8)


def normalise(pixels: np.ndarray) -> np.ndarray:
    """uint8 HWC RGB pixels -> float32 CHW, scaled to [0, 1] and ImageNet-normalised (one image; the features
    stage normalises whole batches in torch: pipeline/image_data.py)."""
    scaled = pixels.astype(np.float32) / np.float32(255.0)
    normalised = (scaled - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1))


def image_to_array(img: Image.Image, image_size: int) -> np.ndarray:
    """A decoded PIL image -> float32 CHW array, resized to image_size² and ImageNet-normalised."""
    return normalise(image_to_pixels(img, image_size))


def decode_pixels(path: Path, prep: Preprocessing) -> tuple[np.ndarray, tuple[int, int]]:
    """Read, check and resize one image file: uint8 HWC pixels and the file's (width, height); raises ImageError
    naming the kind of failure.

    This is the one usability check of the project: `clean` keeps an image exactly when this succeeds. Safe to
    call from several threads at once (PIL releases the GIL while it decodes and resizes)."""
    # PIL refuses images over twice its module-wide limit as it opens them; a larger max_image_pixels raises that
    # limit (only ever up, so threads decoding at once agree); a smaller one is applied below, per call
    if prep.max_image_pixels > (Image.MAX_IMAGE_PIXELS or 0):
        Image.MAX_IMAGE_PIXELS = prep.max_image_pixels
    return _decode_checked(path, prep)


def decode_image(path: Path, prep: Preprocessing) -> tuple[np.ndarray, tuple[int, int]]:
    """decode_pixels, normalised: float32 CHW, as the backbone reads one image."""
    pixels, size = decode_pixels(path, prep)
    return normalise(pixels), size


def _decode_checked(path: Path, prep: Preprocessing) -> tuple[np.ndarray, tuple[int, int]]:
    try:
        with warnings.catch_warnings():
            # PIL warns above its limit; the check below refuses what max_image_pixels does not allow
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size  # from the header: nothing decoded yet
                if width * height > prep.max_image_pixels:
                    bomb = (
                        " (over twice: a likely decompression bomb)"
                        if width * height > 2 * prep.max_image_pixels
                        else ""
                    )
                    raise ImageError(
                        TOO_LARGE, f"{width}x{height} pixels > max_image_pixels {prep.max_image_pixels}{bomb}"
                    )
                if img.format == "JPEG":
                    img.draft("RGB", (prep.image_size, prep.image_size))
                img.load()
                return image_to_pixels(ImageOps.exif_transpose(img), prep.image_size), (width, height)
    except ImageError:
        raise
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise ImageError(MISSING, f"no such file ({type(exc).__name__})") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(TOO_LARGE, str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(UNREADABLE, "not a recognised image format") from exc
    except OSError as exc:
        kind = TRUNCATED if "truncated" in str(exc).lower() else UNREADABLE
        raise ImageError(kind, str(exc) or type(exc).__name__) from exc
    except Exception as exc:  # noqa: BLE001 - corrupt data makes PIL raise almost anything
        raise ImageError(UNREADABLE, f"{type(exc).__name__}: {exc}") from exc
