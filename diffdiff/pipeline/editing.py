"""Run an `EditRequest`: pad to the VAE's grid → pre-fill the hole (when asked) → encode (tiled when the plan
says) → the map onto the latent grid → sample through the gate (item k of a batch uses seed + k) → decode →
crop → change-aware composite with the original, so map-0 pixels stay the input's bytes. A request whose map
is small next to its image runs as crops around the map instead (`stitching`). Nothing is checked again
here: the request was.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
from PIL import Image

from .. import composite as compositing
from ..errors import DiffdiffError
from ..maps.latent import bilinear_grid, block_means
from ..models.families import FAMILY_TABLE
from ..models.networks import network_patch
from ..phases import PhaseClock, phase
from ..regions import fill_holes, hole_of
from ..request import EditRequest, Gate, Output, Prompting, Region, Sampling, Tiling, with_family_defaults
from ..tiles.vae import release_free_memory
from .inpainting import masked_pixels
from .result import RunResult
from .run import model_record, resolve_model, sample_latents
from .stitching import crop_boxes, run_cropped
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
                   padded_hw: tuple[int, int], output: Output, filled: np.ndarray | None = None):
    """Per image: opacity (float32 (H, W)) and the composite over `base` (or the RGBA layer when `alpha`).
    `filled` (bool (H, W)): pixels that were pre-filled; they take the new pixels whole (the change there
    was measured against the fill, not the original)."""
    height, width = base.shape[:2]
    opacities, images = [], []
    for top, item_change in zip(decoded, change):
        smooth = compositing.smooth_change(item_change, padded_hw)
        smooth = smooth if smooth.shape == (height, width) else np.ascontiguousarray(smooth[:height, :width])
        opacity = compositing.opacity_from(strength, smooth, influence=output.mask_influence,
                                           out=smooth)  # in place: one full-size float
        if filled is not None:
            opacity[filled] = 1.0
        opacities.append(opacity)
        if output.alpha:
            images.append(compositing.layer_with_alpha(top, opacity))
        else:
            images.append(compositing.composite(base, top, opacity))
    return opacities, images


def group_key(size: tuple[int, int], sampling: Sampling, gate: Gate, region: Region, tiling: Tiling,
              output: Output, prompting: Prompting, loras: tuple) -> tuple:
    """Edits with equal keys can share one sampling run (see `run_edits`): the same size, LoRAs and every
    option but the seed (the prompts, image and map are per item). SpotDiffusion draws its windows from the
    run's seed, so with that blend the seed is part of the key too."""
    if tiling.blend != "spot":
        sampling = dataclasses.replace(sampling, seed=0)
    return (size, sampling, gate, region, tiling, output, prompting, loras)


def request_group_key(request: EditRequest) -> tuple:
    return group_key(request.size, request.sampling, request.gate, request.region, request.tiling,
                     request.output, request.prompting, request.prompting.loras_for(request.prompt))


def run_edit(request: EditRequest, model, *, callback=None, record: dict | None = None,
             always_tile_network: bool = False) -> RunResult:
    """Run `request` with `model` (a LoadedModel); `record` replaces the request's settings record (upscale
    gives its own); `callback` is called once per sampler step."""
    return run_edits([request], model, callback=callback, records=[record],
                     always_tile_network=always_tile_network)[0]


def run_edits(requests: list[EditRequest], model, *, callback=None, records: list | None = None,
              always_tile_network: bool = False) -> list[RunResult]:
    """Run several requests of one `group_key` in one sampling run: their items (request k's batch, seeds
    seed + i) are stacked on the batch axis, each with its own image, map, prompts and seed. Each result
    carries the run's shared counts, with `group_items` saying how many items shared it. A request that is
    edited as crops (`crop_boxes`) runs on its own."""
    model = resolve_model(model)
    requests = [with_family_defaults(request, model.family) for request in requests]
    first = requests[0]
    if any(request_group_key(request) != request_group_key(first) for request in requests):
        raise DiffdiffError("internal: requests run together must share their size and options")
    records = records or [None] * len(requests)
    boxes = [crop_boxes(request, model) for request in requests]
    whole = [index for index, found in enumerate(boxes) if not found]
    results = dict(zip(whole, _run_whole([requests[i] for i in whole], model, callback,
                                         [records[i] for i in whole], always_tile_network) if whole else []))

    def run_one(crop: EditRequest) -> RunResult:
        return _run_whole([crop], model, callback, [None], always_tile_network)[0]

    for index, found in enumerate(boxes):
        if found:
            started = time.perf_counter()
            results[index] = run_cropped(requests[index], found, model, run_one, records[index])
            results[index].stats["seconds"] = time.perf_counter() - started
    return [results[index] for index in range(len(requests))]


def _run_whole(requests: list[EditRequest], model, callback, records: list, always_tile_network: bool):
    """`run_edits` for requests edited whole; each result's stats carry the run's `phases` seconds."""
    with PhaseClock().measuring() as clock:
        results = _edit_whole(requests, model, callback, records, always_tile_network)
    for item in results:
        item.stats["phases"] = clock.ordered()
    return results


