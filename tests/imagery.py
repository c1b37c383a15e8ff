"""Generated photographic-like images, shared by tests and benchmarks.

No downloads and no shipped files: every image is made from a seed, so a
failure can be reproduced exactly.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth colour gradients, a soft highlight, a gentle pattern and fine grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 40 + 180 * x / width
    g = 60 + 150 * y / height
    blob = np.exp(-(((x - width * 0.6) ** 2 + (y - height * 0.4) ** 2) / (0.05 * width * height)))
    b = 90 + 100 * blob + 30 * np.sin(x / 37.0) * np.cos(y / 53.0)
    grain = rng.normal(0, 6, (height, width)).astype(np.float32)
    rgb = np.stack([r + grain, g + grain * 0.8, b + grain * 0.6], axis=-1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def landscape(
    width: int, height: int, seed: int, texture: float = 1.0, noise: float = 1.2
) -> Image.Image:
    """A synthetic landscape: sky gradient, textured hills, a building, a disc, a shadow.

    ``texture`` scales the fine detail (low values give the smooth images
    watermarks find hardest); ``noise`` is the sensor-noise sigma (0: none).
    """
    from scipy import ndimage  # not every benchmark environment has scipy

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = height * rng.uniform(0.3, 0.45)
    t = np.clip(yy / horizon, 0, 1)
    sky = np.stack([110 + 60 * t, 150 + 50 * t, 230 - 10 * t], -1)
    tex = np.zeros((height, width), np.float32)
    for sigma, amp in ((40, 40), (12, 25), (3, 15), (0.8, 8)):
        n = ndimage.gaussian_filter(rng.standard_normal((height, width)).astype(np.float32), sigma)
        tex += amp * n / (n.std() + 1e-6) * (1.0 if sigma > 20 else texture)
    ground = np.stack([90 + tex, 110 + 0.9 * tex, 60 + 0.6 * tex], -1)
    hills = horizon + 30 * np.sin(xx / width * 6 + seed) + 15 * np.sin(xx / width * 17)
    img = np.where((yy > hills)[..., None], ground, sky)
    dark = (xx < width * 0.3) & (yy > height * 0.7)
    img[dark] = img[dark] * 0.15 + 8
    x0 = int(width * rng.uniform(0.5, 0.7))
    img[int(height * 0.25) : int(height * 0.75), x0 : x0 + int(width * 0.15)] = (200, 190, 170)
    disc = (yy - height * 0.6) ** 2 + (xx - width * 0.4) ** 2 < (min(width, height) * 0.08) ** 2
    img[disc] = (180, 40, 40)
    img = ndimage.gaussian_filter(img, (0.7, 0.7, 0))
    if noise:
        img += rng.normal(0, noise, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


# ------------------------------------------------------------------ attacks
# What platforms do to images (issue 4's list), through Pillow's real encoders.
# The visible-label attack is supplied by the caller: the test draws the
# project's CJK font, the benchmark's peer environment has no font files.
Attack = Callable[[Image.Image], Image.Image]


def reencode(img: Image.Image, fmt: str, **params: object) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, fmt, **params)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def crop_each_edge(img: Image.Image, share: float = 0.1) -> Image.Image:
    dx, dy = int(img.width * share), int(img.height * share)
    return img.crop((dx, dy, img.width - dx, img.height - dy))


def watermark_attacks(visible_label: Attack) -> dict[str, Attack]:
    return {
        "JPEG 50 (4:2:0)": lambda i: reencode(i, "JPEG", quality=50, subsampling=2),
        "downscale 50%": lambda i: i.resize(
            (i.width // 2, i.height // 2), Image.Resampling.LANCZOS
        ),
        "crop 10% each edge": crop_each_edge,
        "brightness +20%": lambda i: ImageEnhance.Brightness(i).enhance(1.2),
        "brightness -20%": lambda i: ImageEnhance.Brightness(i).enhance(0.8),
        "contrast +20%": lambda i: ImageEnhance.Contrast(i).enhance(1.2),
        "contrast -20%": lambda i: ImageEnhance.Contrast(i).enhance(0.8),
        "PNG -> JPEG 75 -> WebP 80": lambda i: reencode(
            reencode(reencode(i, "PNG"), "JPEG", quality=75), "WEBP", quality=80
        ),
        "visible label": visible_label,
    }


def rotate(img: Image.Image, degrees: float, expand: bool) -> Image.Image:
    """Rotation with bicubic resampling; the uncovered corners are black."""
    return img.convert("RGB").rotate(degrees, resample=Image.Resampling.BICUBIC, expand=expand)


def stretch(img: Image.Image, fx: float, fy: float) -> Image.Image:
    size = (max(1, round(img.width * fx)), max(1, round(img.height * fy)))
    return img.resize(size, Image.Resampling.LANCZOS)


def geometric_attacks() -> dict[str, Attack]:
    """What feeds and editors do to the geometry (issue 18's list)."""
    attacks: dict[str, Attack] = {}
    for deg in (1, 2, 5, 10):
        attacks[f"rotate {deg} deg"] = lambda i, d=deg: rotate(i, d, False)
        attacks[f"rotate {deg} deg, expanded"] = lambda i, d=deg: rotate(i, -d, True)
    attacks["aspect 0.8 (height x0.8)"] = lambda i: stretch(i, 1.0, 0.8)
    attacks["aspect 1.25 (height x1.25)"] = lambda i: stretch(i, 1.0, 1.25)
    attacks["downscale 30%"] = lambda i: stretch(i, 0.3, 0.3)
    attacks["downscale 40%"] = lambda i: stretch(i, 0.4, 0.4)
    attacks["rotate 5 deg + crop 10% + JPEG 75"] = lambda i: reencode(
        crop_each_edge(rotate(i, 5, False)), "JPEG", quality=75
    )
    return attacks


def real_photos(min_side: int = 256) -> list[Image.Image]:
    """scikit-image's bundled photographs (RGB, shortest side >= ``min_side``).

    Real camera pictures with real noise and texture, and none carries an AI
    mark: the false-alarm checks and the benchmark use them next to the
    generated images.
    """
    from skimage import data  # dev extra

    names = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field"]
    names += ["retina", "immunohistochemistry", "camera", "moon", "brick", "grass", "gravel"]
    out = []
    for name in names:
        arr = getattr(data, name)()
        img = Image.fromarray(arr).convert("RGB")
        if min(img.size) >= min_side:
            out.append(img)
    return out
