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

import ctypes
import math
from contextlib import contextmanager
from functools import partial

import numpy as np
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


class _TensorSource:
    """Tiles read from a (B, C, H, W) tensor already in the network's dtype and device."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor
        self.shape = tuple(tensor.shape)

    def region(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        return self.tensor[:, :, y0:y1, x0:x1]

    def downscaled(self, hw: tuple[int, int]) -> torch.Tensor:
        inp = self.tensor
        if hw == tuple(inp.shape[-2:]):
            return inp
        return F.interpolate(inp.float(), size=hw, mode="area").to(inp.dtype)


class _PixelSource:
    """Tiles read from uint8 pixels (B, H, W, 3), converted to [-1, 1] one tile at a time."""

    def __init__(self, pixels: np.ndarray, device, dtype, to_tensor):
        self.pixels, self.device, self.dtype, self.to_tensor = pixels, device, dtype, to_tensor
        batch, height, width, channels = pixels.shape
        self.shape = (batch, channels, height, width)

    def _convert(self, part: np.ndarray) -> torch.Tensor:
        return self.to_tensor(part, self.device, self.dtype)

    def region(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        return self._convert(self.pixels[:, y0:y1, x0:x1])

    def downscaled(self, hw: tuple[int, int]) -> torch.Tensor:
        if hw == tuple(self.pixels.shape[1:3]):
            return self._convert(self.pixels)
        # one channel at a time in float32: the same area average as the tensor path, a third of its memory
        planes = (torch.from_numpy(np.require(self.pixels[..., c], requirements=("C", "W")))[:, None].float()
                  for c in range(self.pixels.shape[-1]))
        channels = [F.interpolate(plane, size=hw, mode="area") for plane in planes]
        small = torch.cat(channels, dim=1)
        return (small / 127.5 - 1.0).to(self.device, self.dtype)


class _TensorSink:
    """Stitches tile cores into one preallocated (B, C, H, W) tensor."""

    def __init__(self, like: torch.Tensor, shape: tuple[int, ...]):
        self.out = like.new_empty(shape)

    def write(self, y: int, x: int, core: torch.Tensor) -> None:
        self.out[:, :, y:y + core.shape[-2], x:x + core.shape[-1]] = core

    def result(self):
        return self.out


class _PixelSink:
    """Stitches decoded tile cores into preallocated uint8 pixels (B, H, W, 3), quantised per tile."""

    def __init__(self, like: torch.Tensor, shape: tuple[int, ...], quantise):
        batch, channels, height, width = shape
        self.out = np.empty((batch, height, width, channels), np.uint8)
        self.quantise = quantise

    def write(self, y: int, x: int, core: torch.Tensor) -> None:
        pixels = self.quantise(core)
        self.out[:, y:y + pixels.shape[1], x:x + pixels.shape[2]] = pixels

    def result(self):
        return self.out


def _run_tiled(net, module: torch.nn.Module, source, tile: int, overlap: int, factor: float,
               align: int, out_channels: int, stats: str, stats_size: int | None, make_sink=_TensorSink):
    """Run `net` (a spatial map scaling sizes by `factor`) over tiles of `source`, stitching the cores.

    `make_sink(first_result, out_shape)` makes the object the cores are written to."""
    if stats not in STATS_MODES:
        choices = ", ".join(STATS_MODES)
        raise DiffdiffError(f"unknown GroupNorm statistics mode {stats!r}; choose one of {choices}")
    batch, _, height, width = source.shape
    out_shape = (batch, out_channels, round(height * factor), round(width * factor))
    if height <= tile and width <= tile:
        result = net(source.region(0, height, 0, width))[:, :out_channels]
        sink = make_sink(result, out_shape)
        sink.write(0, 0, result)
        return sink.result()
    pad = math.ceil(overlap / align) * align
    hook = _GroupNormStats()
    sink = None
    with _patched_group_norms(module, hook):
        if stats == "global":
            limit = tile if stats_size is None else stats_size
            scale = min(1.0, limit / max(height, width))
            small_hw = tuple(max(align, round(size * scale / align) * align) for size in (height, width))
            hook.start_pass("record")
            net(source.downscaled(small_hw))
        for y, h in _cores(height, tile, align):
            for x, w in _cores(width, tile, align):
                y0, x0 = max(0, y - pad), max(0, x - pad)
                y1, x1 = min(height, y + h + pad), min(width, x + w + pad)
                hook.start_pass("apply" if stats == "global" else "off")
                result = net(source.region(y0, y1, x0, x1))
                oy, ox, oh, ow = (round(v * factor) for v in (y, x, h, w))
                ry, rx = round((y - y0) * factor), round((x - x0) * factor)
                if sink is None:
                    sink = make_sink(result, out_shape)
                sink.write(oy, ox, result[:, :out_channels, ry:ry + oh, rx:rx + ow])
                del result
    release_free_memory()
    return sink.result()


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc's malloc_trim; a no-op elsewhere).

    A tiled pass frees many tile-sized activations; glibc keeps them in its heap, which shows as resident
    memory that later full-size buffers then add to.
    """
    global _TRIM
    if _TRIM is None:
        try:
            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM = None


