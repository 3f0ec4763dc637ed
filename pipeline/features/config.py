"""params.yaml `features`: the backbone's weights, the preprocessing, the batches, the device and the precision, as
one frozen dataclass. How many processes decode images is no param (a command-line option of the stage): the
features are the same for any count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from common.params import IMAGE_SIZE_RANGE, bounded, fail
from pipeline.imaging import Preprocessing


@dataclass(frozen=True)
class FeatureConfig:
    """params.yaml `features`."""

    weights: str = "auto"  # imagenet | random | auto (imagenet when obtainable, else random) | path to a .pth
    image_size: int = bounded(Preprocessing.image_size, *IMAGE_SIZE_RANGE)
    batch_size: int = bounded(16, 1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_image_pixels: int = bounded(Preprocessing.max_image_pixels, 1)  # larger images: refused as bombs
    seed: int = 0  # seeds the random init (weights: random, or auto without ImageNet weights)
    download_timeout_s: float = 20.0  # weights: auto/imagenet give up downloading after this many seconds
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # part of the cache key: bf16 and fp32 never mix

    def check(self) -> None:
        if not self.download_timeout_s > 0:
            raise fail(
                "features", "download_timeout_s", f"must be a number of seconds > 0, got {self.download_timeout_s}"
            )

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.image_size, self.max_image_pixels)
