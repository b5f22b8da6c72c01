"""Bring a pixel-size strength map onto the latent grid (one value per `factor`×`factor` pixel block).

Two ways, as docs/design.md §5 explains: `block_means` averages each block (keeps thin strokes as partial
strengths, preserves the map's mean, gives exactly 1 to a fully white block; the exact and mask gates use
it), and `bilinear_grid` samples the map bilinearly as ComfyUI's sampler does (the comfy gate, for parity).
`to_latent_grid` checks a map of any size first; the pipeline hands over maps it already checked.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from diffdiff.errors import DiffdiffError
from diffdiff.imageio import same_aspect

from .io import as_map
from .ops import resize

STRIP_PIXELS = 1 << 22  # map pixels averaged at a time: no full-size float64 copy of a large map


def block_means(pixel_map: np.ndarray, factor: int) -> torch.Tensor:
    """float32 (h, w): the mean of each `factor`×`factor` block of a (factor·h, factor·w) map, by strips."""
    height, width = pixel_map.shape[0] // factor, pixel_map.shape[1] // factor
    assert pixel_map.shape == (factor * height, factor * width), "the map must be a whole number of blocks"
    rows = max(1, STRIP_PIXELS // (factor * factor * width))  # latent rows per strip
    strips = []
    for top in range(0, height, rows):
        rows_of_strip = pixel_map[factor * top:factor * min(height, top + rows)]
        part = np.ascontiguousarray(rows_of_strip, dtype=np.float32)
        pooled = F.avg_pool2d(torch.from_numpy(part)[None, None].double(), kernel_size=factor)
        strips.append(pooled.float()[0, 0])
    return torch.cat(strips, dim=0).clamp_(0.0, 1.0)


def bilinear_grid(pixel_map: np.ndarray, latent_hw: tuple[int, int]) -> torch.Tensor:
    """float32 (h, w): the map resized bilinearly (align_corners False, no antialiasing) to the latent grid,
    as ComfyUI resizes a denoise mask; for a factor-8 grid that is the mean of pixels 8i+3 and 8i+4."""
    grid = torch.from_numpy(np.ascontiguousarray(pixel_map, dtype=np.float32))[None, None]
    return F.interpolate(grid, size=tuple(latent_hw), mode="bilinear", align_corners=False)[0, 0]


def to_latent_grid(strength_map, latent_hw: tuple[int, int], factor: int) -> torch.Tensor:
    """A float32 torch tensor (h, w) of per-latent strengths from a (H, W) map (numpy or torch).

    When H, W = factor·h, factor·w each value is the mean of its block. Any other size with the same aspect
    ratio is first resized to that size (area averaging when shrinking, bicubic when enlarging); a
    different aspect ratio raises DiffdiffError. A torch input keeps its device.
    """
    device = strength_map.device if isinstance(strength_map, torch.Tensor) else torch.device("cpu")
    values = as_map(strength_map, "strength map")
    h, w = (int(v) for v in latent_hw)
    if h < 1 or w < 1:
        raise DiffdiffError(f"latent size must be at least 1x1; got {w}x{h}")
    target = (factor * h, factor * w)
    if values.shape != target:
        if not same_aspect(values.shape, target):
            raise DiffdiffError(
                f"strength map is {values.shape[1]}x{values.shape[0]} but the image is "
                f"{target[1]}x{target[0]} (different aspect ratio); resize or crop the map to the image"
            )
        values = resize(values, target)
    return block_means(values, factor).to(device)
