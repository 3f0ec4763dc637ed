"""Small review photos for the offline mirror whose look carries the camera and appearance scores.

Every photo is a little outdoor scene (sky gradient, sun, ground, buildings) with the reviewed phone in it.
The camera score sets the global quality: a low score gives a dark, purple-cast, blurred and noisy photo,
a high one a bright, sharp photo with natural colours. The appearance score sets the phone body: a vivid,
smooth, glossy body for a high score, a dull grey-brown scratched one for a low score. The signal is global
(brightness, hue, noise), so even a randomly initialised CNN keeps it in its pooled features.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZES: tuple[tuple[int, int], ...] = ((160, 120), (240, 180), (320, 240))
JPEG_QUALITY = 75


def _unit(score: float) -> float:
    """2..10 -> 0..1."""
    return float(np.clip((score - 2.0) / 8.0, 0.0, 1.0))


def _scene(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    horizon = int(height * rng.uniform(0.45, 0.7))
    rows = np.linspace(0.0, 1.0, horizon)[:, None]
    sky_top, sky_bottom = np.array([70, 130, 215]), np.array([200, 225, 250])
    pixels = np.zeros((height, width, 3), dtype=np.float64)
    pixels[:horizon] = (sky_top * (1 - rows) + sky_bottom * rows)[:, None, :]
    ground = np.array([rng.uniform(60, 110), rng.uniform(110, 160), rng.uniform(50, 90)])
    ramp = np.linspace(1.0, 0.7, height - horizon)[:, None, None]
    pixels[horizon:] = ground * ramp
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    sun_x, sun_r = rng.uniform(0.1, 0.9) * width, rng.uniform(0.05, 0.1) * width
    draw.ellipse((sun_x - sun_r, 0.1 * height, sun_x + sun_r, 0.1 * height + 2 * sun_r), fill=(255, 240, 190))
    for _ in range(int(rng.integers(2, 6))):
        x0 = rng.uniform(0, 0.85) * width
        w, h = rng.uniform(0.08, 0.2) * width, rng.uniform(0.15, 0.4) * height
        shade = tuple(int(v) for v in rng.uniform(120, 220, size=3))
        draw.rectangle((x0, horizon - h, x0 + w, horizon), fill=shade)
        for wy in np.arange(horizon - h + 4, horizon - 4, 8):
            draw.line((x0 + 3, wy, x0 + w - 3, wy), fill=(60, 70, 90), width=1)
    return image


def _phone(image: Image.Image, rng: np.random.Generator, appearance: float) -> None:
    """Draw the phone body; colour, gloss and smoothness follow the appearance score."""
    a = _unit(appearance)
    width, height = image.size
    ph_h = rng.uniform(0.6, 0.85) * height
    ph_w = ph_h * 0.55
    x0 = rng.uniform(0.05, 0.95) * width - ph_w / 2
    y0 = (height - ph_h) * rng.uniform(0.3, 0.7)
    vivid = np.array(((225, 180, 60), (40, 110, 230), (230, 60, 90), (60, 200, 200))[int(rng.integers(0, 4))])
    dull = np.array((70, 64, 58))
    body = tuple(int(v) for v in dull * (1 - a) + vivid * a)
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((x0, y0, x0 + ph_w, y0 + ph_h), radius=max(1, int(ph_w * (0.05 + 0.2 * a))), fill=body)
    # gloss: a bright highlight stripe on good-looking bodies
    gloss = int(120 * a)
    draw.polygon(
        ((x0 + ph_w * 0.15, y0 + 2), (x0 + ph_w * 0.45, y0 + 2), (x0 + ph_w * 0.15, y0 + ph_h * 0.5)),
        fill=tuple(min(255, v + gloss) for v in body),
    )
    draw.ellipse(
        (x0 + ph_w * 0.35, y0 + ph_h * 0.08, x0 + ph_w * 0.65, y0 + ph_h * 0.08 + ph_w * 0.3), fill=(25, 25, 30)
    )
    # scratches on ugly bodies
    for _ in range(int(40 * (1 - a))):
        sx, sy = x0 + rng.uniform(0, ph_w), y0 + rng.uniform(0, ph_h)
        draw.line((sx, sy, sx + rng.uniform(-6, 6), sy + rng.uniform(-6, 6)), fill=(60, 55, 50), width=1)


def _degrade(image: Image.Image, rng: np.random.Generator, camera: float) -> Image.Image:
    """Camera quality: blur, darkness, purple cast, low contrast and noise grow as the score falls."""
    bad = 1.0 - _unit(camera)
    if bad > 0.05:
        image = image.filter(ImageFilter.GaussianBlur(radius=3.0 * bad))
    pixels = np.asarray(image, dtype=np.float64)
    gain = 1.0 - 0.72 * bad
    mean = pixels.mean()
    pixels = (pixels - mean) * (1.0 - 0.5 * bad) + mean  # flatter contrast
    pixels = pixels * gain + np.array([45.0, -20.0, 60.0]) * bad  # darker, purple cast
    noise_sigma = 2.0 + 24.0 * bad
    pixels = pixels + rng.normal(0.0, noise_sigma, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def render_photo(camera: float, appearance: float, seed: list[int]) -> bytes:
    """One JPEG (deterministic bytes for the same scores and seed)."""
    rng = np.random.default_rng(seed)
    width, height = SIZES[int(rng.integers(0, len(SIZES)))]
    image = _scene(rng, width, height)
    _phone(image, rng, appearance)
    image = _degrade(image, rng, camera)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


CROP_SIZE = (400, 300)  # the 2026 pages' `data-bigurl` crops: `t_s400x300c`


def render_crop(photo: bytes) -> bytes:
    """The 400x300 crop the site serves beside an original (other bytes, the same picture)."""
    image = Image.open(io.BytesIO(photo)).convert("RGB").resize(CROP_SIZE)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
