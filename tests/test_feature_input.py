"""The features stage's input path: images decode to uint8 pixels (in threads beside the backbone, or in worker
processes) and a batch is normalised in one pass into a channels-last tensor. The features stay those of the
per-image float path it replaced (cosine >= 0.999 on a real ResNet-50), in any decode mode."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.backbone import random_backbone
from pipeline.features import extract, prepare_model
from pipeline.image_data import collate_decoded, fixed_batches, make_loader, model_input, threaded_batches
from pipeline.imaging import ImageError, Preprocessing, decode_image, decode_pixels, normalise

PREP = Preprocessing(image_size=32, max_image_pixels=10_000)


def write_images(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(7)
    paths = []
    for index in range(count):
        path = folder / f"img{index}.{'jpg' if index % 2 else 'png'}"
        size = (40 + 3 * index, 30 + 2 * index)
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(4, 40), st.integers(0, 2**32 - 1))
def test_batch_normalisation_is_the_per_image_normalisation(count: int, size: int, seed: int):
    pixels = np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    batch = model_input(torch.from_numpy(pixels), torch.device("cpu"))
    assert batch.shape == (count, 3, size, size) and batch.dtype == torch.float32
    assert batch.is_contiguous(memory_format=torch.channels_last)
    expected = np.stack([normalise(p) for p in pixels])
    np.testing.assert_allclose(batch.numpy(), expected, rtol=1e-5, atol=1e-6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_any_bytes_decode_to_pixels_or_a_named_error(tmp_path: Path, data: bytes):
    path = tmp_path / "file.jpg"
    path.write_bytes(data)
    try:
        pixels, size = decode_pixels(path, PREP)
    except ImageError as exc:
        assert exc.kind in {"missing", "unreadable", "truncated", "too_large", "non_finite"}
        return
    assert pixels.dtype == np.uint8 and pixels.shape == (32, 32, 3) and size[0] * size[1] <= 10_000


def test_stage_features_match_the_per_image_float_path(tmp_path: Path):
    """The old path (float32 CHW per image, stacked, then made channels-last) against the stage's on a real
    random-weight ResNet-50, fp32: the same features up to float rounding."""
    paths = write_images(tmp_path, 6)
    model = prepare_model(random_backbone(0).model, torch.device("cpu"))
    old_input = torch.stack([torch.from_numpy(decode_image(p, PREP)[0]) for p in paths])
    with torch.inference_mode():
        old = model(old_input.contiguous(memory_format=torch.channels_last)).numpy()
    new, errors, sizes = extract(model, paths, PREP, 4, 0, torch.device("cpu"), "fp32")
    assert not errors and sizes[0] == (40, 30)
    cosine = (old * new).sum(1) / np.linalg.norm(old, axis=1) / np.linalg.norm(new, axis=1)
    assert cosine.min() >= 0.999999
    np.testing.assert_allclose(new, old, rtol=1e-3, atol=1e-4)


def test_every_decode_mode_gives_the_same_batches_with_errors_in_place(tmp_path: Path):
    paths = write_images(tmp_path, 7)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    files = [*paths[:3], tmp_path / "bad.jpg", tmp_path / "missing.png", *paths[3:]]
    batches = fixed_batches(len(files), 3)

    def collect(num_workers: int, threads: int) -> list:
        return [
            (b.indices, b.ok_indices, b.errors, b.sizes, b.pixels.numpy().tobytes())
            for b in make_loader(files, PREP, batches, num_workers, decode_threads=threads)
        ]

    one_thread = collect(0, 1)
    assert [indices for indices, *_ in one_thread] == batches
    assert one_thread[1][2].keys() == {3, 4} and one_thread[1][2][4].startswith("missing:")
    assert one_thread[1][2][3].startswith("unreadable:")
    assert collect(0, 3) == one_thread and collect(2, 1) == one_thread


def test_a_batch_of_only_errors_is_an_empty_uint8_batch():
    batch = collate_decoded([(0, None, "missing: x", None)])
    assert batch.pixels.dtype == torch.uint8 and batch.pixels.numel() == 0 and batch.ok_indices == []


def test_a_consumer_that_stops_early_leaves_no_decode_thread(tmp_path: Path):
    paths = write_images(tmp_path, 9)
    batches = threaded_batches(paths, PREP, fixed_batches(len(paths), 2), threads=2)
    first = next(batches)
    assert first.indices == [0, 1]
    batches.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("decode")]


def test_a_file_removed_after_planning_is_an_error_not_a_crash(tmp_path: Path):
    paths = write_images(tmp_path, 4)
    paths[2].unlink()
    features, errors, _ = extract(
        prepare_model(random_backbone(0).model, torch.device("cpu")), paths, PREP, 2, 0, torch.device("cpu"), "fp32"
    )
    assert list(errors) == [2] and errors[2].startswith("missing:")
    assert not features[2].any() and features[[0, 1, 3]].any(axis=1).all()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_pixels_and_the_float_path_agree(tmp_path: Path, fmt: str):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 60, 3), dtype=np.uint8)).save(buffer, fmt)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(buffer.getvalue())
    pixels, size = decode_pixels(path, PREP)
    array, same_size = decode_image(path, PREP)
    assert size == same_size == (60, 50)
    np.testing.assert_array_equal(normalise(pixels), array)
