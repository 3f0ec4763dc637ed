"""Stage `features`: one 2048-d ResNet-50 feature per distinct image path of the splits (`python -m
pipeline.features`, pipeline/features/stage.py).

    config.py      params.yaml `features` as a frozen dataclass
    device.py      the precision, threads and decode processes on the chosen device
    plan.py        the splits' image paths and contents
    cache.py       features kept across runs by (content, configuration)
    shards.py      the images to compute cut between processes or machines, merged back
    extraction.py  the backbone over batches of decoded images
    output.py      data/features/images.parquet, its metadata and counts; reading it back
    stage.py       the stage: plan, reuse, compute, write
"""

from pipeline.features.config import FeatureConfig
from pipeline.features.device import resolve_precision
from pipeline.features.extraction import extract, prepare_model
from pipeline.features.output import features_metadata, load_features, read_features
from pipeline.features.stage import main, run_features

__all__ = [
    "FeatureConfig",
    "extract",
    "features_metadata",
    "load_features",
    "main",
    "prepare_model",
    "read_features",
    "resolve_precision",
    "run_features",
]
