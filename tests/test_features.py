"""The features stage on a handful of tiny generated images, with real ResNet-50 (random or local weights)."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from common.errors import UserError
from common.params import read_section
from pipeline import backbone as backbone_module
from pipeline.backbone import IMAGENET_FILE_NAME, file_backbone, load_backbone, random_backbone
from pipeline.features import FeatureConfig, features_metadata, load_features, main, read_features, run_features
from pipeline.features.stage import parser
from pipeline.imaging import IMAGENET_MEAN, IMAGENET_STD, ImageError, Preprocessing, decode_image
from pipeline.io import write_frame
from pipeline.schema import FEATURE_DIM, FEATURES_SCHEMA, PAIRS_SCHEMA

IMAGES = "data/raw/zol/images"
CONFIG = FeatureConfig(
    weights="random",
    image_size=64,
    batch_size=4,
    device="cpu",
    max_image_pixels=5000,
    seed=0,
    download_timeout_s=2,
    precision="fp32",
)


def noisy(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = (height, width, channels) if channels else (height, width)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def encoded(img: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, quality=90) if fmt == "JPEG" else img.save(buffer, fmt)
    return buffer.getvalue()


def write_splits(root: Path, reviews: dict[str, dict[str, list[str]]]) -> Path:
    """reviews: split -> {review_id: image file names under IMAGES (or "" for an empty entry)}."""
    splits = root / "data" / "splits"
    for split in ("train", "dev", "test"):
        rows = [
            {
                "review_id": review_id,
                "product_id": "p1",
                "product_name": "phone",
                "brand": "b",
                "aspect": "appearance",
                "aspect_zh": "外观",
                "score": 8,
                "label": 7,
                "text": "好",
                "image_paths": [f"{IMAGES}/{name}" if name else "" for name in names],
                "n_images": len(names),
                "release_split": None,
                "presegmented": False,
            }
            for review_id, names in reviews.get(split, {}).items()
        ]
        write_frame(pd.DataFrame(rows, columns=PAIRS_SCHEMA.names), splits / f"{split}.parquet", PAIRS_SCHEMA)
    return splits


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    """9 distinct paths: 4 usable (two of them the same bytes), corrupt, empty, truncated, too large, missing."""
    images = tmp_path / IMAGES
    images.mkdir(parents=True)
    a = encoded(noisy(48, 40, 1), "JPEG")
    (images / "a.jpg").write_bytes(a)
    (images / "copy_of_a.jpg").write_bytes(a)
    (images / "b.png").write_bytes(encoded(noisy(40, 40, 2, "RGBA"), "PNG"))
    (images / "c.png").write_bytes(encoded(noisy(30, 50, 3).convert("L"), "PNG"))
    (images / "corrupt.jpg").write_bytes(b"this is not an image")
    (images / "empty.jpg").write_bytes(b"")
    whole = encoded(noisy(64, 64, 4), "JPEG")
    (images / "truncated.jpg").write_bytes(whole[: len(whole) * 6 // 10])
    (images / "huge.png").write_bytes(encoded(noisy(100, 100, 5), "PNG"))  # 10,000 px > max_image_pixels 5,000
    write_splits(
        tmp_path,
        {
            "train": {"r1": ["a.jpg", "b.png", "missing.jpg"], "r2": ["copy_of_a.jpg", "corrupt.jpg"]},
            "dev": {"r3": ["c.png", "truncated.jpg", "empty.jpg"], "r5": [""]},
            "test": {"r4": ["huge.png", "a.jpg"], "r6": []},
        },
    )
    return tmp_path


def run(
    root: Path,
    config: FeatureConfig = CONFIG,
    out: str = "images.parquet",
    cache: str = "cache.parquet",
    num_workers: int = 0,
) -> dict:
    features = root / "data" / "features"
    return run_features(
        config,
        root / "data" / "splits",
        features / out,
        features / cache,
        root / "metrics" / "features.json",
        root=root,
        shard_dir=features / "shards",
        log_dir=root / "logs",
        detail_path=root / "reports" / "features_detail.json",
        num_workers=num_workers,
    )


def test_one_row_per_distinct_path_with_errors_and_content_ids(site: Path):
    metrics = run(site, num_workers=2)
    table = pq.read_table(site / "data/features/images.parquet")
    assert table.schema.remove_metadata() == FEATURES_SCHEMA
    rows = {Path(r["path"]).name: r for r in table.to_pylist()}
    assert [Path(p).name for p in table["path"].to_pylist()] == [
        "a.jpg",
        "b.png",
        "c.png",
        "copy_of_a.jpg",
        "corrupt.jpg",
        "empty.jpg",
        "huge.png",
        "missing.jpg",
        "truncated.jpg",
    ]
    assert {n: r["ok"] for n, r in rows.items()} == {
        "a.jpg": True,
        "b.png": True,
        "c.png": True,
        "copy_of_a.jpg": True,
        "corrupt.jpg": False,
        "empty.jpg": False,
        "huge.png": False,
        "missing.jpg": False,
        "truncated.jpg": False,
    }
    assert {n: (r["error"] or "").split(":")[0] for n, r in rows.items() if not r["ok"]} == {
        "corrupt.jpg": "unreadable",
        "empty.jpg": "unreadable",
        "huge.png": "too_large",
        "missing.jpg": "missing",
        "truncated.jpg": "truncated",
    }
    assert rows["huge.png"]["error"] == "too_large: 100x100 pixels > max_image_pixels 5000"
    assert rows["a.jpg"]["image_id"] == hashlib.sha256((site / IMAGES / "a.jpg").read_bytes()).hexdigest()
    assert rows["copy_of_a.jpg"]["image_id"] == rows["a.jpg"]["image_id"]
    assert rows["copy_of_a.jpg"]["feature"] == rows["a.jpg"]["feature"]
    assert rows["missing.jpg"]["image_id"] is None
    for name, row in rows.items():
        vector = np.asarray(row["feature"], dtype=np.float32)
        assert vector.shape == (FEATURE_DIM,)
        assert bool(np.any(vector != 0)) == row["ok"], name
        assert row["ok"] == (row["error"] is None)
        assert np.isfinite(vector).all()
    assert metrics["images_total"] == 9 and metrics["images_ok"] == 4 and metrics["images_failed"] == 5
    assert metrics["failed_by_error"] == {"missing": 1, "too_large": 1, "truncated": 1, "unreadable": 2}
    assert metrics["unique_contents"] == 7  # a (twice), b, c, corrupt, empty, truncated, huge
    assert metrics["computed"] == 3 and metrics["reused_from_cache"] == 0 and metrics["decode_failed"] == 4
    assert metrics["empty_path_entries"] == 1
    assert metrics["weights"] == "random:seed=0" and metrics["device"] == "cpu"
    assert metrics["precision"] == "fp32" and metrics["precision_param"] == "fp32"
    assert json.loads((site / "reports/features_detail.json").read_text()) == metrics
    assert json.loads((site / "metrics/features.json").read_text()) == {"images_ok": 4, "images_failed": 5}
    assert not {"seconds", "images_per_s"} & set(metrics)  # timings go to the untracked run log
    log = json.loads((site / "logs/features.json").read_text())
    assert log["seconds"] > 0 and log["images_per_s"] > 0 and log["num_workers"] == 2
    meta = features_metadata(site / "data/features/images.parquet")
    assert meta["weights"] == "random:seed=0" and meta["precision"] == "fp32"
    assert meta["backbone"].startswith("torchvision.models.resnet50")
    assert json.loads(meta["preprocessing"])["resize"] == [64, 64]
    assert meta["torch"] == torch.__version__


def test_rerun_reuses_cache_and_one_new_image_computes_exactly_one(site: Path):
    out = site / "data/features/images.parquet"
    run(site)
    first = out.read_bytes()
    cache_first = (site / "data/features/cache.parquet").read_bytes()
    again = run(site)
    assert (again["computed"], again["reused_from_cache"]) == (0, 7 - 4)
    assert out.read_bytes() == first
    assert (site / "data/features/cache.parquet").read_bytes() == cache_first

    (site / IMAGES / "d.jpg").write_bytes(encoded(noisy(32, 32, 9), "JPEG"))
    write_splits(
        site,
        {
            "train": {"r1": ["a.jpg", "b.png", "missing.jpg"], "r2": ["copy_of_a.jpg", "corrupt.jpg"], "r7": ["d.jpg"]},
            "dev": {"r3": ["c.png", "truncated.jpg", "empty.jpg"]},
            "test": {"r4": ["huge.png", "a.jpg"]},
        },
    )
    before = load_features(out)
    grown = run(site)
    assert (grown["computed"], grown["reused_from_cache"], grown["images_total"]) == (1, 3, 10)
    after = load_features(out)
    assert sorted(after) == sorted(before) + [f"{IMAGES}/d.jpg"]
    for path, vector in before.items():
        assert np.array_equal(after[path], vector)


def test_features_are_deterministic_without_cache(site: Path):
    """Two cold runs (no cache) write identical bytes: the CPU feature values are deterministic."""
    run(site, out="one.parquet", cache="cache_one.parquet")
    run(site, replace(CONFIG, batch_size=3), out="two.parquet", cache="cache_two.parquet", num_workers=2)
    features = site / "data/features"
    one, two = read_features(features / "one.parquet"), read_features(features / "two.parquet")
    assert one[0] == two[0] and np.array_equal(one[2], two[2])
    np.testing.assert_allclose(one[1], two[1], rtol=1e-4, atol=1e-4)  # other batch size: same up to float sums
    run(site, out="three.parquet", cache="cache_three.parquet")
    assert (features / "one.parquet").read_bytes() == (features / "three.parquet").read_bytes()


def test_new_weights_invalidate_the_cache(site: Path):
    run(site)
    other = run(site, replace(CONFIG, seed=1))
    assert (other["computed"], other["reused_from_cache"]) == (3, 0)
    back = run(site)
    assert (back["computed"], back["reused_from_cache"]) == (0, 3)


def test_lowered_max_image_pixels_refuses_cached_images(site: Path):
    run(site)
    # a.jpg 48x40 = 1920 px, b 1600, c 1500, truncated.jpg 64x64 = 4096 (refused before its decoding fails)
    metrics = run(site, replace(CONFIG, max_image_pixels=1999))
    assert metrics["computed"] == 0 and metrics["images_ok"] == 4
    assert metrics["failed_by_error"] == {"missing": 1, "too_large": 2, "unreadable": 2}
    metrics = run(site, replace(CONFIG, max_image_pixels=1700))  # now the cached a.jpg and its copy too
    assert metrics["computed"] == 0 and metrics["images_ok"] == 2
    assert metrics["failed_by_error"] == {"missing": 1, "too_large": 4, "unreadable": 2}


def test_decompression_bombs_are_refused_from_the_header(site: Path):
    huge = site / IMAGES / "huge.png"
    with pytest.raises(ImageError, match="^too_large: 100x100 pixels > max_image_pixels 9999$"):
        decode_image(huge, Preprocessing(64, 9999))
    with pytest.raises(ImageError, match="^too_large: .*decompression bomb"):  # over twice the limit
        decode_image(huge, Preprocessing(64, 4999))
    assert decode_image(huge, Preprocessing(64, 10_000))[1] == (100, 100)


def test_preprocessing_is_exact_imagenet_normalisation(tmp_path: Path):
    prep = Preprocessing(image_size=64, max_image_pixels=10_000)
    path = tmp_path / "red.png"
    Image.new("RGB", (20, 30), (255, 0, 0)).save(path, "PNG")
    array, size = decode_image(path, prep)
    assert size == (20, 30) and array.shape == (3, 64, 64) and array.dtype == np.float32
    expected = [
        (1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0],
        -IMAGENET_MEAN[1] / IMAGENET_STD[1],
        -IMAGENET_MEAN[2] / IMAGENET_STD[2],
    ]
    for channel, value in enumerate(expected):
        np.testing.assert_allclose(array[channel], value, rtol=1e-6)
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path, "PNG")  # fully transparent -> white
    array, _ = decode_image(path, prep)
    np.testing.assert_allclose(
        array[:, 0, 0], [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=False)], rtol=1e-6
    )


def test_local_pth_loads_and_names_its_hash(tmp_path: Path):
    reference = random_backbone(3).model.state_dict()
    checkpoint = dict(reference, **{"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)})
    path = tmp_path / "resnet50.pth"
    torch.save(checkpoint, path)
    loaded = load_backbone(str(path), seed=0, download_timeout_s=1)
    assert loaded.weights == f"file:{path}:{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    state = loaded.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in reference.items())
    assert not loaded.model.training

    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(UserError, match="wrong.pth is not a torchvision ResNet-50 state dict"):
        file_backbone(tmp_path / "wrong.pth")
    with pytest.raises(UserError, match="nothere.pth not found"):
        load_backbone(str(tmp_path / "nothere.pth"), seed=0, download_timeout_s=1)


def test_imagenet_comes_from_the_hub_cache_without_network(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(backbone_module, "IMAGENET_URL", f"http://127.0.0.1:9/{IMAGENET_FILE_NAME}")
    reference = random_backbone(5).model.state_dict()
    cached = tmp_path / "torch" / "hub" / "checkpoints" / IMAGENET_FILE_NAME
    cached.parent.mkdir(parents=True)
    torch.save(dict(reference, **{"fc.weight": torch.ones(1000, 2048), "fc.bias": torch.ones(1000)}), cached)
    loaded = load_backbone("imagenet", seed=0, download_timeout_s=1)
    assert loaded.weights == "imagenet:IMAGENET1K_V2"
    assert torch.equal(loaded.model.state_dict()["conv1.weight"], reference["conv1.weight"])


def test_auto_falls_back_to_random_loudly_when_weights_cannot_be_had(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.setattr(backbone_module, "IMAGENET_URL", f"http://127.0.0.1:9/{IMAGENET_FILE_NAME}")
    loaded = load_backbone("auto", seed=4, download_timeout_s=2)
    assert loaded.weights == "random:seed=4"
    assert torch.equal(loaded.model.state_dict()["conv1.weight"], random_backbone(4).model.state_dict()["conv1.weight"])
    err = capsys.readouterr().err
    assert "WARNING: ImageNet weights for ResNet-50 are unavailable" in err and "RANDOM weights (seed=4)" in err
    assert "127.0.0.1:9" in err
    with pytest.raises(UserError, match="features.weights=imagenet"):
        load_backbone("imagenet", seed=4, download_timeout_s=2)


def test_cli_help_bad_params_and_missing_splits(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "--params" in capsys.readouterr().out
    params = tmp_path / "params.yaml"
    params.write_text(
        "features:\n  weights: random\n  image_size: 64\n  batch_size: 2\n"
        "  device: tpu\n  max_image_pixels: 100\n  seed: 0\n  download_timeout_s: 1\n  precision: auto\n"
    )
    assert main(["--params", str(params)]) == 2
    assert "'features.device' must be one of auto, cpu, cuda, got 'tpu'" in capsys.readouterr().err
    params.write_text(params.read_text().replace("tpu", "cpu").replace("precision: auto", "precision: fp16"))
    assert main(["--params", str(params)]) == 2
    assert "'features.precision' must be one of auto, fp32, bf16, got 'fp16'" in capsys.readouterr().err
    params.write_text(params.read_text().replace("precision: fp16", "precision: auto"))
    assert main(["--params", str(params), "--shard", "2/2"]) == 2
    assert "--shard must be i/n with 0 <= i < n" in capsys.readouterr().err
    assert main(["--params", str(params), "--splits", str(tmp_path / "nosplits")]) == 2
    assert "nosplits/train.parquet not found" in capsys.readouterr().err


def test_decode_workers_come_from_the_command_line_or_the_environment(monkeypatch, capsys):
    """How many processes decode is no param (it changes no feature): --num-workers, else $ZOL_FEATURES_WORKERS."""
    monkeypatch.delenv("ZOL_FEATURES_WORKERS", raising=False)
    assert parser().parse_args([]).num_workers == "auto"
    assert parser().parse_args(["--num-workers", "3"]).num_workers == 3
    monkeypatch.setenv("ZOL_FEATURES_WORKERS", "0")
    assert parser().parse_args([]).num_workers == 0
    for argv, env in ((["--num-workers", "-1"], "0"), ([], "many")):
        monkeypatch.setenv("ZOL_FEATURES_WORKERS", env)
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and "must be auto or a count >= 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "mode,fmt", [("L", "PNG"), ("P", "GIF"), ("CMYK", "JPEG"), ("LA", "PNG"), ("I;16", "PNG"), ("1", "BMP")]
)
def test_every_common_mode_becomes_three_finite_channels(tmp_path: Path, mode: str, fmt: str):
    path = tmp_path / f"image.{fmt.lower()}"
    noisy(24, 16, 0).convert(mode).save(path, fmt)
    array, size = decode_image(path, Preprocessing(image_size=32, max_image_pixels=10_000))
    assert size == (24, 16) and array.shape == (3, 32, 32) and np.isfinite(array).all()


def test_splits_without_any_image_still_get_every_output(tmp_path: Path, monkeypatch):
    """Text-only data (the public Multi-ZOL part): valid empty features and cache, and no backbone is loaded."""
    write_splits(tmp_path, {"train": {"r1": [], "r2": []}, "dev": {"r3": []}, "test": {"r4": []}})

    def no_backbone(*args):
        raise AssertionError("the backbone must not be loaded without images")

    monkeypatch.setattr("pipeline.features.stage.load_backbone", no_backbone)
    metrics = run(tmp_path)
    features = pq.read_table(tmp_path / "data/features/images.parquet")
    assert features.num_rows == 0 and features.schema.remove_metadata() == FEATURES_SCHEMA
    assert features_metadata(tmp_path / "data/features/images.parquet")["weights"].startswith("none")
    assert pq.read_table(tmp_path / "data/features/cache.parquet").num_rows == 0
    assert (metrics["images_total"], metrics["images_ok"], metrics["computed"]) == (0, 0, 0)
    first = (tmp_path / "data/features/images.parquet").read_bytes()
    run(tmp_path)
    assert (tmp_path / "data/features/images.parquet").read_bytes() == first
    assert not list(tmp_path.rglob("*.tmp"))


def test_16_bit_greyscale_png_keeps_its_grey_levels(tmp_path: Path):
    """65535-scale values become 255-scale ones: mid grey stays mid grey (PIL alone would saturate it to white)."""
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    array, _ = decode_image(path, Preprocessing(image_size=32, max_image_pixels=10_000))
    expected = [(128 / 255 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=False)]
    np.testing.assert_allclose(array[:, 0, 0], expected, rtol=1e-5)
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(path)
    white = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=False)]
    np.testing.assert_allclose(decode_image(path, Preprocessing(32, 10_000))[0][:, 0, 0], white, rtol=1e-5)


# ---- a damaged cache: its bad rows are dropped and counted, never shifted onto other images ----------------


def _damage_cache(path: Path, row: int, damage: str) -> str:
    """Rewrite the cache with one row damaged (feature as a variable-length list, as a foreign writer might);
    returns that row's image_id."""
    import pyarrow as pa

    rows = pq.read_table(path).to_pylist()
    target = rows[row]
    if damage == "null_feature":
        target["feature"] = None
    elif damage == "nan_feature":
        target["feature"] = [float("nan")] * FEATURE_DIM
    elif damage == "null_width":
        target["width"] = None
    elif damage == "short_feature":
        target["feature"] = target["feature"][:3]
    schema = pa.schema(
        [
            ("fingerprint", pa.string()),
            ("image_id", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("feature", pa.list_(pa.float32())),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return target["image_id"]


def test_damaged_cache_row_is_dropped_counted_and_recomputed(site: Path, capsys):
    """Before: a null feature shifted every later row onto other images' features, a null width was a
    traceback, a NaN feature was reused as ok and one short feature lost the whole cache."""
    run(site)
    reference = load_features(site / "data/features/images.parquet")
    cache = site / "data/features/cache.parquet"
    good_cache = cache.read_bytes()
    assert pq.read_table(cache).num_rows == 3
    for damage in ("null_feature", "nan_feature", "null_width", "short_feature"):
        cache.write_bytes(good_cache)
        _damage_cache(cache, 0, damage)
        capsys.readouterr()
        again = run(site, out=f"{damage}.parquet")
        assert (again["computed"], again["reused_from_cache"]) == (1, 2), damage  # only the damaged row again
        again_features = load_features(site / f"data/features/{damage}.parquet")
        assert sorted(again_features) == sorted(reference)
        for path, vector in reference.items():  # every image keeps its own feature
            np.testing.assert_allclose(again_features[path], vector, rtol=1e-4, atol=1e-4, err_msg=damage)
        assert "dropped 1 of 3 rows" in capsys.readouterr().err
        assert json.loads((site / "logs/features.json").read_text())["cache_rows_dropped"] == 1
        rows = pq.read_table(cache).to_pylist()
        assert len(rows) == 3 and all(r["width"] and np.isfinite(r["feature"]).all() for r in rows)


def test_features_file_with_a_null_feature_is_one_line_not_shifted_rows(tmp_path: Path):
    import pyarrow as pa

    path = tmp_path / "images.parquet"
    schema = pa.schema([("path", pa.string()), ("ok", pa.bool_()), ("feature", pa.list_(pa.float32(), FEATURE_DIM))])
    pq.write_table(
        pa.Table.from_pylist(
            [{"path": "a", "ok": True, "feature": None}, {"path": "b", "ok": True, "feature": [1.0] * FEATURE_DIM}],
            schema=schema,
        ),
        path,
    )
    with pytest.raises(UserError, match="holds 1 null entries among 2 rows"):
        load_features(path)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("image_size", 100_000, "'features.image_size' must be in 32..1024, got 100000"),
        ("image_size", 16, "'features.image_size' must be in 32..1024, got 16"),
        ("download_timeout_s", float("nan"), "'features.download_timeout_s' must be a finite number, got nan"),
        ("download_timeout_s", 10**400, "'features.download_timeout_s' must be a finite number"),
        ("download_timeout_s", 0, "'features.download_timeout_s' must be a number of seconds > 0, got 0.0"),
        ("num_workers", 2, "features.num_workers; valid keys:"),
    ],
)
def test_out_of_range_params_are_one_line(key, value, message):
    section = {
        "weights": "random",
        "image_size": 64,
        "batch_size": 2,
        "device": "cpu",
        "max_image_pixels": 100,
        "seed": 0,
        "download_timeout_s": 1,
        "precision": "auto",
        key: value,
    }
    with pytest.raises(UserError, match=message.replace(".", r"\.")) as info:
        read_section(FeatureConfig, section, "features")
    assert "\n" not in str(info.value)
