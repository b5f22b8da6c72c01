"""Image measurements for bench/quality.py: PSNR, CIE Lab colour difference, change per column, distinct
change levels, gradient energy across lines, and the simple properties the prompt-following check reads.

Everything here works on uint8 RGB numpy images (H, W, 3) and boolean masks (H, W); nothing loads a model.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.stats import spearmanr


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of uint8 `test` against `reference` (all pixels and channels);
    capped at 100 dB for identical images so the figure stays finite."""
    mse = np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2)
    return 100.0 if mse == 0 else min(100.0, 10.0 * math.log10(255.0**2 / mse))


def to_lab(pixels: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) → CIE L*a*b* float32 (L in 0..100), OpenCV's float conversion (D65)."""
    return cv2.cvtColor(pixels.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def delta_e76(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per-pixel CIE ΔE*ab 1976 (Euclidean distance in L*a*b*) between two uint8 RGB images: (H, W)."""
    return np.linalg.norm(to_lab(first) - to_lab(second), axis=-1)


def core_boxes(height: int, width: int, tile: int, factor: int) -> list[tuple[int, int, int, int]]:
    """The (y, x, h, w) pixel boxes of the cores a tiled VAE decode writes for a height×width image decoded
    with `tile` pixels per tile (the same split as `diffdiff.tiles.vae`, on the latent grid)."""
    from diffdiff.tiles.vae import _cores  # the decode's own split, so the boxes are its tiles exactly

    rows = _cores(height // factor, tile // factor, 1)
    cols = _cores(width // factor, tile // factor, 1)
    return [(y * factor, x * factor, h * factor, w * factor) for y, h in rows for x, w in cols]


def mean_delta_e_per_box(first: np.ndarray, second: np.ndarray, boxes) -> list[float]:
    """Mean ΔE76 between two images inside each (y, x, h, w) box."""
    difference = delta_e76(first, second)
    return [float(difference[y:y + h, x:x + w].mean()) for y, x, h, w in boxes]


def change_per_column(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """How much each column changed: the mean ΔE76 over its rows (W,)."""
    return delta_e76(before, after).mean(axis=0)


def spearman(values, other) -> float:
    """Spearman rank correlation of two equally long sequences (NaN when one is constant)."""
    return float(spearmanr(np.asarray(values, np.float64), np.asarray(other, np.float64)).statistic)


def distinct_levels(map_values: np.ndarray, change: np.ndarray, bins: int) -> tuple[int, list[float]]:
    """How many distinct levels of change a ramp map produced, and the mean change per bin.

    Columns are grouped into `bins` equal-width bins of map value (bins without columns are dropped); the
    bins' mean changes, in map order, form a staircase. Two neighbouring bins belong to the same plateau
    when their mean changes differ by at most half the step a straight ramp over the same range would take
    between neighbours ((max − min) / (bins − 1) / 2). Levels = 1 + the number of steps larger than that: a
    smooth ramp gives one level per bin, a change that saturates or comes in a few quantised steps gives few.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, map_values, side="right") - 1, 0, bins - 1)
    means = [float(change[index == b].mean()) for b in range(bins) if np.any(index == b)]
    if len(means) < 2:
        return len(means), means
    tolerance = 0.5 * (max(means) - min(means)) / (len(means) - 1)
    steps = np.abs(np.diff(means))
    return 1 + int(np.count_nonzero(steps > tolerance)), means


