"""The tiling policy: when the network and the VAE run in tiles, and of what size.

The network: `tile="off"` never tiles; `"auto"` tiles once the latent is clearly larger than the family's
native size (1.5×), with native-size tiles and a quarter-tile overlap; a size in pixels tiles at that size.
Upscale-refine always tiles the network (at the native size under "auto"). The VAE has its own `vae_tile`:
`"auto"` tiles it only above about a megapixel, where a whole-image decode's activations pass a few GB;
a size in pixels always tiles it. Sizes given by users are in pixels; network tiles are planned in latent
pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..request import Tiling

AUTO_FACTOR = 1.5
VAE_AUTO_PIXELS = 1024 * 1024
VAE_TILE_PIXELS = 512
VAE_OVERLAP_PIXELS = 64


@dataclass(frozen=True)
class TilingPlan:
    """Network tile/overlap in latent px (tile None: untiled), tiles aligned to `network_align` latent px
    (the network's patch); VAE tile/overlap in pixels (None: whole)."""

    network_tile: int | None
    network_overlap: int
    vae_tile: int | None
    vae_overlap: int
    network_align: int = 1


def _network(tiling: Tiling, latent_hw: tuple[int, int], native: int, factor: int,
             always: bool) -> tuple[int | None, int]:
    if tiling.tile == "off":
        return None, 0
    if tiling.tile == "auto":
        if not always and max(latent_hw) <= AUTO_FACTOR * native:
            return None, 0
        tile = native
        overlap = tiling.overlap // factor if tiling.overlap is not None else native // 4
    else:
        tile = tiling.tile // factor
        overlap = (tiling.tile // 4 if tiling.overlap is None else tiling.overlap) // factor
    return tile, min(overlap, tile - 1)


def _vae(tiling: Tiling, width: int, height: int, factor: int) -> tuple[int | None, int]:
    if tiling.vae_tile == "off" or tiling.vae_tile == "auto" and width * height <= VAE_AUTO_PIXELS:
        return None, 0
    tile = VAE_TILE_PIXELS if tiling.vae_tile == "auto" else tiling.vae_tile
    return tile, min(VAE_OVERLAP_PIXELS, tile - factor)


def plan_tiling(tiling: Tiling, width: int, height: int, *, native_size: int, factor: int, patch: int = 1,
                always_tile_network: bool = False) -> TilingPlan:
    """The tiling of a padded `width`×`height` image (pixels, multiples of factor·patch) for a family of
    `native_size` pixels, a VAE of downscale `factor` and a network reading `patch`×`patch` latent cells
    per token (network tiles are then multiples of the patch)."""
    latent_hw = (height // factor, width // factor)
    network_tile, network_overlap = _network(tiling, latent_hw, native_size // factor, factor,
                                             always_tile_network)
    if network_tile is not None:
        network_tile = max(patch, network_tile // patch * patch)
        network_overlap = min(network_overlap, network_tile - 1)
    vae_tile, vae_overlap = _vae(tiling, width, height, factor)
    return TilingPlan(network_tile, network_overlap, vae_tile, vae_overlap, patch)


def wrap_denoiser(denoiser, plan: TilingPlan, latent_hw: tuple[int, int], *, blend: str, tile_batch: int,
                  seed: int):
    """(`denoiser`, 1) when untiled, else (a TiledDenoiser over an even grid, the tile count)."""
    if plan.network_tile is None:
        return denoiser, 1
    from ..tiles import TiledDenoiser, plan_grid

    height, width = latent_hw
    tiles = plan_grid(height, width, plan.network_tile, plan.network_overlap, plan.network_align)
    if len(tiles) == 1:
        return denoiser, 1
    tiled = TiledDenoiser(denoiser, tiles, blend=blend, tile_batch=tile_batch, skip=True, seed=seed)
    return tiled, len(tiles)
