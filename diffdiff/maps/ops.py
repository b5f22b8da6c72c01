"""Operations on strength maps: tone (invert, levels, brightness/contrast, threshold, clamp), softening (blur,
outward feather), morphology (grow/shrink), combining two maps, and resizing.

Every function takes and returns a float32 (H, W) map in [0, 1]; results are clamped to [0, 1].
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from diffdiff.errors import DiffdiffError

from .io import as_map

COMBINE_MODES = ("max", "min", "multiply", "add", "subtract", "screen")
ENLARGE_FILTERS = ("bicubic", "lanczos")


def _finite(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise DiffdiffError(f"{name} must be a finite number; got {value}")
    return value


def check_reach(value: float, shape: tuple[int, ...], name: str, what: str = "map") -> float:
    """Refuse a radius / sigma / scale larger than the diagonal of a (H, W) `shape`: nothing lies that far,
    and OpenCV's kernel for it would need terabytes (an allocation error) or hours."""
    diagonal = math.ceil(math.hypot(shape[0], shape[1]))
    if value > diagonal:
        shown = int(value) if float(value).is_integer() else value
        raise DiffdiffError(f"{name} of {shown} pixels is more than the {what}'s diagonal"
                            f" ({diagonal} pixels); use at most {diagonal}")
    return value


def _done(values: np.ndarray) -> np.ndarray:
    return np.clip(values, 0.0, 1.0).astype(np.float32)


def invert(strength_map) -> np.ndarray:
    """1 − map: swap keep and change."""
    return _done(1.0 - as_map(strength_map))


def levels(strength_map, black: float = 0.0, white: float = 1.0, gamma: float = 1.0) -> np.ndarray:
    """Photo-editor levels: values ≤ `black` → 0, ≥ `white` → 1, and in between
    ((m − black)/(white − black))^(1/gamma); gamma > 1 lifts mid-tones (more change), < 1 lowers them.
    """
    m = as_map(strength_map)
    black, white, gamma = _finite(black, "black"), _finite(white, "white"), _finite(gamma, "gamma")
    if not 0.0 <= black < white <= 1.0:
        raise DiffdiffError(f"levels need 0 <= black < white <= 1; got black={black}, white={white}")
    if gamma <= 0:
        raise DiffdiffError(f"gamma must be positive; got {gamma}")
    scaled = np.clip((m.astype(np.float64) - black) / (white - black), 0.0, 1.0)
    return _done(np.power(scaled, 1.0 / gamma))


def brightness_contrast(strength_map, brightness: float = 1.0, contrast: float = 1.0) -> np.ndarray:
    """As the Differential Diffusion playground's sliders (PIL's ImageEnhance, factors; 1 = unchanged).

    Brightness scales every value: m·b. Contrast then pushes values away from (c > 1) or towards (c < 1) the
    map's mean μ: μ + c·(m·b − μ).
    """
    m = as_map(strength_map).astype(np.float64)
    brightness, contrast = _finite(brightness, "brightness"), _finite(contrast, "contrast")
    if brightness < 0 or contrast < 0:
        raise DiffdiffError(f"brightness and contrast are factors >= 0; got {brightness}, {contrast}")
    bright = np.clip(m * brightness, 0.0, 1.0)
    mean = bright.mean()
    return _done(mean + contrast * (bright - mean))


def threshold(strength_map, level: float = 0.5) -> np.ndarray:
    """1 where map ≥ `level`, else 0."""
    m = as_map(strength_map)
    level = _finite(level, "level")
    return (m >= level).astype(np.float32)


