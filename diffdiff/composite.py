"""Change-aware compositing (docs/design.md §8): lay the original pixels back where the edit changed little.

A VAE round trip blurs detail even where nothing was meant to change. After decoding we compute, per pixel,
the opacity of the generated image over the original:

    d       = RMS over channels of (latent_out − latent_in)           (latent grid, model space)
    change  = d^c / (d^c + t^c)   (t = difference threshold, c = contrast; 0.5 at d = t)
    change  → dilated (3×3 max) and blurred on the latent grid, then upsampled to pixels
    opacity = ramp(m) · ((1 − k)·change + k·m)      (m = pixel strength map, k = mask influence)

with ramp(m) = min(1, m / MAP_RAMP). So opacity is exactly 0 where the map is 0 (those pixels are the input's
bytes, bit for bit), never decreases as the map grows, and reaches 1 where the map is 1 and the latent moved
well past the threshold. The idea of a difference threshold, a contrast and a mask influence follows
Automatic1111's soft inpainting; the formula here is our own.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from PIL import Image

# Latent RMS difference at which the generated pixels get half the weight. A1111 measures the L2 norm over
# the 4 channels (= 2 × RMS) with a default of 0.5, which is this 0.25.
DIFFERENCE_THRESHOLD = 0.25
DIFFERENCE_CONTRAST = 2.0  # steepness of that transition
MASK_INFLUENCE = 0.25  # share of the opacity that follows the map rather than the measured change
MAP_RAMP = 0.05  # map values below this fade the opacity linearly to exactly 0 at map 0
CHANGE_BLUR_SIGMA = 1.0  # latent pixels
STRIP_ROWS = 256  # rows per strip of the full-resolution passes


def latent_change(latent_in: torch.Tensor, latent_out: torch.Tensor, *,
                  threshold: float = DIFFERENCE_THRESHOLD,
                  contrast: float = DIFFERENCE_CONTRAST) -> np.ndarray:
    """How much each latent pixel changed, in [0, 1]: (B, h, w) float32; 0.5 where the RMS difference = t."""
    if latent_in.shape[-2:] != latent_out.shape[-2:]:
        raise ValueError(f"latent shapes differ: {tuple(latent_in.shape)} vs {tuple(latent_out.shape)}")
    if threshold <= 0 or contrast <= 0:
        raise ValueError("difference threshold and contrast must be positive")
    diff = (latent_out.float().cpu() - latent_in.float().cpu().expand_as(latent_out))
    rms = diff.pow(2).mean(dim=1).sqrt().numpy().astype(np.float64)
    ratio = (rms / threshold) ** contrast
    return (ratio / (1.0 + ratio)).astype(np.float32)


def smooth_change(change: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One latent-grid change map (h, w) → dilated, blurred and upsampled to `size` = (H, W), in [0, 1]."""
    grown = cv2.dilate(change.astype(np.float32), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    blurred = cv2.GaussianBlur(grown, (0, 0), CHANGE_BLUR_SIGMA, borderType=cv2.BORDER_REPLICATE)
    height, width = size
    upsampled = cv2.resize(blurred, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(upsampled, 0.0, 1.0)


def _rows(height: int):
    """Row strips of at most STRIP_ROWS rows: full-size float temporaries are never built."""
    for top in range(0, height, STRIP_ROWS):
        yield slice(top, min(height, top + STRIP_ROWS))


def opacity_from(pixel_map: np.ndarray, change: np.ndarray, *,
                 influence: float = MASK_INFLUENCE, out: np.ndarray | None = None) -> np.ndarray:
    """Opacity (H, W) float32 of the generated image from the pixel map and the upsampled change.

    Computed in float32 row strips; `out` (float32 (H, W), may be `change` itself) receives the result.
    """
    if pixel_map.shape != change.shape:
        raise ValueError(f"map {pixel_map.shape} and change {change.shape} must have the same shape")
    if not 0.0 <= influence <= 1.0:
        raise ValueError(f"mask influence must lie in [0, 1]; got {influence}")
    if out is None:
        out = np.empty(change.shape, np.float32)
    elif out.shape != change.shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 of shape {change.shape}")
    for rows in _rows(change.shape[0]):
        strength = np.clip(pixel_map[rows], 0.0, 1.0, dtype=np.float32)
        mixed = np.clip(change[rows], 0.0, 1.0, dtype=np.float32)
        mixed *= np.float32(1.0 - influence)
        mixed += np.float32(influence) * strength
        ramp = np.minimum(np.float32(1.0), strength / np.float32(MAP_RAMP))
        mixed *= ramp
        mixed[strength <= 0.0] = 0.0
        np.clip(mixed, 0.0, 1.0, out=out[rows])
    return out


def _rgb_pixels(image) -> np.ndarray:
    """uint8 (H, W, 3) pixels of a PIL image (converted to RGB only when needed) or of such an array."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"pixels must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        return image
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def composite(original, generated, opacity: np.ndarray) -> Image.Image:
    """opacity·generated + (1 − opacity)·original in 8-bit RGB; opacity 0 keeps the original bytes.

    `original`, `generated`: PIL images or uint8 (H, W, 3) arrays of one size. Blended in float32 row strips.
    """
    base, top = _rgb_pixels(original), _rgb_pixels(generated)
    if base.shape != top.shape:
        raise ValueError(f"image sizes differ: {base.shape[1::-1]} vs {top.shape[1::-1]}")
    out = Image.new("RGB", (base.shape[1], base.shape[0]))
    for rows in _rows(base.shape[0]):  # each strip goes straight into the PIL image: no full-size array
        weight = opacity[rows].astype(np.float32)[..., None]
        below = base[rows]
        mixed = np.round(below + weight * (top[rows].astype(np.float32) - below)).clip(0, 255)
        mixed = mixed.astype(np.uint8)
        out.paste(Image.fromarray(np.where(weight > 0.0, mixed, below)), (0, rows.start))
    return out


def layer_with_alpha(generated, opacity: np.ndarray) -> Image.Image:
    """The generated image with the opacity as alpha: laid over the original it gives the composite."""
    pixels = _rgb_pixels(generated)
    rgba = np.empty(pixels.shape[:2] + (4,), np.uint8)
    rgba[..., :3] = pixels
    for rows in _rows(pixels.shape[0]):
        rgba[rows, :, 3] = np.round(np.clip(opacity[rows], 0.0, 1.0) * 255.0)
    return Image.fromarray(rgba)
