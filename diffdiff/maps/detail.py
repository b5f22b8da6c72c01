"""Detail maps: strength from how busy the image is locally (local contrast or gradient energy at a scale).

The per-pixel form of "give detailed tiles more (or less) denoising": flat areas map to `low`, the most
detailed areas to `high` (swapped with `reverse=True`).
"""

from __future__ import annotations

import math
import os

import cv2
import numpy as np
from PIL import Image

from diffdiff.errors import DiffdiffError

from .io import LUMA_WEIGHTS, image_to_channels, open_image
from .ops import check_reach
from .sources import check_strength

DETAIL_MEASURES = ("variance", "gradient")


def luminance(image) -> np.ndarray:
    """Float64 (H, W) luminance in [0, 1] of a PIL image, an image file, or an (H, W[, C]) array in [0, 1]."""
    if isinstance(image, (str, os.PathLike)):
        image = open_image(image)
    if isinstance(image, Image.Image):
        channels = image_to_channels(image)
    else:
        channels = np.asarray(image, dtype=np.float64)
        if channels.ndim == 2:
            channels = channels[..., None]
        if channels.ndim != 3 or not np.isfinite(channels).all():
            raise DiffdiffError(f"image array must be finite (H, W) or (H, W, C); got {channels.shape}")
    if channels.shape[2] >= 3:
        return channels[..., :3] @ LUMA_WEIGHTS
    return channels[..., 0]


def _smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    half = max(1, math.ceil(3.0 * sigma))
    return cv2.GaussianBlur(values, (2 * half + 1,) * 2, sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT)


def detail_energy(grey: np.ndarray, scale: float, measure: str = "variance") -> np.ndarray:
    """Unnormalised local detail: Gaussian-weighted local std. deviation or RMS gradient at `scale` px."""
    if measure not in DETAIL_MEASURES:
        raise DiffdiffError(f"unknown detail measure {measure!r}; choose one of {', '.join(DETAIL_MEASURES)}")
    scale = float(scale)
    if not math.isfinite(scale) or scale <= 0:
        raise DiffdiffError(f"detail scale must be a positive number of pixels; got {scale}")
    grey = np.asarray(grey, dtype=np.float64)
    check_reach(scale, grey.shape, "detail scale", "image")
    if measure == "variance":
        mean = _smooth(grey, scale)
        variance = _smooth(grey * grey, scale) - mean * mean
        return np.sqrt(np.maximum(variance, 0.0))
    gx = cv2.Sobel(grey, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT) / 8.0
    gy = cv2.Sobel(grey, cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT) / 8.0
    return np.sqrt(np.maximum(_smooth(gx * gx + gy * gy, scale), 0.0))


def detail_map(image, scale: float = 8.0, low: float = 0.0, high: float = 1.0, reverse: bool = False,
               measure: str = "variance") -> np.ndarray:
    """A map that follows local detail: flat → `low`, most detailed → `high` (`reverse=True` swaps them).

    Detail is normalised between its minimum and its 99.5th percentile over the image (so one speck does not
    flatten the rest); an image with no detail at all maps to `low` everywhere (`high` if reversed).
    """
    low, high = check_strength(low, "min strength"), check_strength(high, "max strength")
    if low > high:
        raise DiffdiffError(f"min strength {low} exceeds max strength {high}; use reverse (--reverse) to "
                            "give flat areas the higher strength")
    energy = detail_energy(luminance(image), scale, measure)
    floor, ceiling = float(energy.min()), float(np.percentile(energy, 99.5))
    if ceiling - floor < 1e-6:
        position = np.zeros_like(energy)
    else:
        position = np.clip((energy - floor) / (ceiling - floor), 0.0, 1.0)
    if reverse:
        position = 1.0 - position
    return np.clip(low + (high - low) * position, 0.0, 1.0).astype(np.float32)