def clamp(strength_map, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Limit values to [low, high] (e.g. cap the strength at 0.6, or guarantee at least 0.1 everywhere)."""
    m = as_map(strength_map)
    low, high = _finite(low, "min"), _finite(high, "max")
    if not 0.0 <= low <= high <= 1.0:
        raise DiffdiffError(f"clamp needs 0 <= min <= max <= 1; got min={low}, max={high}")
    return _done(np.clip(m, low, high))


def _gaussian(values: np.ndarray, sigma: float, half: int | None = None) -> np.ndarray:
    """Gaussian blur with mirrored borders (edge pixel repeated), which keeps the map's mean."""
    if half is None:
        half = max(1, math.ceil(3.0 * sigma))
    size = 2 * half + 1
    return cv2.GaussianBlur(values, (size, size), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def blur(strength_map, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation `sigma` pixels; the mean of the map is kept."""
    m = as_map(strength_map)
    sigma = _finite(sigma, "sigma")
    if sigma < 0:
        raise DiffdiffError(f"blur sigma must be >= 0 pixels; got {sigma}")
    check_reach(sigma, m.shape, "blur sigma")
    if sigma == 0:
        return m.copy()
    return _done(_gaussian(m, sigma))


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _pixels(value, name: str) -> int:
    if float(value) != int(value) or int(value) < 0:
        raise DiffdiffError(f"{name} must be a whole number of pixels >= 0; got {value}")
    return int(value)


def grow(strength_map, pixels: int) -> np.ndarray:
    """Grey-level dilation with a disk of radius `pixels`: bright areas spread outwards by that much."""
    m = as_map(strength_map)
    pixels = int(check_reach(_pixels(pixels, "grow"), m.shape, "grow"))
    if pixels == 0:
        return m.copy()
    return _done(cv2.dilate(m, _disk(pixels), borderType=cv2.BORDER_REPLICATE))


def shrink(strength_map, pixels: int) -> np.ndarray:
    """Grey-level erosion with a disk of radius `pixels`: bright areas pull inwards by that much."""
    m = as_map(strength_map)
    pixels = int(check_reach(_pixels(pixels, "shrink"), m.shape, "shrink"))
    if pixels == 0:
        return m.copy()
    return _done(cv2.erode(m, _disk(pixels), borderType=cv2.BORDER_REPLICATE))


def feather(strength_map, radius: int, sigma: float | None = None) -> np.ndarray:
    """Soften edges OUTWARD: grow by `radius`, blur (sigma defaults to radius/3), never lower any pixel.

    The painted selection keeps its full strength; the soft edge lies outside it (from the painted edge out
    to about 2·radius, half strength at `radius`). This is the default way to soften a hand-painted mask.
    """
    m = as_map(strength_map)
    radius = int(check_reach(_pixels(radius, "feather radius"), m.shape, "feather radius"))
    if radius == 0:
        return m.copy()
    sigma = radius / 3.0 if sigma is None else _finite(sigma, "sigma")
    if sigma <= 0:
        raise DiffdiffError(f"feather sigma must be > 0 pixels; got {sigma}")
    grown = cv2.dilate(m, _disk(radius), borderType=cv2.BORDER_REPLICATE)
    softened = _gaussian(grown, sigma, half=max(1, min(radius, math.ceil(3.0 * sigma))))
    return _done(np.maximum(softened, m))


def combine(first, second, mode: str) -> np.ndarray:
    """Merge two maps of the same size pixel by pixel; the result is clamped to [0, 1].

    max, min, multiply (a·b), add (a + b), subtract (a − b), screen (1 − (1 − a)(1 − b)).
    """
    a, b = as_map(first, "first map"), as_map(second, "second map")
    if a.shape != b.shape:
        raise DiffdiffError(f"cannot combine maps of different sizes: {a.shape[1]}x{a.shape[0]} and "
                            f"{b.shape[1]}x{b.shape[0]}; resize one first")
    if mode == "max":
        out = np.maximum(a, b)
    elif mode == "min":
        out = np.minimum(a, b)
    elif mode == "multiply":
        out = a * b
    elif mode == "add":
        out = a + b
    elif mode == "subtract":
        out = a - b
    elif mode == "screen":
        out = 1.0 - (1.0 - a) * (1.0 - b)
    else:
        raise DiffdiffError(f"unknown combine mode {mode!r}; choose one of {', '.join(COMBINE_MODES)}")
    return _done(out)


def resize(strength_map, size_hw: tuple[int, int], enlarge: str = "bicubic") -> np.ndarray:
    """Resize to (height, width): area averaging along a shrinking side, bicubic/Lanczos along a growing one.

    Each axis is filtered on its own, so a map shrunk in one direction and stretched in the other is right
    in both. Overshoot from bicubic/Lanczos is clamped away.
    """
    m = as_map(strength_map)
    height, width = (int(v) for v in size_hw)
    if height < 1 or width < 1:
        raise DiffdiffError(f"resize target must be at least 1x1; got {width}x{height}")
    if enlarge not in ENLARGE_FILTERS:
        raise DiffdiffError(f"unknown enlarge filter {enlarge!r}; choose one of {', '.join(ENLARGE_FILTERS)}")
    up = cv2.INTER_CUBIC if enlarge == "bicubic" else cv2.INTER_LANCZOS4
    out = m
    if width != out.shape[1]:
        method = cv2.INTER_AREA if width < out.shape[1] else up
        out = cv2.resize(out, (width, out.shape[0]), interpolation=method).reshape(out.shape[0], width)
    if height != out.shape[0]:
        method = cv2.INTER_AREA if height < out.shape[0] else up
        out = cv2.resize(out, (width, height), interpolation=method)
    return _done(out.reshape(height, width))


