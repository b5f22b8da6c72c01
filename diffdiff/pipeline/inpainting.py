"""Inpainting checkpoints: the denoiser link that gives a 9-channel UNet its mask and masked-image latent.

An inpainting UNet (SD1.5-inpainting, SDXL-inpainting and their fine-tunes) reads
`[c_in·x, m, z_masked]`: the noisy latent, a latent-grid mask (1 = to be generated) and the latent of the
image with the masked pixels set to mid grey. `InpaintInputs` adds the last two as the `concat` keyword
that `ParametrisedNetwork` appends (docs/design.md §14). The mask either stays the map's non-zero area
(`"map"`, the default: m = [S > 0], z_masked = z_hole) or follows the gate (`"gate"`: at each call m = A,
the pixels the gate lets change, and z_masked = A·z_hole + (1 − A)·z), where z_hole is the encoded image
with every pixel of non-zero strength greyed.
"""

from __future__ import annotations

import numpy as np
import torch

from ..regions.fill import NEUTRAL_GREY as GREY  # a hole's pixels before encoding: 0 in the VAE's [-1, 1]


def masked_pixels(pixels: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """`pixels` (uint8 (H, W, 3)) with every pixel of non-zero `strength` set to mid grey."""
    masked = pixels.copy()
    masked[strength > 0] = GREY
    return masked


def grey_latent(codec, like: torch.Tensor) -> torch.Tensor:
    """The latent of an all-grey image of `like`'s latent size (the masked latent when nothing is known)."""
    height, width = like.shape[-2:]
    factor = codec.factor
    grey = np.full((height * factor, width * factor, 3), GREY, np.uint8)
    return codec.encode(grey).to(like.device).expand(like.shape[0], -1, -1, -1)


class InpaintInputs:
    """Denoiser link `(x, sigma, active_mask=None, **kw) -> x0` that calls `inner` with `concat`.

    `clean` z and `hole_latent` z_hole: (B, C, h, w); `hole` [S > 0]: (1 or B, 1, h, w) float; `follow_gate`
    picks the mode of the module docstring. Without an active mask (a run with no map) the mask is `hole`.
    The active mask is passed on to `inner` when it takes one (the tiler skips idle tiles with it).
    """

    accepts_active_mask = True

    def __init__(self, inner, clean: torch.Tensor, hole_latent: torch.Tensor, hole: torch.Tensor,
                 follow_gate: bool):
        self.inner = inner
        self.model_sampling = getattr(inner, "model_sampling", None)
        self.clean = clean
        self.hole_latent = hole_latent
        self.hole = hole
        self.follow_gate = follow_gate
        self._passes_mask = bool(getattr(inner, "accepts_active_mask", False))

    def __call__(self, x, sigma, active_mask=None, **kwargs):
        batch = x.shape[0]
        if self.follow_gate and active_mask is not None:
            mask = active_mask.to(self.clean.dtype)
            masked = mask * self.hole_latent + (1 - mask) * self.clean
        else:
            mask, masked = self.hole.to(self.clean.dtype), self.hole_latent
        concat = torch.cat([mask.expand(batch, 1, *x.shape[-2:]), masked.expand(batch, -1, -1, -1)], dim=1)
        if active_mask is not None and self._passes_mask:
            kwargs["active_mask"] = active_mask
        return self.inner(x, sigma, concat=concat.to(x.dtype), **kwargs)