def _check(shape: tuple[int, ...], name: str, tile: int, overlap: int) -> None:
    if len(shape) != 4:
        raise DiffdiffError(f"{name} must be a (B, C, H, W) tensor, got shape {tuple(shape)}")
    if tile <= 0 or overlap < 0:
        raise DiffdiffError(f"tile must be positive and overlap non-negative, got {tile} and {overlap}")


@torch.no_grad()
def tiled_vae_decode(vae, latents: torch.Tensor, tile: int = 64, overlap: int = 8, *, factor: int,
                     stats: str = "global", stats_size: int | None = None, quantise=None):
    """Decode UNSCALED latents (B, C, h, w) tile by tile (`tile`, `overlap` in latent px) → images in [-1, 1].

    `factor` is the VAE's upscale factor (pixels per latent pixel). The caller turns model-space latents
    into the VAE's own scale first (`diffdiff.models.vae.VaeCodec` does). Runs in the VAE's dtype and
    device; returns on that device. With `quantise` (float tile → uint8 (B, h, w, 3)) it returns uint8
    numpy pixels (B, H, W, 3) instead, each tile quantised as it is decoded, so no full-size float image is
    ever held.
    """
    _check(tuple(latents.shape), "latents", tile, overlap)
    param = next(vae.parameters())
    z = latents.to(param.device, param.dtype)
    if getattr(vae, "post_quant_conv", None) is not None:
        z = vae.post_quant_conv(z)
    channels = vae.config.out_channels
    make_sink = _TensorSink if quantise is None else partial(_PixelSink, quantise=quantise)
    return _run_tiled(vae.decoder, vae.decoder, _TensorSource(z), tile, overlap, factor, 1, channels, stats,
                      stats_size, make_sink)


@torch.no_grad()
def tiled_vae_encode(vae, images, tile: int = 512, overlap: int = 64, *, factor: int, stats: str = "global",
                     stats_size: int | None = None, to_tensor=None) -> torch.Tensor:
    """Encode images tile by tile (`tile`, `overlap` in px) → UNSCALED latent means (B, C, H/f, W/f).

    `images`: a float tensor (B, 3, H, W) in [-1, 1], or uint8 numpy pixels (H, W, 3) or (B, H, W, 3)
    together with `to_tensor(pixels, device, dtype)`, which converts them to [-1, 1] one tile at a time.
    H and W must be multiples of the VAE's downscale `factor`; tile edges fall on that grid.
    """
    param = next(vae.parameters())
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim not in (3, 4) or images.shape[-1] != 3:
            raise DiffdiffError(f"pixels must be uint8 (H, W, 3) or (B, H, W, 3), got {images.dtype} "
                                f"{images.shape}")
        if to_tensor is None:
            raise DiffdiffError("uint8 pixels need a to_tensor conversion")
        source = _PixelSource(images[None] if images.ndim == 3 else images, param.device, param.dtype,
                              to_tensor)
    else:
        _check(tuple(images.shape), "images", tile, overlap)
        source = _TensorSource(images.to(param.device, param.dtype))
    _check(source.shape, "images", tile, overlap)
    if source.shape[-2] % factor or source.shape[-1] % factor:
        raise DiffdiffError(f"image size {tuple(source.shape[-2:])} must be a multiple of {factor} to encode")
    tile = max(factor, tile // factor * factor)
    latent_channels = vae.config.latent_channels

    def encode(part):
        moments = vae.encoder(part)
        if getattr(vae, "quant_conv", None) is not None:
            moments = vae.quant_conv(moments)
        return moments

    return _run_tiled(encode, vae.encoder, source, tile, overlap, 1 / factor, factor, latent_channels, stats,
                      stats_size)
