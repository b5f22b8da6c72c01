"""Per-pixel strength maps for upscale-refine (`--strength-from detail|quadtree|map|uniform`).

"Per-tile strength" is true strength: every source builds a per-pixel map in [min, max] that the
differential gate uses; the model output is never scaled. Sources:
- detail: local detail of the image (diffdiff.maps' detail map, local variance);
- quadtree: a quadtree over the detail on the latent grid; smaller (more detailed) leaves get more
  strength, leaf values are smoothed across leaf borders so no tile edge shows in the map;
- map: a user map file (white = change fully), rescaled into [min, max];
- uniform: one strength everywhere.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

from ..errors import DiffdiffError
from ..tiles.plan import plan_quadtree
from .detail import detail_map
from .ops import resize

STRENGTH_SOURCES = ("detail", "quadtree", "map", "uniform")
DETAIL_WORK_PIXELS = 1 << 20  # detail is measured on at most about this many pixels


def _check_range(min_strength: float, max_strength: float) -> None:
    for name, value in (("min strength", min_strength), ("max strength", max_strength)):
        if not 0.0 <= value <= 1.0:
            raise DiffdiffError(f"{name} must be in [0, 1], got {value}")
    if min_strength > max_strength:
        raise DiffdiffError(f"min strength ({min_strength}) must not exceed max strength ({max_strength})")


def _rescale(unit_map: np.ndarray, min_strength: float, max_strength: float) -> np.ndarray:
    result = np.array(unit_map, dtype=np.float32)  # one float32 copy, then in place
    result *= np.float32(max_strength - min_strength)
    result += np.float32(min_strength)
    return np.clip(result, 0.0, 1.0, out=result)


def detail_unit_map(image: Image.Image, work_pixels: int = DETAIL_WORK_PIXELS) -> np.ndarray:
    """Detail in [0, 1] at image size (float32), from diffdiff.maps.detail_map (local variance).

    Images above `work_pixels` are measured on a box-reduced copy (integer factor, detail scale divided
    by it) and the result is upsampled bilinearly: the map's cost and memory stay flat per megapixel.
    """
    factor = max(1, math.floor(math.sqrt(image.width * image.height / work_pixels)))
    small = image.reduce(factor) if factor > 1 else image
    unit = np.asarray(detail_map(small, scale=8.0 / factor, low=0.0, high=1.0), dtype=np.float32)
    if unit.shape != (image.height, image.width):
        unit = np.clip(cv2.resize(unit, image.size, interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return unit


def quadtree_unit_map(image: Image.Image, max_tile: int = 64, min_tile: int = 8, threshold: float = 0.15,
                      cell: int = 8) -> np.ndarray:
    """Leaf depth of a detail quadtree on a grid of `cell`-pixel cells (the pipeline uses the latent grid),
    0 (shallowest leaves) .. 1 (deepest), smoothed."""
    width, height = image.size
    latent_hw = (max(1, height // cell), max(1, width // cell))
    detail = detail_unit_map(image)
    small = cv2.resize(detail, (latent_hw[1], latent_hw[0]), interpolation=cv2.INTER_AREA)
    leaves = plan_quadtree(small, max_tile=max_tile, min_tile=min(min_tile, max_tile), threshold=threshold)
    shallowest, deepest = min(t.level for t in leaves), max(t.level for t in leaves)
    values = np.zeros(latent_hw)
    for leaf in leaves:
        y, x, h, w = leaf.core_box
        if deepest > shallowest:
            values[y:y + h, x:x + w] = (leaf.level - shallowest) / (deepest - shallowest)
    values = cv2.GaussianBlur(values, (0, 0), max(1.0, min_tile / 2))  # soften leaf borders
    values = cv2.resize(values.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(values, 0.0, 1.0, out=values)


def strength_map_for(image: Image.Image, source: str, *, strength: float | None = None,
                     user_map: np.ndarray | None = None, min_strength: float = 0.0, max_strength: float = 1.0,
                     **quadtree_options) -> np.ndarray:
    """The per-pixel strength map (float32 (H, W) at the image's size) for `source` (see module doc).

    `user_map` (for source "map"): a checked map in [0, 1] of the image's aspect ratio, at any size.
    """
    if source not in STRENGTH_SOURCES:
        choices = ", ".join(STRENGTH_SOURCES)
        raise DiffdiffError(f"unknown strength source {source!r}; choose one of {choices}")
    width, height = image.size
    if source == "uniform":
        if strength is None or not 0.0 <= strength <= 1.0:
            raise DiffdiffError(f"uniform strength must be a number in [0, 1], got {strength!r}")
        return np.full((height, width), strength, dtype=np.float32)
    _check_range(min_strength, max_strength)
    if source == "map":
        if user_map is None:
            raise DiffdiffError("--strength-from map needs --map FILE")
        if user_map.shape != (height, width):
            user_map = resize(user_map, (height, width))  # area down, bicubic up, per axis (as edit's maps)
        return _rescale(user_map, min_strength, max_strength)
    unit = detail_unit_map(image) if source == "detail" else quadtree_unit_map(image, **quadtree_options)
    return _rescale(unit, min_strength, max_strength)
