"""A cheap look at a run in progress: the current x0 latent projected linearly to RGB, no VAE decode.

Each latent cell stands for a factor × factor block of pixels, and to first order a VAE's latent is a
linear function of the block's mean colour. `LatentProjection.fit` measures that function for the loaded
model's own VAE on the picture being edited: it encodes a small copy of it (at most 256 px a side) and
solves, by least squares, the (C + 1) × 3 matrix that maps a cell's channels (and 1) to its block's mean
RGB. Fitting on the edit's own picture matters: a VAE is only roughly linear, and a fit on colours unlike
the picture's projects them worse (docs/design.md, "Live previews", has the measurements). Projecting a
latent is then one small matrix product, whatever the VAE, so previews cost nothing next to a step.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

FIT_SIDE = 256  # pixels: the longer side of the copy the fit encodes (32 latent cells for a factor-8 VAE)


def fit_pixels(image: Image.Image, factor: int, side: int = FIT_SIDE) -> np.ndarray:
    """`image` scaled so its longer side is at most `side`, both sides multiples of `factor`: (h, w, 3)."""
    scale = min(1.0, side / max(image.size))
    width, height = (max(factor, int(round(n * scale)) // factor * factor) for n in image.size)
    return np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.BOX), dtype=np.uint8)


def block_means(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Mean colour in [0, 1] of each factor × factor block: (H/f, W/f, 3)."""
    height, width = pixels.shape[0] // factor, pixels.shape[1] // factor
    blocks = pixels[: height * factor, : width * factor].astype(np.float64) / 255.0
    return blocks.reshape(height, factor, width, factor, 3).mean(axis=(1, 3))


class LatentProjection:
    """`weights` ((C + 1) × 3): a latent cell's channels and 1 → its block's mean RGB in [0, 1]."""

    def __init__(self, weights: np.ndarray, factor: int):
        self.weights = np.asarray(weights, dtype=np.float64)
        self.factor = int(factor)

    @classmethod
    def fit(cls, model, image: Image.Image) -> LatentProjection:
        """Measure the projection of `model`'s VAE on a small copy of `image`."""
        codec = model.vae_codec
        pixels = fit_pixels(image, codec.factor)
        with torch.no_grad():
            latent = codec.encode(pixels)[0].float().cpu().numpy()  # (C, h, w)
        colours = block_means(pixels, codec.factor)
        cells = _cells(latent)
        weights, *_ = np.linalg.lstsq(cells, colours.reshape(-1, 3), rcond=None)
        return cls(weights, codec.factor)

    def colours(self, latent) -> np.ndarray:
        """(C, h, w) latent (tensor or array) → (h, w, 3) uint8 colours, one per cell."""
        if isinstance(latent, torch.Tensor):
            latent = latent.detach().float().cpu().numpy()
        height, width = latent.shape[-2:]
        rgb = _cells(np.asarray(latent, dtype=np.float64)) @ self.weights
        return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8).reshape(height, width, 3)

    def image(self, latent, size: tuple[int, int] | None = None) -> Image.Image:
        """The preview picture of a (C, h, w) latent, resized to `size` (width, height; default h·f × w·f)."""
        picture = Image.fromarray(self.colours(latent))
        target = size or (picture.width * self.factor, picture.height * self.factor)
        return picture.resize(target, Image.Resampling.BILINEAR)


def _cells(latent: np.ndarray) -> np.ndarray:
    """(C, h, w) → (h·w, C + 1): each cell's channels followed by a 1 for the offset."""
    channels = latent.shape[0]
    flat = latent.reshape(channels, -1).T
    return np.concatenate([flat, np.ones((flat.shape[0], 1))], axis=1)
