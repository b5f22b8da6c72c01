"""Bring a pixel-size strength map onto the latent grid (one value per 8×8 pixel block) by area averaging.

Averaging (not point sampling) keeps thin strokes as partial strengths instead of losing them, preserves the
map's mean, and gives exactly 1 to any block that was fully white.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from diffdiff.errors import DiffdiffError

from .io import as_map
from .ops import resize, same_aspect

VAE_SCALE = 8


def to_latent_grid(strength_map, latent_hw: tuple[int, int]) -> torch.Tensor:
    """A float32 torch tensor (h, w) of per-latent strengths from a (H, W) map (numpy or torch).

    When H, W = 8h, 8w each value is the mean of its 8×8 block. Any other size with the same aspect ratio is
    first resized to 8h × 8w (area averaging when shrinking, bicubic when enlarging); a different aspect
    ratio raises DiffdiffError. A torch input keeps its device.
    """
    device = strength_map.device if isinstance(strength_map, torch.Tensor) else torch.device("cpu")
    values = as_map(strength_map, "strength map")
    h, w = (int(v) for v in latent_hw)
    if h < 1 or w < 1:
        raise DiffdiffError(f"latent size must be at least 1x1; got {w}x{h}")
    target = (VAE_SCALE * h, VAE_SCALE * w)
    if values.shape != target:
        if not same_aspect(values.shape, target):
            raise DiffdiffError(
                f"strength map is {values.shape[1]}x{values.shape[0]} but the image is "
                f"{target[1]}x{target[0]} (different aspect ratio); resize or crop the map to the image"
            )
        values = resize(values, target)
    grid = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None]
    pooled = F.avg_pool2d(grid.double(), kernel_size=VAE_SCALE).float()[0, 0]
    return pooled.clamp_(0.0, 1.0).to(device)
