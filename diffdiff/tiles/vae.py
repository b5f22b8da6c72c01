"""Tiled VAE encode/decode with GroupNorm statistics shared by all tiles (no per-tile colour shift).

The image is cut into non-overlapping cores; each core is run through the network padded by `overlap` on
every side (clipped to the image) and only the core of the result is kept, so memory is bounded by the
tile size. A plain per-tile run would normalise every GroupNorm with that tile's own mean and variance,
which shifts colours tile by tile. Here every GroupNorm of every tile uses the same statistics, measured
on the whole image: a first pass runs the whole input, area-downscaled to at most `stats_size` px
(default: the tile size, so it costs one tile; none when it fits), and each GroupNorm call records
its per-group mean and variance; the tile pass then normalises with those. Feature means and variances
of natural images are
close to scale-invariant, and inputs up to `stats_size` get the exact full-resolution statistics, so the
tiled result differs from the untiled one only by the receptive field cut off at the padded tile edges
(and by the attention block seeing one tile instead of the whole image).

(Accumulating exact statistics over the tiles, layer by layer, needs either one pass per GroupNorm or all
tiles' activations in memory at once; refining them in a few whole passes is unstable, since a layer's
statistics measured under wrong earlier statistics can be near zero and amplify.)

GroupNorm calls are matched between the two passes by their order within one forward pass. Inputs that
fit one tile run untiled (exact). `stats="tile"` gives the naive per-tile GroupNorm, for comparison.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ..errors import DiffdiffError

STATS_MODES = ("global", "tile")


class _GroupNormStats:
    """Replaces every nn.GroupNorm forward inside a module: records, then applies, shared statistics."""

    def __init__(self):
        self.mode = "off"  # "record" | "apply" | "off" (plain per-input GroupNorm)
        self.index = 0
        self.stats: list[tuple[torch.Tensor, torch.Tensor]] = []  # per call index: mean, var (B, G)

    def start_pass(self, mode: str):
        self.mode, self.index = mode, 0

    def forward(self, norm: torch.nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "off":
            return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)
        index, self.index = self.index, self.index + 1
        batch, channels = x.shape[:2]
        if self.mode == "record":
            var, mean = torch.var_mean(x.reshape(batch, norm.num_groups, -1).float(), dim=-1, unbiased=False)
            self.stats.append((mean, var))
        if index >= len(self.stats):
            raise DiffdiffError("tiled VAE: the network's GroupNorm calls changed between passes")
        mean, var = self.stats[index]
        # y = (x - mean_g) / sqrt(var_g + eps) * w_c + b_c  ==  x * scale_c + shift_c (one fused pass over x)
        per_group = channels // norm.num_groups
        inv = torch.rsqrt(var + norm.eps).repeat_interleave(per_group, dim=1)  # (B, C)
        centre = mean.repeat_interleave(per_group, dim=1)
        if norm.affine:
            scale = inv * norm.weight.float()
            shift = norm.bias.float() - centre * scale
        else:
            scale, shift = inv, -centre * inv
        shape = (batch, channels) + (1,) * (x.ndim - 2)
        return torch.addcmul(shift.to(x.dtype).reshape(shape), x, scale.to(x.dtype).reshape(shape))


@contextmanager
def _patched_group_norms(module: torch.nn.Module, hook: _GroupNormStats):
    norms = [m for m in module.modules() if isinstance(m, torch.nn.GroupNorm)]
    for norm in norms:
        norm.forward = (lambda x, _norm=norm: hook.forward(_norm, x))
    try:
        yield
    finally:
        for norm in norms:
            del norm.forward


def _cores(size: int, tile: int, align: int) -> list[tuple[int, int]]:
    """(start, length) of near-equal cores of about `tile` covering 0..size; edges on multiples of align."""
    count = math.ceil(size / tile)
    units = size // align
    edges = [round(i * units / count) * align for i in range(count)] + [size]
    return [(a, b - a) for a, b in zip(edges, edges[1:]) if b > a]


def _run_tiled(net, module: torch.nn.Module, inp: torch.Tensor, tile: int, overlap: int, factor: float,
               align: int, out_channels: int, stats: str, stats_size: int | None) -> torch.Tensor:
    """Run `net` (a spatial map scaling sizes by `factor`) over tiles of `inp`, stitching the cores."""
    if stats not in STATS_MODES:
        choices = ", ".join(STATS_MODES)
        raise DiffdiffError(f"unknown GroupNorm statistics mode {stats!r}; choose one of {choices}")
    batch, _, height, width = inp.shape
    if height <= tile and width <= tile:
        return net(inp)[:, :out_channels]
    pad = math.ceil(overlap / align) * align
    hook = _GroupNormStats()
    out = inp.new_empty((batch, out_channels, round(height * factor), round(width * factor)))
    with _patched_group_norms(module, hook):
        if stats == "global":
            limit = tile if stats_size is None else stats_size
            scale = min(1.0, limit / max(height, width))
            small_hw = tuple(max(align, round(size * scale / align) * align) for size in (height, width))
            small = inp if small_hw == (height, width) else (
                F.interpolate(inp.float(), size=small_hw, mode="area").to(inp.dtype))
            hook.start_pass("record")
            net(small)
        for y, h in _cores(height, tile, align):
            for x, w in _cores(width, tile, align):
                y0, x0 = max(0, y - pad), max(0, x - pad)
                y1, x1 = min(height, y + h + pad), min(width, x + w + pad)
                hook.start_pass("apply" if stats == "global" else "off")
                result = net(inp[:, :, y0:y1, x0:x1])
                oy, ox, oh, ow = (round(v * factor) for v in (y, x, h, w))
                ry, rx = round((y - y0) * factor), round((x - x0) * factor)
                out[:, :, oy:oy + oh, ox:ox + ow] = result[:, :out_channels, ry:ry + oh, rx:rx + ow]
    return out


def _vae_factor(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def _check(tensor: torch.Tensor, name: str, tile: int, overlap: int) -> None:
    if tensor.ndim != 4:
        raise DiffdiffError(f"{name} must be a (B, C, H, W) tensor, got shape {tuple(tensor.shape)}")
    if tile <= 0 or overlap < 0:
        raise DiffdiffError(f"tile must be positive and overlap non-negative, got {tile} and {overlap}")


@torch.no_grad()
def tiled_vae_decode(vae, latents: torch.Tensor, tile: int = 64, overlap: int = 8, stats: str = "global",
                     stats_size: int | None = None) -> torch.Tensor:
    """Decode UNSCALED latents (B, C, h, w) tile by tile (`tile`, `overlap` in latent px) → images in [-1, 1].

    The caller divides model-space latents by vae.config.scaling_factor first. Runs in the VAE's dtype and
    device; returns on that device.
    """
    _check(latents, "latents", tile, overlap)
    param = next(vae.parameters())
    z = latents.to(param.device, param.dtype)
    if getattr(vae, "post_quant_conv", None) is not None:
        z = vae.post_quant_conv(z)
    factor = _vae_factor(vae)
    channels = vae.config.out_channels
    return _run_tiled(vae.decoder, vae.decoder, z, tile, overlap, factor, 1, channels, stats, stats_size)


@torch.no_grad()
def tiled_vae_encode(vae, images: torch.Tensor, tile: int = 512, overlap: int = 64, stats: str = "global",
                     stats_size: int | None = None) -> torch.Tensor:
    """Encode images (B, 3, H, W) in [-1, 1] tile by tile (`tile`, `overlap` in px) → UNSCALED latent means.

    H and W must be multiples of the VAE's downscale factor (8 for SD). Tile edges fall on that grid.
    """
    _check(images, "images", tile, overlap)
    factor = _vae_factor(vae)
    if images.shape[-2] % factor or images.shape[-1] % factor:
        raise DiffdiffError(f"image size {tuple(images.shape[-2:])} must be a multiple of {factor} to encode")
    param = next(vae.parameters())
    x = images.to(param.device, param.dtype)
    tile = max(factor, tile // factor * factor)
    latent_channels = vae.config.latent_channels

    def encode(part):
        moments = vae.encoder(part)
        if getattr(vae, "quant_conv", None) is not None:
            moments = vae.quant_conv(moments)
        return moments

    return _run_tiled(encode, vae.encoder, x, tile, overlap, 1 / factor, factor, latent_channels, stats,
                      stats_size)
