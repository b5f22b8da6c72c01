"""Upscale-refine: enlarge an image in pixels, then a tiled differential edit adds detail where the map says.

Pixel upscale is Lanczos, or an upscaler model (.pth/.safetensors) through spandrel when that is installed.
The refine is `diffdiff.pipeline.edit` with the network and VAE tiled; its strength map comes from
`diffdiff.tiles.strength` (detail, quadtree, a map file, or uniform). Tiles whose pixels are all inactive
at a step are skipped exactly, so a low-strength map makes large upscales cheap.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import DiffdiffError
from .tiles.strength import strength_map_for

DEFAULT_STRENGTH = 0.35
NATIVE_TILE_PIXELS = {"sd1": 512, "sd2": 512, "sd2-v": 768, "sdxl": 1024}


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def check_scale(scale: float) -> float:
    if not isinstance(scale, (int, float)) or not np.isfinite(scale) or not 0 < scale <= 16:
        raise DiffdiffError(f"scale must be a number in (0, 16], got {scale!r}")
    return float(scale)


def upscale_with_model(image: Image.Image, model_path) -> Image.Image:
    """Run an upscaler network (ESRGAN & co.) loaded by spandrel on `image`."""
    path = Path(model_path)
    if path.suffix.lower() not in (".pth", ".safetensors"):
        raise DiffdiffError(f"upscaler model must be a .pth or .safetensors file, got {path.name}")
    if not path.is_file():
        raise DiffdiffError(f"upscaler model {path} not found")
    try:
        import spandrel
    except ImportError as exc:
        raise DiffdiffError("upscaler models need spandrel: pip install spandrel") from exc
    descriptor = spandrel.ModelLoader().load_from_file(str(path))
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
    with torch.no_grad():
        out = descriptor.model.eval()(pixels.permute(2, 0, 1)[None]).clamp(0, 1)
    return Image.fromarray((out[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))


def pixel_upscale(image: Image.Image, scale: float, upscaler=None) -> Image.Image:
    """`image` enlarged `scale` times (rounded to whole pixels): upscaler model if given, then Lanczos."""
    scale = check_scale(scale)
    width, height = image.size
    target = (max(8, round(width * scale)), max(8, round(height * scale)))
    if upscaler is not None:
        image = upscale_with_model(image, upscaler)
    return image if image.size == target else image.convert("RGB").resize(target, Image.LANCZOS)


def upscale(image, *, model, scale: float = 2.0, prompt: str = "", negative: str = "",
            sampler: str = "euler", scheduler: str = "normal", steps: int = 20, cfg: float = 7.0,
            seed: int = 0, tile: int | None = None, overlap: int | None = None, blend: str = "mixture",
            tile_batch: int = 4, strength: float | None = None, strength_from: str | None = None,
            map_path=None, min_strength: float = 0.0, max_strength: float = 0.5, upscaler=None,
            stats: dict | None = None, callback=None):
    """Upscale `image` (PIL or path) by `scale` and refine it tiled; returns the pipeline's EditResult.

    `tile`/`overlap` in image pixels (default: the family's native size, a quarter of it). `strength`
    alone means uniform strength; `strength_from` detail|quadtree|map|uniform builds a per-pixel map in
    [min_strength, max_strength]. `stats` receives network_calls, network_calls_without_skip, tiles, steps,
    peak_rss_mb and seconds.
    """
    from .imageio import load_image
    from .pipeline import edit

    started = time.perf_counter()
    if strength_from is None:
        strength_from = "uniform"
        strength = DEFAULT_STRENGTH if strength is None else strength
    elif strength is not None and strength_from != "uniform":
        raise DiffdiffError("give either --strength or --strength-from detail|quadtree|map, not both")
    enlarged = pixel_upscale(load_image(image), scale, upscaler)
    strength_map = strength_map_for(enlarged, strength_from, strength=strength, map_path=map_path,
                                    min_strength=min_strength, max_strength=max_strength)
    if tile is None:
        tile = NATIVE_TILE_PIXELS.get(getattr(model, "family", "sd1"), 512)
    run_stats: dict = {}
    mean_strength = float(strength_map.mean(dtype=np.float64))
    # hand the full-size image and map over to edit(), which drops them once it has its own checked copies
    handed = [enlarged, strength_map]
    del enlarged, strength_map
    result = edit(handed.pop(0), handed.pop(0), prompt, model=model, negative=negative, sampler=sampler,
                  scheduler=scheduler, steps=steps, cfg=cfg, seed=seed, tile=int(tile), overlap=overlap,
                  blend=blend, tile_batch=tile_batch, callback=callback, stats=run_stats)
    # edit() recorded an edit of an in-memory array; say what was really done (the JSON holds every setting)
    result.settings.update(
        mode="upscale", scale=scale, strength_from=strength_from, strength=strength,
        min_strength=None if strength_from == "uniform" else min_strength,
        max_strength=None if strength_from == "uniform" else max_strength, mean_strength=mean_strength,
        map=Path(map_path).name if map_path is not None else strength_from,
        upscaler=Path(upscaler).name if upscaler is not None else "lanczos",
        image=Path(image).name if isinstance(image, (str, os.PathLike)) else "image")
    if stats is not None:
        stats.update({key: run_stats[key] for key in ("network_calls", "network_calls_without_skip", "tiles",
                                                      "steps") if key in run_stats})
        stats["mean_strength"] = mean_strength
        stats["peak_rss_mb"] = peak_rss_mb()
        stats["seconds"] = time.perf_counter() - started
    return result
