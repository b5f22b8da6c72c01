"""The Python API: `edit` (image + strength map + prompt → images) and `generate` (prompt → images).

edit: validate → pad to a multiple of 8 → VAE encode (tiled when large) → map to the latent grid →
conditioning → `sample()` with the differential gate (item k of a batch uses seed + k, so it equals that
seed run alone) → VAE decode → crop → change-aware composite with the original (map-0 pixels stay the
input's bytes). Tiling wraps the model's denoiser in a TiledDenoiser, inside the gate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import diffdiff
from diffdiff import composite as compositing
from diffdiff.errors import DiffdiffError
from diffdiff.imageio import load_image, output_paths, save_png
from diffdiff.maps import to_latent_grid
from diffdiff.metadata import parameters_text, settings_for_item
from diffdiff.pipeline_inputs import (
    check_size,
    pad_array,
    padded_size,
    pixel_map,
    validate_options,
)
from diffdiff.pipeline_tiling import decode_pixels, encode_pixels, plan_tiling, wrap_denoiser
from diffdiff.sampling import sample
from diffdiff.tiles.vae import release_free_memory

DEFAULT_TILE_BATCH = 4
LATENT_STRIP_PIXELS = 1 << 22  # map pixels averaged to the latent grid at a time


@dataclass
class EditResult:
    """What an edit or generation returns.

    `images`: the final PIL images (RGB composites; RGBA layers when `alpha=True`, whose alpha is the
    opacity). `opacities`: per image, the float32 (H, W) opacity of the generated pixels (None when not
    composited). `generated`: the raw decoded images before compositing. `settings`: everything needed to
    reproduce the run (item k's seed is settings["seed"] + k). `stats`: network calls, tiles, steps, seconds.
    """

    images: list[Image.Image]
    opacities: list[np.ndarray] | None
    generated: list[Image.Image]
    settings: dict
    stats: dict = field(default_factory=dict)

    @property
    def alpha(self) -> bool:
        return bool(self.settings.get("alpha"))

    def parameters(self, index: int = 0) -> str:
        """The A1111 `parameters` text of image `index`."""
        return parameters_text(settings_for_item(self.settings, index))

    def save(self, path, overwrite: bool = False) -> list[Path]:
        """Write image k to OUT.png (k = 0) or OUT-k.png, each with its own metadata; return the paths."""
        written = []
        for index, (target, image) in enumerate(zip(output_paths(path, len(self.images)), self.images)):
            settings = settings_for_item(self.settings, index)
            written.append(save_png(target, image, parameters=parameters_text(settings), settings=settings,
                                    overwrite=overwrite))
        return written


def _resolve_model(model, **load_options):
    if isinstance(model, (str, Path)):
        from diffdiff.models import load_model

        return load_model(model, **load_options)
    for attribute in ("encode_prompt", "denoiser", "vae_encode", "vae_decode", "model_sampling"):
        if not hasattr(model, attribute):
            raise DiffdiffError(f"model must be a LoadedModel or a checkpoint path; it lacks {attribute!r}")
    return model


def _base_settings(model, prompt, negative, options, width, height, extra) -> dict:
    settings = {
        "prompt": prompt, "negative": negative, "width": width, "height": height,
        "model": getattr(model, "name", None), "model_hash": getattr(model, "short_hash", None),
        "family": getattr(model, "family", None), "version": diffdiff.__version__,
    }
    settings.update({key: value for key, value in options.items() if key != "tile_batch"})
    settings.update(extra)
    return settings


def _run_sampler(model, latent, strength, *, prompt, negative, options, plan, width, height, callback,
                 sample_stats):
    """Conditioning → (tiled) denoiser → sample(); returns (result latent, tiler or None, tile count)."""
    conditioning = model.encode_prompt(prompt, negative, width=width, height=height, batch=1)
    denoiser = model.denoiser(conditioning, options["cfg"])
    denoiser, tile_count = wrap_denoiser(denoiser, plan, tuple(latent.shape[-2:]), blend=options["blend"],
                                         tile_batch=options["tile_batch"], seed=options["seed"])
    seeds = [options["seed"] + k for k in range(latent.shape[0])]
    with torch.no_grad():
        result = sample(
            denoiser, latent, model_sampling=model.model_sampling, sampler=options["sampler"],
            scheduler=options["scheduler"], steps=options["steps"], seed=seeds, denoise=options["denoise"],
            strength_map=strength, gate=options["gate"], gate_strength=options["gate_strength"],
            callback=callback, skip=True, stats=sample_stats,
        )
    return result, (denoiser if tile_count > 1 else None), tile_count


def _fill_stats(stats, sample_stats, tiler, tile_count, batch, steps, started):
    """Network-call counts of the run. Untiled: calls of the (batched) network. Tiled: tile evaluations per
    image; "without skip" is every gate call (skipped ones included, from `sample`'s stats) × tiles."""
    stats = {} if stats is None else stats
    calls = int(sample_stats.get("network_calls", 0))
    calls_without_skip = int(sample_stats.get("network_calls_without_skip", 0))
    if tiler is not None:
        calls = round(tiler.tile_calls / batch)
        calls_without_skip = calls_without_skip * tile_count
    stats["network_calls"] = calls
    stats["network_calls_without_skip"] = calls_without_skip
    stats["tiles"] = tile_count
    stats["steps"] = int(sample_stats.get("steps", steps))
    stats["seconds"] = time.perf_counter() - started
    return stats


def latent_grid(padded_map: np.ndarray, latent_hw: tuple[int, int]) -> torch.Tensor:
    """The pixel map averaged to the latent grid (h, w), in row strips (no full-size float64 copy)."""
    height, width = latent_hw
    if padded_map.shape != (8 * height, 8 * width):
        return to_latent_grid(padded_map, latent_hw)
    rows = max(1, LATENT_STRIP_PIXELS // (64 * width))  # latent rows per strip (each 8 × 8w pixels)
    strips = []
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        strips.append(to_latent_grid(padded_map[8 * top:8 * bottom], (bottom - top, width)))
    return torch.cat(strips, dim=0)


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


def edit(image, strength_map, prompt: str, *, model, negative: str = "", sampler: str = "euler",
         scheduler: str = "normal", steps: int = 20, cfg: float = 7.0, seed: int = 0, denoise: float = 1.0,
         batch: int = 1, gate: str = "exact", gate_strength: float = 1.0, invert_map: bool = False,
         composite: bool = True, alpha: bool = False, tile="auto", overlap: int | None = None,
         blend: str = "mixture", tile_batch: int = DEFAULT_TILE_BATCH, callback=None,
         stats: dict | None = None) -> EditResult:
    """Edit `image` where `strength_map` says (white = change fully, black = keep exactly).

    `image`: PIL image or path. `strength_map`: number, numpy (H, W) array, PIL image or path, of the
    image's aspect ratio (resized to it). `model`: a LoadedModel (or a path, loaded with defaults).
    `tile`: "auto" | "off" | size in pixels; `overlap` in pixels. `alpha=True` returns RGBA layers whose
    alpha is the composite opacity. `stats` (a dict) receives network_calls, network_calls_without_skip
    (tile evaluations when tiled), tiles, steps, seconds.
    """
    started = time.perf_counter()
    options = validate_options(sampler=sampler, scheduler=scheduler, steps=steps, cfg=cfg, denoise=denoise,
                               batch=batch, gate=gate, gate_strength=gate_strength, seed=seed, tile=tile,
                               overlap=overlap, blend=blend, tile_batch=tile_batch)
    if alpha and not composite:
        raise DiffdiffError("alpha output is the composite's opacity; drop --no-composite to use --alpha")
    original = load_image(image)
    image = None  # let a caller's temporary go (upscale hands over its enlarged image)
    width, height = original.size
    check_size(width, height)
    strength, map_description = pixel_map(strength_map, original.size, invert=invert_map)
    strength_map = None  # as with `image`: the checked copy is all we need
    model = _resolve_model(model)
    scale = int(getattr(model, "vae_scale", 8))

    padded_w, padded_h = padded_size(width, height, scale)
    pixels = pad_array(np.asarray(original), padded_h, padded_w)
    del original  # the uint8 pixels are all the composite needs
    padded_map = pad_array(strength, padded_h, padded_w)
    plan = plan_tiling(options["tile"], options["overlap"], padded_w, padded_h, model.family, scale)

    clean = encode_pixels(model, pixels, plan)
    latent_map = latent_grid(padded_map, tuple(clean.shape[-2:])).to(clean.device, torch.float32)
    del padded_map
    latent = clean.expand(options["batch"], -1, -1, -1).contiguous()
    sample_stats: dict = {}
    result, tiler, tile_count = _run_sampler(
        model, latent, latent_map, prompt=prompt, negative=negative, options=options, plan=plan,
        width=width, height=height, callback=callback, sample_stats=sample_stats)
    del latent
    release_free_memory()  # the sampler's freed tile activations, before the full-size buffers come
    decoded = decode_pixels(model, result, plan, scale)  # uint8 (B, padded H, padded W, 3)
    opacities, images = None, None
    if composite:
        change = compositing.latent_change(clean, result)
        opacities, images = _composite_all(pixels[:height, :width], decoded[:, :height, :width], strength,
                                           change, (padded_h, padded_w), alpha)
    del pixels
    generated = [Image.fromarray(np.ascontiguousarray(item[:height, :width])) for item in decoded]
    del decoded
    if images is None:
        images = generated
    settings = _base_settings(model, prompt, negative, options, width, height, {
        "mode": "edit", "map": map_description, "invert_map": bool(invert_map), "composite": bool(composite),
        "alpha": bool(alpha), "tiles": tile_count,
    })
    stats = _fill_stats(stats, sample_stats, tiler, tile_count, options["batch"], options["steps"], started)
    return EditResult(images, opacities, generated, settings, dict(stats))


def generate(prompt: str, *, model, width: int = 512, height: int = 512, negative: str = "",
             sampler: str = "euler", scheduler: str = "normal", steps: int = 20, cfg: float = 7.0,
             seed: int = 0, batch: int = 1, tile="auto", overlap: int | None = None, blend: str = "mixture",
             tile_batch: int = DEFAULT_TILE_BATCH, callback=None, stats: dict | None = None) -> EditResult:
    """Text to image at `width`×`height` pixels (made at the next multiple of 8, then cropped)."""
    started = time.perf_counter()
    options = validate_options(sampler=sampler, scheduler=scheduler, steps=steps, cfg=cfg, denoise=1.0,
                               batch=batch, gate="exact", gate_strength=1.0, seed=seed, tile=tile,
                               overlap=overlap, blend=blend, tile_batch=tile_batch)
    for value, name in ((width, "width"), (height, "height")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 8 <= value <= 16384:
            raise DiffdiffError(f"{name} must be an integer in [8, 16384]; got {value!r}")
    model = _resolve_model(model)
    scale = int(getattr(model, "vae_scale", 8))
    padded_w, padded_h = padded_size(int(width), int(height), scale)
    plan = plan_tiling(options["tile"], options["overlap"], padded_w, padded_h, model.family, scale)
    channels = int(getattr(model, "latent_channels", 4))
    latent_shape = (options["batch"], channels, padded_h // scale, padded_w // scale)
    latent = torch.zeros(latent_shape, device=model.device)
    sample_stats: dict = {}
    result, tiler, tile_count = _run_sampler(
        model, latent, None, prompt=prompt, negative=negative, options=options, plan=plan,
        width=int(width), height=int(height), callback=callback, sample_stats=sample_stats)
    decoded = decode_pixels(model, result, plan, scale)
    images = [Image.fromarray(np.ascontiguousarray(item[:height, :width])) for item in decoded]
    settings = _base_settings(model, prompt, negative, options, int(width), int(height), {
        "mode": "generate", "tiles": tile_count,
    })
    for key in ("gate", "gate_strength", "denoise"):  # no source image: these do not apply
        settings.pop(key, None)
    stats = _fill_stats(stats, sample_stats, tiler, tile_count, options["batch"], options["steps"], started)
    return EditResult(images, None, images, settings, dict(stats))
