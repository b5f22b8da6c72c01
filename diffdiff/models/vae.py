"""`VaeCodec`: uint8 pixels ↔ model-space latents for one AutoencoderKL, whole or tile by tile.

The codec owns every fact about the VAE the rest of the code needs: its downscale factor, the
scale/shift that turns raw latent means into model-space latents (``z = (mean − shift) · scale``), the one
conversion of uint8 pixels to [-1, 1] floats and the one quantiser back to uint8. Tiled runs go through
`diffdiff.tiles.vae` with those two conversions, so a tiled image is converted a tile at a time and never
held as a full-size float copy. Non-finite values (NaN/inf, the classic half-precision overflow) are refused
where they appear, with one line that names the stage.

On a CPU the VAE's weights are kept channels-last, which oneDNN's convolutions run faster: measured with
`bench/vae_speed.py` on a 2-core AVX2 CPU (fp32, SD's VAE), encode and decode took 0.93× and 0.92× of the
contiguous layout's time at 512², 0.80× and 0.85× at 1024².
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DiffdiffError


def pixels_to_tensor(pixels: np.ndarray, device=None, dtype=torch.float32) -> torch.Tensor:
    """uint8 pixels (H, W, 3) or (B, H, W, 3) → float (B, 3, H, W) in [-1, 1] on `device` in `dtype`."""
    batch = pixels[None] if pixels.ndim == 3 else pixels
    # contiguous and writable: torch warns on read-only arrays (a PIL image's np.asarray is one)
    tensor = torch.from_numpy(np.require(batch, requirements=("C", "W"))).permute(0, 3, 1, 2).contiguous()
    return (tensor.float() / 127.5 - 1.0).to(device or tensor.device, dtype)


def tensor_to_pixels(images: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [-1, 1] → uint8 (B, H, W, 3), rounding half to even; refuses NaN/inf."""
    images = images.detach().float().cpu()
    if not bool(torch.isfinite(images).all()):
        raise DiffdiffError("the VAE decode produced NaN/inf values; half precision overflows in some VAEs: "
                            "run the VAE in fp32 (--dtype fp32)")
    scaled = ((images.clamp(-1, 1) + 1.0) * 127.5).round_().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).numpy()


class VaeCodec:
    """Pixels ↔ model-space latents for `vae` (a diffusers AutoencoderKL) on `device`; `channels_last`
    (default: on a CPU) converts the VAE's weights to that memory layout, in place."""

    def __init__(self, vae, device, channels_last: bool | None = None):
        self.vae = vae
        self.device = torch.device(device)
        if channels_last if channels_last is not None else self.device.type == "cpu":
            vae.to(memory_format=torch.channels_last)
        self.factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)
        self.latent_channels = int(vae.config.latent_channels)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @torch.no_grad()
    def encode(self, pixels: np.ndarray, tile: int | None = None, overlap: int = 0) -> torch.Tensor:
        """uint8 pixels (H, W, 3), sides multiples of `factor` → latents (1, C, H/f, W/f), float32.

        `tile`/`overlap` in pixels; `tile=None` encodes the whole image at once.
        """
        if tile is None:
            posterior = self.vae.encode(pixels_to_tensor(pixels, self.device, self.dtype)).latent_dist
            raw = posterior.mean
        else:
            from ..tiles.vae import tiled_vae_encode

            raw = tiled_vae_encode(self.vae, pixels, tile=tile, overlap=overlap, factor=self.factor,
                                   to_tensor=pixels_to_tensor)
        latents = ((raw.float() - self.shift_factor) * self.scaling_factor).contiguous()
        if not bool(torch.isfinite(latents).all()):
            raise DiffdiffError("the VAE encode produced NaN/inf latents; run the VAE in fp32 (--dtype fp32)")
        return latents

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, tile: int | None = None, overlap: int = 0) -> np.ndarray:
        """Model-space latents (B, C, h, w) → uint8 pixels (B, h·f, w·f, 3); tiled, quantised per tile.

        `tile`/`overlap` in pixels; `tile=None` decodes the whole batch at once.
        """
        unscaled = (latents.float() / self.scaling_factor + self.shift_factor).to(self.device, self.dtype)
        if tile is None:
            return tensor_to_pixels(self.vae.decode(unscaled).sample)
        from ..tiles.vae import tiled_vae_decode

        return tiled_vae_decode(self.vae, unscaled, tile=tile // self.factor,
                                overlap=max(1, overlap // self.factor), factor=self.factor,
                                quantise=tensor_to_pixels)