def _edit_whole(requests: list[EditRequest], model, callback, records: list, always_tile_network: bool):
    started = time.perf_counter()
    first = requests[0]
    codec = model.vae_codec
    width, height = first.size
    patch = network_patch(model.family)
    padded_w, padded_h = padded_size(width, height, codec.factor * patch)
    plan = plan_tiling(first.tiling, padded_w, padded_h, native_size=FAMILY_TABLE[model.family].native_size,
                       factor=codec.factor, patch=patch, always_tile_network=always_tile_network)
    batch = first.sampling.batch
    pixels, cleans, strengths, hole_latents = [], [], [], []
    region = first.region
    for request in requests:
        pixels.append(pad_array(request.image.pixels, padded_h, padded_w))
        padded_map = pad_array(request.strength.values, padded_h, padded_w)
        start = pixels[-1]
        if region.fill != "none":
            start = fill_holes(start, padded_map, region.fill, region.fill_threshold, request.sampling.seed)
        with phase("vae_encode"):
            cleans.append(codec.encode(start, plan.vae_tile, plan.vae_overlap))
            if model.inpainting:
                greyed = masked_pixels(start, padded_map)
                hole_latents.append(codec.encode(greyed, plan.vae_tile, plan.vae_overlap))
        strengths.append(latent_strength(padded_map, first.gate.mode, codec.factor))
    del padded_map, start
    clean = torch.cat(cleans)
    strength = torch.stack(strengths).to(clean.device) if len(requests) > 1 else strengths[0].to(clean.device)
    latent = clean.repeat_interleave(batch, dim=0) if batch > 1 else clean
    prompts = [(request.prompt, request.negative) for request in requests for _ in range(batch)]
    seeds = [seed for request in requests for seed in request.sampling.seeds()]
    if strength.ndim == 3 and batch > 1:
        strength = strength.repeat_interleave(batch, dim=0)
    inpaint = None
    if model.inpainting:
        hole = (strength > 0).to(clean.dtype)
        inpaint = dict(clean=latent, hole_latent=torch.cat(hole_latents).repeat_interleave(batch, dim=0),
                       hole=hole.reshape(-1, 1, *hole.shape[-2:]), follow_gate=region.inpaint_mask == "gate")
    result, stats = sample_latents(
        model, latent, prompts=prompts, size=first.size, sampling=first.sampling, seeds=seeds,
        tiling=first.tiling, plan=plan, strength=strength, gate=first.gate, prompting=first.prompting,
        inpaint=inpaint, callback=callback)
    del latent, strength, inpaint, hole_latents
    release_free_memory()  # the sampler's freed tile activations, before the full-size buffers come
    with phase("decode"):
        decoded = codec.decode(result, plan.vae_tile, plan.vae_overlap)  # uint8 (items, H, W, 3), padded
    stats["group_items"] = len(prompts)
    with phase("composite"):
        results = _composited(requests, model, records, stats, result, cleans, pixels, decoded, batch,
                              (width, height), (padded_w, padded_h))
    seconds = time.perf_counter() - started
    for item in results:
        item.stats["seconds"] = seconds
    return results


def _composited(requests, model, records, stats, result, cleans, pixels, decoded, batch, size, padded):
    """Per request: its items composited over its input (when asked), as RunResults."""
    (width, height), (padded_w, padded_h) = size, padded
    region = requests[0].region
    results = []
    for index, request in enumerate(requests):
        items = slice(index * batch, (index + 1) * batch)
        item_decoded = decoded[items]
        opacities, images = None, None
        output = request.output
        if output.composite:
            change = compositing.latent_change(cleans[index], result[items],
                                               threshold=output.difference_threshold,
                                               contrast=output.difference_contrast)
            filled = None
            if region.fill != "none":
                filled = hole_of(request.strength.values, region.fill_threshold)
            opacities, images = _composite_all(
                pixels[index][:height, :width], item_decoded[:, :height, :width], request.strength.values,
                change, (padded_h, padded_w), output, filled)
        pixels[index] = None
        generated = [Image.fromarray(np.ascontiguousarray(item[:height, :width])) for item in item_decoded]
        record = records[index] if records[index] is not None else request.record()
        settings = {**model_record(model), **record, "tiles": stats["tiles"]}
        results.append(RunResult(images or generated, opacities, generated, settings, dict(stats)))
    return results


def edit(image, strength_map, prompt: str, *, model, negative: str = "", callback=None,
         stats: dict | None = None, **options) -> RunResult:
    """Edit `image` where `strength_map` says (white = change fully, black = keep exactly).

    `image`: PIL image or path. `strength_map`: number, numpy (H, W) array, PIL image or path, of the
    image's aspect ratio (resized to it). `model`: a LoadedModel (or a checkpoint path, loaded with
    defaults). `options`: the request's keywords — sampler, scheduler, steps, cfg, seed, denoise, batch;
    gate, gate_strength, invert_map, strength_levels; crop, context, fill, fill_threshold, inpaint_mask;
    tile, overlap, blend, tile_batch, vae_tile; composite, alpha, difference_threshold,
    difference_contrast, mask_influence; prompt_style, clip_skip, lora, lora_dir, embeddings_dir,
    allow_pickle (see `diffdiff.request`).
    `stats` (a dict) receives the run's counts (see `RunResult.stats`).
    """
    request = EditRequest.build(image, strength_map, prompt, negative=negative, **options)
    result = run_edit(request, model, callback=callback)
    if stats is not None:
        stats.update(result.stats)
    return result
