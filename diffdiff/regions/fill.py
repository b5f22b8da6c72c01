"""Pre-fill the hole before VAE encoding: where the strength map is at or above a threshold, the old pixels
are replaced by a neutral start (grey, the surrounding colours, inpainting, or noise).

Differential diffusion keeps steering even a fully masked pixel towards the encoded input, so a hole that
should become something new is better encoded from a neutral fill than from what was there. Pixels outside
the hole come back bit for bit. The work is done per group of nearby hole regions, on the group's bounding
box plus a margin of context, so a small hole in a huge image costs little.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import DiffdiffError
from .crops import CropBox, merge_boxes

FILL_MODES = ("none", "neutral", "blur", "telea", "navier-stokes", "noise")
NEUTRAL_GREY = 128  # what a VAE encodes to about zero
NOISE_SIGMA = 64.0  # grey levels, per channel, for "noise"
MIN_MARGIN = 16  # pixels of context around a hole region (at least; half its longer side when larger)
INPAINT_MAX_SIDE = 256  # telea / navier-stokes inpaint at a scale where the hole's box is at most this long
INPAINT_RADIUS = 3  # cv2.inpaint neighbourhood, in pixels of the (possibly reduced) working image
MAX_GROUPS = 1024  # more separate hole regions than this → one working box around all of them
BLUR_MAX_SIDE = 1024  # the blur fill works where its box is at most this long (the fill is smooth anyway)
_INPAINT_FLAGS = {"telea": cv2.INPAINT_TELEA, "navier-stokes": cv2.INPAINT_NS}
_BLUR_SIGMA = 2.0  # finest level of the blur fill
_TRUSTED_WEIGHT = 0.25  # known-pixel weight at which a blur level's own colour fully replaces the coarser one
_EXACT_AREA = 1 << 20  # hole boxes up to this many pixels find their regions exactly, bigger ones on a grid
_GRID = 8  # cell size of that grid
_NOISE_ROWS = 256  # noise is drawn in blocks of this many rows (fixed, so the bytes depend only on the seed)


def _check(pixels: np.ndarray, strength: np.ndarray, mode: str, threshold: float) -> None:
    """Raise DiffdiffError for a bad mode, threshold or array shape."""
    if mode not in FILL_MODES:
        raise DiffdiffError(f"unknown fill mode {mode!r}; choose one of {', '.join(FILL_MODES)}")
    if not isinstance(threshold, (int, float, np.floating, np.integer)) or not 0 < threshold <= 1:
        raise DiffdiffError(f"fill threshold must lie in (0, 1]; got {threshold!r}")
    rgb = isinstance(pixels, np.ndarray) and pixels.ndim == 3 and pixels.shape[2] == 3
    if not rgb or pixels.dtype != np.uint8:
        shape = getattr(pixels, "shape", None)
        raise DiffdiffError(f"fill needs uint8 RGB pixels of shape (H, W, 3); got {shape} "
                            f"{getattr(pixels, 'dtype', type(pixels).__name__)}")
    if np.shape(strength) != pixels.shape[:2]:
        raise DiffdiffError(f"strength map shape {np.shape(strength)} does not match the image's "
                            f"{pixels.shape[:2]} (height, width)")


def _bounds(mask: np.ndarray) -> CropBox:
    """Bounding box of the non-zero pixels of a mask that has some."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return CropBox(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def _regions(mask: np.ndarray) -> list[CropBox]:
    """Boxes that each hold one 8-connected region of the uint8 0/1 `mask` (or, for a big mask, one region of
    its _GRID-pixel cells that hold any hole pixel: a little larger, and regions that close may share one)."""
    height, width = mask.shape
    cell = 1 if mask.size <= _EXACT_AREA else _GRID
    if cell > 1:  # cell = any pixel set: an area average of 0/255 is ≥ 255/64 ≈ 4 when any pixel is set
        padded = cv2.copyMakeBorder(mask * 255, 0, -height % cell, 0, -width % cell, cv2.BORDER_CONSTANT,
                                    value=0)
        grid = padded.shape[1] // cell, padded.shape[0] // cell
        mask = (cv2.resize(padded, grid, interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count - 1 > MAX_GROUPS:
        return [CropBox(0, 0, width, height)]
    return [CropBox(int(x) * cell, int(y) * cell, min(width, int(x + w) * cell),
                    min(height, int(y + h) * cell)) for x, y, w, h, _ in stats[1:]]


def _working_boxes(hole: np.ndarray) -> list[CropBox]:
    """Disjoint boxes, each holding whole hole regions plus their context, that together hold the hole."""
    height, width = hole.shape
    outer = _bounds(hole)
    boxes = []
    for region in _regions(np.ascontiguousarray(hole[outer.slices]).view(np.uint8)):
        margin = max(MIN_MARGIN, math.ceil(max(region.width, region.height) / 2))
        left, top = outer.left + region.left, outer.top + region.top
        right, bottom = outer.left + region.right, outer.top + region.bottom
        boxes.append(CropBox(max(0, left - margin), max(0, top - margin), min(width, right + margin),
                             min(height, bottom + margin)))
    return merge_boxes(boxes)


def _diffuse(colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Normalized convolution over a pyramid: `colour` (h, w, 3) is colour · weight, `weight` (h, w) the
    share of known pixels; returns float32 (h, w, 3) colours. Needs some weight somewhere.

    Each level blurs both alike; their ratio is the mean known colour near a pixel. Levels are halved in size
    (sigma doubling) until a few pixels are left, so even the middle of a huge hole gets a colour; going back
    up, a level's own colour takes over from the coarser one as its weight reaches _TRUSTED_WEIGHT.
    """
    levels = [(cv2.GaussianBlur(colour, (0, 0), _BLUR_SIGMA), cv2.GaussianBlur(weight, (0, 0), _BLUR_SIGMA))]
    while max(levels[-1][1].shape) > 4:
        summed, known = levels[-1]
        levels.append((cv2.pyrDown(summed), cv2.pyrDown(known)))
    mean = colour.reshape(-1, 3).sum(axis=0) / weight.sum()
    summed, known = levels[-1]
    estimate = np.where(known[..., None] > 0, summed / np.maximum(known, 1e-30)[..., None], mean)
    for summed, known in reversed(levels[:-1]):
        size = (known.shape[1], known.shape[0])
        coarse = cv2.resize(estimate.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
        own = summed / np.maximum(known, 1e-30)[..., None]
        trust = np.clip(known / _TRUSTED_WEIGHT, 0.0, 1.0)[..., None]
        estimate = trust * own + (1.0 - trust) * coarse.reshape(summed.shape)
    return estimate


def _blur_fill(pixels: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The surrounding colours diffused into the hole (uint8, same shape as `pixels`; only its hole pixels
    mean anything). Boxes longer than BLUR_MAX_SIDE are diffused at a reduced scale and enlarged again; the
    area averaging that shrinks them keeps hole pixels out of the colours (they are zeroed and weigh 0)."""
    height, width = hole.shape
    known = (~hole).astype(np.uint8)
    zeroed = cv2.bitwise_and(pixels, pixels, mask=known)
    factor = BLUR_MAX_SIDE / max(height, width)
    if factor >= 1:
        return np.clip(np.rint(_diffuse(zeroed.astype(np.float32), known.astype(np.float32))), 0, 255).astype(
            np.uint8)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    colour = cv2.resize(zeroed, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    weight = cv2.resize(known.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    small = np.clip(np.rint(_diffuse(colour, weight)), 0, 255).astype(np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _inpaint(pixels: np.ndarray, mask: np.ndarray, flag: int) -> np.ndarray:
    """`cv2.inpaint` of uint8 (h, w, 3) `pixels`. Telea runs on one float32 channel at a time: on 8-bit
    colour OpenCV's Telea rounds at every step and drifts (tens of grey levels inside a 256-px flat hole),
    in float it stays within about 2. Navier-Stokes does not drift and follows gradients better in 8 bit."""
    if flag != cv2.INPAINT_TELEA:
        return cv2.inpaint(pixels, mask, INPAINT_RADIUS, flag)
    planes = pixels.astype(np.float32)
    channels = [cv2.inpaint(np.ascontiguousarray(planes[..., c]), mask, INPAINT_RADIUS, flag)
                for c in range(planes.shape[2])]
    return np.clip(np.rint(np.dstack(channels)), 0, 255).astype(np.uint8)


def _inpaint_fill(pixels: np.ndarray, hole: np.ndarray, flag: int) -> np.ndarray:
    """`cv2.inpaint` of the hole, at a reduced scale when the hole's box is longer than INPAINT_MAX_SIDE.

    At reduced scale, every small pixel with any hole pixel under it is inpainted, so no old hole content
    reaches the enlarged fill. If that leaves no known small pixel, the blur fill is used instead.
    """
    mask = hole.astype(np.uint8)
    extent = _bounds(mask)
    longer = max(extent.width, extent.height)
    if longer <= INPAINT_MAX_SIDE:
        return _inpaint(pixels, mask, flag)
    height, width = hole.shape
    factor = INPAINT_MAX_SIDE / longer
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    covered = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    small_mask = (covered > 0).astype(np.uint8)
    if small_mask.all():
        return _blur_fill(pixels, hole)
    done = _inpaint(small, small_mask, flag)
    return cv2.resize(done, (width, height), interpolation=cv2.INTER_LINEAR)


def _add_noise(filled: np.ndarray, hole: np.ndarray, rng: np.random.Generator) -> None:
    """Add Gaussian noise (NOISE_SIGMA per channel, from `rng`) over the hole's bounding box of `filled`, in
    place, clipped to 0..255 (drawn in fixed blocks of rows, so the bytes depend only on the seed)."""
    extent = _bounds(hole)
    for top in range(extent.top, extent.bottom, _NOISE_ROWS):
        rows = slice(top, min(top + _NOISE_ROWS, extent.bottom))
        block = filled[rows, extent.left:extent.right]
        noise = rng.standard_normal(block.shape, dtype=np.float32) * np.float32(NOISE_SIGMA)
        block[...] = np.clip(np.rint(block + noise), 0, 255).astype(np.uint8)


def hole_of(strength: np.ndarray, threshold: float) -> np.ndarray:
    """The pixels a fill replaces: bool (H, W), strength ≥ threshold (threshold in (0, 1], so never a
    strength-0 pixel)."""
    return np.asarray(strength) >= threshold


def fill_holes(pixels: np.ndarray, strength: np.ndarray, mode: str, threshold: float,
               seed: int = 0) -> np.ndarray:
    """A new uint8 (H, W, 3) image: `pixels` with the hole (strength ≥ threshold) pre-filled per `mode`.

    `pixels` is uint8 (H, W, 3), `strength` float (H, W) in [0, 1], `threshold` in (0, 1], so a strength-0
    pixel is never in the hole. Outside the hole the result equals `pixels` bit for bit. Modes:
    "none" a copy of `pixels`, unchanged; "neutral" mid grey (128); "blur" the surrounding colours diffused
    in; "telea" / "navier-stokes" cv2.inpaint (at reduced scale for big holes); "noise" the blur fill plus
    Gaussian noise (σ = 64 grey levels per channel) from numpy's default_rng(seed), the same bytes for the
    same seed. When the hole is the whole image, the fills that need surroundings use mid grey instead.
    """
    _check(pixels, strength, mode, threshold)
    out = pixels.copy()
    hole = hole_of(strength, threshold)
    if mode == "none" or not hole.any():
        return out
    boxes = [_bounds(hole)] if mode == "neutral" or hole.all() else _working_boxes(hole)
    rng = np.random.default_rng(seed)
    for box in boxes:
        region_pixels = np.ascontiguousarray(pixels[box.slices])
        region_hole = np.ascontiguousarray(hole[box.slices])
        if mode == "neutral" or region_hole.all():  # the second cannot happen unless the hole is everything
            filled = np.full_like(region_pixels, NEUTRAL_GREY)
        elif mode in _INPAINT_FLAGS:
            filled = _inpaint_fill(region_pixels, region_hole, _INPAINT_FLAGS[mode])
        else:
            filled = _blur_fill(region_pixels, region_hole)
        if mode == "noise":
            _add_noise(filled, region_hole, rng)
        region_out = np.ascontiguousarray(out[box.slices])
        cv2.copyTo(filled, region_hole.view(np.uint8), region_out)
        out[box.slices] = region_out
    return out
