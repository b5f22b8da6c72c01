"""Tiled differential diffusion: tile planning, blended tiled denoising with exact skipping, tiled VAE."""

from .blend import BLENDS
from .denoiser import TiledDenoiser
from .plan import Tile, plan_grid, plan_quadtree
from .vae import tiled_vae_decode, tiled_vae_encode

__all__ = [
    "BLENDS",
    "Tile",
    "TiledDenoiser",
    "plan_grid",
    "plan_quadtree",
    "tiled_vae_decode",
    "tiled_vae_encode",
]