def _line_energies(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean squared RGB difference across every vertical line x = 1..W-1 (between columns x-1 and x) and
    every horizontal line y = 1..H-1: arrays indexed by the line's position (index 0 unused, NaN)."""
    image = pixels.astype(np.float64)
    across_x = ((image[:, 1:] - image[:, :-1]) ** 2).sum(-1).mean(axis=0)
    across_y = ((image[1:] - image[:-1]) ** 2).sum(-1).mean(axis=1)
    return np.concatenate([[np.nan], across_x]), np.concatenate([[np.nan], across_y])


def border_ratio(pixels: np.ndarray, xs, ys, band: int = 2, clearance: int = 8) -> float:
    """Gradient energy across border lines ÷ the same in the interior.

    Energy across a line = mean over its length of the squared RGB difference between the two pixels on
    either side. Border: the vertical lines at x in `xs` and horizontal lines at y in `ys`, each widened to
    the lines within ±`band` px (a latent step spreads over a few decoded pixels). Interior: every line of
    the same orientations at least `clearance` px from any border line. 1 = a border is as smooth as the
    rest of the image; a visible seam gives more.
    """
    height, width = pixels.shape[:2]
    energy_x, energy_y = _line_energies(pixels)
    border, interior = [], []
    for energy, lines, size in ((energy_x, xs, width), (energy_y, ys, height)):
        if not len(lines):
            continue
        positions = np.arange(1, size)
        distance = np.min(np.abs(positions[:, None] - np.asarray(lines)[None, :]), axis=1)
        border.append(energy[positions[distance <= band]])
        interior.append(energy[positions[distance >= clearance]])
    if not border:
        raise ValueError("no border lines to measure")
    return float(np.concatenate(border).mean() / np.concatenate(interior).mean())


def tile_border_lines(tiles, factor: int, height: int, width: int) -> tuple[list[int], list[int]]:
    """Pixel positions of the vertical (x) and horizontal (y) tile edges inside the image, from latent-grid
    tiles (anything with y, x, h, w)."""
    xs = sorted({edge * factor for t in tiles for edge in (t.x, t.x + t.w) if 0 < edge * factor < width})
    ys = sorted({edge * factor for t in tiles for edge in (t.y, t.y + t.h) if 0 < edge * factor < height})
    return xs, ys


# ---------------------------------------------------------------- region properties for prompt following


def erode(mask: np.ndarray, pixels: int) -> np.ndarray:
    """`mask` shrunk by `pixels` (a square structuring element), so a measurement skips the region's edge."""
    if pixels <= 0:
        return mask
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    return cv2.erode(mask.astype(np.uint8), kernel).astype(bool)


def soft_map(mask: np.ndarray, grow: int, soften: float) -> np.ndarray:
    """A strength map from a region: 1 on `mask` dilated by `grow` px, fading out over a Gaussian of σ
    `soften` px outside it (never below 1 inside)."""
    region = mask.astype(np.uint8)
    if grow > 0:
        region = cv2.dilate(region, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    values = region.astype(np.float32)
    if soften > 0:
        values = np.maximum(values, cv2.GaussianBlur(values, (0, 0), soften))
    return np.clip(values, 0.0, 1.0)


def luminance(pixels: np.ndarray, mask: np.ndarray) -> float:
    """Mean CIE L* (0..100) over `mask`."""
    return float(to_lab(pixels)[..., 0][mask].mean())


def warmth(pixels: np.ndarray, mask: np.ndarray) -> float:
    """Mean R − B over `mask` (a sunset sky is red-orange, a day sky blue)."""
    rgb = pixels.astype(np.float64)[mask]
    return float((rgb[:, 0] - rgb[:, 2]).mean())


def bright_points(pixels: np.ndarray, mask: np.ndarray, lift: int = 30, floor: int = 90) -> int:
    """Stars: pixels in `mask` that are a 3×3 local maximum of luma, at least `floor` bright and at least
    `lift` above the 5×5 median around them."""
    luma = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    peak = luma >= cv2.dilate(luma, np.ones((3, 3), np.uint8))
    above = luma.astype(np.int16) - cv2.medianBlur(luma, 5).astype(np.int16) >= lift
    return int(np.count_nonzero(peak & above & (luma >= floor) & mask))


def whiteness(pixels: np.ndarray, mask: np.ndarray) -> float:
    """Mean of the smallest channel over `mask`: high only where pixels are both bright and unsaturated."""
    return float(pixels[mask].min(axis=-1).astype(np.float64).mean())


def yellowness(pixels: np.ndarray, mask: np.ndarray) -> float:
    """Mean (R + G) / 2 − B over `mask`."""
    rgb = pixels.astype(np.float64)[mask]
    return float(((rgb[:, 0] + rgb[:, 1]) / 2 - rgb[:, 2]).mean())


HUES = {"red": ((0, 10), (170, 180)), "blue": ((95, 130),)}  # OpenCV hue (0..180) ranges


def hue_fraction(pixels: np.ndarray, mask: np.ndarray, colour: str, saturation: int = 90,
                 value: int = 40) -> float:
    """Fraction of `mask`'s pixels of hue `colour` ("red" or "blue") in OpenCV HSV with saturation ≥
    `saturation` and value ≥ `value` (0..255)."""
    hsv = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV)[mask].astype(np.int32)
    hue = np.zeros(len(hsv), bool)
    for low, high in HUES[colour]:
        hue |= (hsv[:, 0] >= low) & (hsv[:, 0] <= high)
    vivid = (hsv[:, 1] >= saturation) & (hsv[:, 2] >= value)
    return float(np.count_nonzero(hue & vivid) / max(1, len(hsv)))
