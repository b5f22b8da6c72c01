"""When and how the pipeline tiles: the network (TiledDenoiser over a grid) and the VAE (tiled encode/decode).

`tile="off"` never tiles. `tile="auto"` tiles the network once the latent is clearly larger than the family's
native size (1.5×) and the VAE once the image exceeds about a megapixel. An int `tile` (pixels) tiles both
with that size. Sizes given by users are in pixels; the network's tiles are planned in latent pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diffdiff.pipeline_inputs import image_to_tensor, tensor_to_pixels

NATIVE_LATENT = {"sd1": 64, "sd2": 64, "sd2-v": 96, "sdxl": 128}
AUTO_FACTOR = 1.5
VAE_AUTO_PIXELS = 1024 * 1024
VAE_TILE_PIXELS = 512
VAE_OVERLAP_PIXELS = 64


@dataclass(frozen=True)
class TilingPlan:
    """Network tile/overlap in latent px (tile None: untiled); VAE tile/overlap in pixels (None: whole)."""

    network_tile: int | None
    network_overlap: int
    vae_tile: int | None
    vae_overlap: int


def plan_tiling(tile, overlap, width: int, height: int, family: str, vae_scale: int = 8) -> TilingPlan:
    """Decide the tiling of a padded `width`×`height` image (pixels); `overlap` None means a quarter tile."""
    if tile == "off":
        return TilingPlan(None, 0, None, 0)
    latent_h, latent_w = height // vae_scale, width // vae_scale
    if tile == "auto":
        native = NATIVE_LATENT.get(family, 64)
        network = native if max(latent_h, latent_w) > AUTO_FACTOR * native else None
        network_overlap = (overlap // vae_scale) if overlap is not None else native // 4
        vae = VAE_TILE_PIXELS if width * height > VAE_AUTO_PIXELS else None
        return TilingPlan(network, network_overlap if network else 0, vae, VAE_OVERLAP_PIXELS if vae else 0)
    size = int(tile)
    overlap = size // 4 if overlap is None else int(overlap)
    network_tile = size // vae_scale
    network_overlap = min(overlap // vae_scale, network_tile - 1)
    return TilingPlan(network_tile, network_overlap, size, min(overlap, size - vae_scale))


def encode_pixels(model, pixels: np.ndarray, plan: TilingPlan) -> torch.Tensor:
    """uint8 pixels (H, W, 3) → model-space latents (1, C, H/8, W/8), tile by tile when the plan says so.

    Tiled, the pixels are converted to [-1, 1] one tile at a time: no full-size float copy of the image.
    """
    if plan.vae_tile is None:
        return model.vae_encode(image_to_tensor(pixels).to(model.device))
    from diffdiff.tiles import tiled_vae_encode

    with torch.no_grad():
        raw = tiled_vae_encode(model.vae, pixels, tile=plan.vae_tile, overlap=plan.vae_overlap)
    shift = getattr(model, "shift_factor", 0.0)
    return ((raw.float() - shift) * model.scaling_factor).float()


def decode_pixels(model, latents: torch.Tensor, plan: TilingPlan, vae_scale: int = 8) -> np.ndarray:
    """Model-space latents → uint8 pixels (B, H, W, 3); tiled, each tile is quantised as it is decoded."""
    if plan.vae_tile is None:
        return np.stack(tensor_to_pixels(model.vae_decode(latents)))
    from diffdiff.tiles import tiled_vae_decode

    vae = model.vae
    dtype = next(vae.parameters()).dtype
    shift = getattr(model, "shift_factor", 0.0)
    unscaled = (latents.float() / model.scaling_factor + shift).to(model.device, dtype)
    with torch.no_grad():
        return tiled_vae_decode(vae, unscaled, tile=plan.vae_tile // vae_scale,
                                overlap=max(1, plan.vae_overlap // vae_scale), pixels=True)


def wrap_denoiser(denoiser, plan: TilingPlan, latent_hw: tuple[int, int], *, blend: str, tile_batch: int,
                  seed: int):
    """(`denoiser`, 1) when untiled, else (a TiledDenoiser over an even grid, the tile count)."""
    if plan.network_tile is None:
        return denoiser, 1
    from diffdiff.tiles import TiledDenoiser, plan_grid

    height, width = latent_hw
    tiles = plan_grid(height, width, plan.network_tile, plan.network_overlap)
    if len(tiles) == 1:
        return denoiser, 1
    tiled = TiledDenoiser(denoiser, tiles, blend=blend, tile_batch=tile_batch, skip=True, seed=seed)
    return tiled, len(tiles)
