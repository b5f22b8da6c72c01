"""Blend weights for tiled x0 predictions (MultiDiffusion, Mixture of Diffusers) and SpotDiffusion windows.

- MultiDiffusion (Bar-Tal et al. 2023): every tile weighs 1; a pixel's value is the mean of its tiles.
- Mixture of Diffusers (Jiménez 2023): a separable Gaussian per tile centred on the tile, standard
  deviation `MIXTURE_SIGMA` × the tile's length on each axis (so non-square tiles get one σ per axis);
  a pixel's value is the weight-normalised sum.
- SpotDiffusion (Frolov et al. 2024): non-overlapping windows whose grid is shifted by a fresh seeded offset
  at every call, so seams move and average out at ≈1× cost. Windows are clipped to the image (no wrap-around,
  which would join opposite edges of a non-periodic image); every pixel lies in exactly one window.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DiffdiffError
from .plan import Tile

BLENDS = ("mixture", "multidiffusion", "spot")  # the blend names; callers check a request against these
MIXTURE_SIGMA = 0.1  # the Mixture of Diffusers reference uses variance 0.01 of the normalised tile length


def gaussian_profile(length: int, sigma_fraction: float = MIXTURE_SIGMA) -> torch.Tensor:
    """exp(-(i - c)² / (2 (σ·length)²)) for i in 0..length-1, c the centre; peak 1 (float64)."""
    positions = torch.arange(length, dtype=torch.float64)
    centre = (length - 1) / 2
    sigma = sigma_fraction * length
    return torch.exp(-((positions - centre) ** 2) / (2 * sigma * sigma))


def tile_weight(tile: Tile, blend: str) -> torch.Tensor:
    """The (h, w) float64 weight of one tile under `blend` (spot windows weigh 1: they never overlap)."""
    if blend == "mixture":
        return gaussian_profile(tile.h)[:, None] * gaussian_profile(tile.w)[None, :]
    return torch.ones(tile.h, tile.w, dtype=torch.float64)


def _window_edges(size: int, window: int, offset: int, min_size: int) -> list[int]:
    """Edges 0 = e0 < e1 < ... = size of windows of length `window` shifted by `offset` (< window).

    Edges that would leave a sliver shorter than `min_size` at either image border are dropped, so the
    border windows grow to at most window + min_size.
    """
    inner = [e for e in range(offset, size, window) if min_size <= e <= size - min_size]
    return [0, *inner, size]


def spot_windows(height: int, width: int, window: int | tuple[int, int], rng: np.random.Generator,
                 min_size: int | None = None) -> list[Tile]:
    """Non-overlapping windows covering height×width once, their grid shifted by a random offset per axis."""
    win_h, win_w = (window, window) if not isinstance(window, (tuple, list)) else window
    if win_h <= 0 or win_w <= 0:
        raise DiffdiffError(f"spot window must be positive, got {window!r}")
    offset_y = int(rng.integers(0, win_h))
    offset_x = int(rng.integers(0, win_w))
    min_h = max(1, win_h // 4) if min_size is None else min_size
    min_w = max(1, win_w // 4) if min_size is None else min_size
    rows = _window_edges(height, win_h, offset_y, min_h) if height > win_h else [0, height]
    cols = _window_edges(width, win_w, offset_x, min_w) if width > win_w else [0, width]
    return [
        Tile(rows[i], cols[j], rows[i + 1] - rows[i], cols[j + 1] - cols[j])
        for i in range(len(rows) - 1)
        for j in range(len(cols) - 1)
    ]
