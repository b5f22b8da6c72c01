"""Run an `EditRequest`: pad to the VAE's grid → encode (tiled when the plan says) → the map onto the latent
grid → sample through the gate (item k of a batch uses seed + k) → decode → crop → change-aware composite
with the original, so map-0 pixels stay the input's bytes. Nothing is checked again here: the request was.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image

from .. import composite as compositing
from ..maps.latent import bilinear_grid, block_means
from ..models.families import FAMILY_TABLE
from ..request import EditRequest
from ..tiles.vae import release_free_memory
from .result import RunResult
from .run import model_record, resolve_model, sample_latents
from .tiling import plan_tiling


def padded_size(width: int, height: int, multiple: int) -> tuple[int, int]:
    return (-(-width // multiple) * multiple, -(-height // multiple) * multiple)


def pad_array(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad (H, W[, C]) at the bottom/right to (height, width): mirrored where possible, else edge-repeated."""
    extra_h, extra_w = height - array.shape[0], width - array.shape[1]
    if extra_h == 0 and extra_w == 0:
        return array
    pads = [(0, extra_h), (0, extra_w)] + [(0, 0)] * (array.ndim - 2)
    mirror = extra_h < array.shape[0] and extra_w < array.shape[1]
    return np.pad(array, pads, mode="reflect" if mirror else "edge")


def latent_strength(padded_map: np.ndarray, gate_mode: str, factor: int) -> torch.Tensor:
    """The map on the latent grid: block means, or ComfyUI's bilinear sampling for the comfy gate."""
    if gate_mode == "comfy":
        return bilinear_grid(padded_map, (padded_map.shape[0] // factor, padded_map.shape[1] // factor))
    return block_means(padded_map, factor)


def _composite_all(base: np.ndarray, decoded: np.ndarray, strength: np.ndarray, change: np.ndarray,
                   padded_hw: tuple[int, int], alpha: bool):
    """Per image: opacity (float32 (H, W)) and the composite over `base` (or the RGBA layer when `alpha`)."""
    height, width = base.shape[:2]
    opacities, images = [], []
    for top, item_change in zip(decoded, change):
        smooth = compositing.smooth_change(item_change, padded_hw)
        smooth = smooth if smooth.shape == (height, width) else np.ascontiguousarray(smooth[:height, :width])
        opacity = compositing.opacity_from(strength, smooth, out=smooth)  # in place: one full-size float
        opacities.append(opacity)
        if alpha:
            images.append(compositing.layer_with_alpha(top, opacity))
        else:
            images.append(compositing.composite(base, top, opacity))
    return opacities, images


def run_edit(request: EditRequest, model, *, callback=None, record: dict | None = None,
             always_tile_network: bool = False) -> RunResult:
    """Run `request` with `model` (a LoadedModel); `record` replaces the request's settings record (upscale
    gives its own); `callback` is called once per sampler step."""
    started = time.perf_counter()
    model = resolve_model(model)
    codec = model.vae_codec
    width, height = request.size
    padded_w, padded_h = padded_size(width, height, codec.factor)
    pixels = pad_array(request.image.pixels, padded_h, padded_w)
    padded_map = pad_array(request.strength.values, padded_h, padded_w)
    plan = plan_tiling(request.tiling, padded_w, padded_h, native_size=FAMILY_TABLE[model.family].native_size,
                       factor=codec.factor, always_tile_network=always_tile_network)

    clean = codec.encode(pixels, plan.vae_tile, plan.vae_overlap)
    strength = latent_strength(padded_map, request.gate.mode, codec.factor).to(clean.device)
    del padded_map
    latent = clean.expand(request.sampling.batch, -1, -1, -1).contiguous()
    result, stats = sample_latents(
        model, latent, prompt=request.prompt, negative=request.negative, size=request.size,
        sampling=request.sampling, tiling=request.tiling, plan=plan, strength=strength, gate=request.gate,
        callback=callback)
    del latent
    release_free_memory()  # the sampler's freed tile activations, before the full-size buffers come
    decoded = codec.decode(result, plan.vae_tile, plan.vae_overlap)  # uint8 (B, padded H, padded W, 3)
    opacities, images = None, None
    if request.output.composite:
        change = compositing.latent_change(clean, result)
        opacities, images = _composite_all(pixels[:height, :width], decoded[:, :height, :width],
                                           request.strength.values, change, (padded_h, padded_w),
                                           request.output.alpha)
    del pixels
    generated = [Image.fromarray(np.ascontiguousarray(item[:height, :width])) for item in decoded]
    del decoded
    settings = {**model_record(model), **(record or request.record()), "tiles": stats["tiles"]}
    stats["seconds"] = time.perf_counter() - started
    return RunResult(images or generated, opacities, generated, settings, stats)


def edit(image, strength_map, prompt: str, *, model, negative: str = "", callback=None,
         stats: dict | None = None, **options) -> RunResult:
    """Edit `image` where `strength_map` says (white = change fully, black = keep exactly).

    `image`: PIL image or path. `strength_map`: number, numpy (H, W) array, PIL image or path, of the
    image's aspect ratio (resized to it). `model`: a LoadedModel (or a checkpoint path, loaded with
    defaults). `options`: the request's keywords — sampler, scheduler, steps, cfg, seed, denoise, batch;
    gate, gate_strength, invert_map; tile, overlap, blend, tile_batch, vae_tile; composite, alpha (see
    `diffdiff.request`). `stats` (a dict) receives the run's counts (see `RunResult.stats`).
    """
    request = EditRequest.build(image, strength_map, prompt, negative=negative, **options)
    result = run_edit(request, model, callback=callback)
    if stats is not None:
        stats.update(result.stats)
    return result
