"""Tiled VAE encode/decode with GroupNorm statistics shared by all tiles (no per-tile colour shift).

The image is cut into non-overlapping cores; each core is run through the network padded by `overlap` on
every side (clipped to the image) and only the core of the result is kept, so memory is bounded by the
tile size. A plain per-tile run would normalise every GroupNorm with that tile's own mean and variance,
which shifts colours tile by tile. Here every GroupNorm instead uses statistics of the whole image:

1. estimate: the whole input, downscaled (area average) to fit one tile, runs once; each GroupNorm call
   records its per-group mean and variance (feature statistics are near scale-invariant for images);
2. refine (`refine` passes, default 1): every tile runs with the current statistics while each GroupNorm
   accumulates the sum and sum of squares of its activations over the tile cores only (so every pixel
   counts once) — giving the full-resolution statistics of each layer, exact up to the error of the
   statistics of the layers before it;
3. final pass: every tile runs with the refined statistics and its core is stitched into the output.

GroupNorm calls are matched across passes by their order within one forward pass. Inputs that fit one
tile run untiled (exact). `stats="tile"` gives the naive per-tile GroupNorm, for comparison.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ..errors import DiffdiffError

STATS_MODES = ("global", "estimate", "tile")


class _GroupNormStats:
    """Replaces every nn.GroupNorm forward inside a module; records or applies shared statistics."""

    def __init__(self):
        self.mode = "off"  # "record-whole" | "accumulate" | "apply" | "off"
        self.index = 0
        self.stats: list[tuple[torch.Tensor, torch.Tensor]] = []  # per call index: mean, var (B, G)
        self.sums: list[list[torch.Tensor]] = []
        self.core = None  # (cy, cx, ch, cw, in_h, in_w) of the current tile, input coordinates
        self.last_hw = None

    def start_pass(self, mode: str, core=None):
        self.mode, self.index, self.core, self.last_hw = mode, 0, core, None

    def forward(self, norm: torch.nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "off":
            return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)
        index, self.index = self.index, self.index + 1
        batch, channels = x.shape[:2]
        groups = norm.num_groups
        if x.ndim == 4:
            self.last_hw = tuple(x.shape[-2:])
        grouped = x.reshape(batch, groups, -1).to(torch.float64)
        if self.mode == "record-whole":
            self.stats.append((grouped.mean(-1), grouped.var(-1, unbiased=False)))
        elif self.mode == "accumulate":
            core = self._core_values(x).reshape(batch, groups, -1).to(torch.float64)
            part = [core.sum(-1), (core * core).sum(-1), torch.tensor(float(core.shape[-1]))]
            if index == len(self.sums):
                self.sums.append(part)
            else:
                self.sums[index] = [a + b for a, b in zip(self.sums[index], part)]
        if index >= len(self.stats):
            raise DiffdiffError("tiled VAE: the network's GroupNorm calls changed between passes")
        mean, var = self.stats[index]
        normed = (grouped - mean[..., None]) / torch.sqrt(var[..., None] + norm.eps)
        normed = normed.to(x.dtype).reshape(x.shape)
        if norm.affine:
            shape = (1, channels) + (1,) * (x.ndim - 2)
            normed = normed * norm.weight.reshape(shape) + norm.bias.reshape(shape)
        return normed

    def _core_values(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:  # attention's GroupNorm sees (B, C, H·W): restore the last spatial shape
            x = x.reshape(*x.shape[:2], *self.last_hw)
        cy, cx, ch, cw, in_h, in_w = self.core
        height, width = x.shape[-2:]
        y0, y1 = round(cy * height / in_h), round((cy + ch) * height / in_h)
        x0, x1 = round(cx * width / in_w), round((cx + cw) * width / in_w)
        return x[..., y0:y1, x0:x1]

    def finish_accumulation(self):
        self.stats = []
        for total, squares, count in self.sums:
            mean = total / count
            self.stats.append((mean, (squares / count - mean * mean).clamp_min(0)))
        self.sums = []


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
               align: int, out_channels: int, stats: str, refine: int) -> torch.Tensor:
    """Run `net` (a spatial map scaling sizes by `factor`) over tiles of `inp`, stitching the cores."""
    if stats not in STATS_MODES:
        raise DiffdiffError(f"unknown GroupNorm statistics mode {stats!r}; choose one of {STATS_MODES}")
    batch, _, height, width = inp.shape
    if height <= tile and width <= tile:
        return net(inp)[:, :out_channels]
    pad = math.ceil(overlap / align) * align
    boxes = []
    for y, h in _cores(height, tile, align):
        for x, w in _cores(width, tile, align):
            y0, x0 = max(0, y - pad), max(0, x - pad)
            y1, x1 = min(height, y + h + pad), min(width, x + w + pad)
            boxes.append((y0, x0, y1, x1, (y - y0, x - x0, h, w, y1 - y0, x1 - x0)))

    hook = _GroupNormStats()
    if stats == "tile":
        passes = []
    else:
        scale = tile / max(height, width)
        small_hw = tuple(max(align, round(size * scale / align) * align) for size in (height, width))
        small = F.interpolate(inp.float(), size=small_hw, mode="area").to(inp.dtype)
        passes = ["accumulate"] * (refine if stats == "global" else 0)
    out = None
    with _patched_group_norms(module, hook):
        if stats != "tile":
            hook.start_pass("record-whole")
            net(small)
        for mode in [*passes, "apply" if stats != "tile" else "off"]:
            for y0, x0, y1, x1, core in boxes:
                hook.start_pass(mode, core)
                result = net(inp[:, :, y0:y1, x0:x1])
                if mode == "accumulate":
                    continue
                cy, cx, ch, cw = core[:4]
                oy, ox = round((y0 + cy) * factor), round((x0 + cx) * factor)
                oh, ow = round(ch * factor), round(cw * factor)
                if out is None:
                    out_hw = (round(height * factor), round(width * factor))
                    out = result.new_empty((batch, out_channels, *out_hw))
                ry, rx = round(cy * factor), round(cx * factor)
                out[:, :, oy:oy + oh, ox:ox + ow] = result[:, :out_channels, ry:ry + oh, rx:rx + ow]
            if mode == "accumulate":
                hook.finish_accumulation()
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
                     refine: int = 1) -> torch.Tensor:
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
    return _run_tiled(vae.decoder, vae.decoder, z, tile, overlap, factor, 1, channels, stats, refine)


@torch.no_grad()
def tiled_vae_encode(vae, images: torch.Tensor, tile: int = 512, overlap: int = 64, stats: str = "global",
                     refine: int = 1) -> torch.Tensor:
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
                      refine)
