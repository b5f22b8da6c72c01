"""Run an `UpscaleRequest`: enlarge the image in pixels, then a tiled differential edit adds detail where
the refine map says (docs/design.md §9).

Pixel upscale is Lanczos, or an upscaler model (.pth/.safetensors) through spandrel when that is installed.
The refine is `run_edit` with the network always tiled; tiles whose pixels are all inactive at a step are
skipped exactly, so a low-strength map makes large upscales cheap.
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np
import torch
from PIL import Image

from ..errors import DiffdiffError
from ..maps.upscale_strength import strength_map_for
from ..request import (
    EditRequest,
    Gate,
    Output,
    Picture,
    Region,
    StrengthMap,
    UpscaleRequest,
    with_family_defaults,
)
from .editing import run_edit
from .result import RunResult
from .run import resolve_model


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def upscale_with_model(image: Image.Image, model_path) -> Image.Image:
    """Run an upscaler network (ESRGAN & co.) loaded by spandrel on `image`."""
    try:
        import spandrel
    except ImportError as exc:
        raise DiffdiffError("upscaler models need spandrel: pip install spandrel") from exc
    descriptor = spandrel.ModelLoader().load_from_file(str(model_path))
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
    with torch.no_grad():
        out = descriptor.model.eval()(pixels.permute(2, 0, 1)[None]).clamp(0, 1)
    return Image.fromarray((out[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))


def pixel_upscale(image: Image.Image, target: tuple[int, int], upscaler=None) -> Image.Image:
    """`image` enlarged to `target` (width, height): the upscaler model if given, then Lanczos."""
    if upscaler is not None:
        image = upscale_with_model(image, upscaler)
    return image if image.size == target else image.convert("RGB").resize(target, Image.LANCZOS)


def run_upscale(request: UpscaleRequest, model, *, callback=None) -> RunResult:
    started = time.perf_counter()
    model = resolve_model(model)
    request = with_family_defaults(request, model.family)
    enlarge = request.enlarge
    target = enlarge.target_size(request.image.size)
    enlarged = pixel_upscale(Image.fromarray(request.image.pixels), target, enlarge.upscaler)
    user_map = request.user_map.values if request.user_map is not None else None
    strength = strength_map_for(enlarged, enlarge.strength_from, strength=enlarge.strength, user_map=user_map,
                                min_strength=enlarge.min_strength, max_strength=enlarge.max_strength,
                                cell=model.vae_codec.factor)
    mean_strength = float(strength.mean(dtype=np.float64))
    refine = EditRequest(Picture(np.asarray(enlarged), request.image.name),
                         StrengthMap(strength, enlarge.record()["map"]), request.prompt, request.negative,
                         request.sampling, Gate(), request.tiling, Output(), request.prompting,
                         Region(crop="off"))
    del enlarged, strength  # the refine request holds the only copies
    result = run_edit(refine, model, callback=callback, record=request.record(mean_strength),
                      always_tile_network=True)
    result.stats.update(mean_strength=mean_strength, peak_rss_mb=peak_rss_mb(),
                        seconds=time.perf_counter() - started)
    return result


def upscale(image, *, model, prompt: str = "", negative: str = "", callback=None, stats: dict | None = None,
            **options) -> RunResult:
    """Upscale `image` (PIL or path) and refine it tiled. `options`: scale, strength or strength_from
    (detail|quadtree|map|uniform) with map, min_strength, max_strength, upscaler; the sampling and tiling
    keywords of `edit` (tile "auto" = the model's native size). `stats` receives the run's counts,
    mean_strength, peak_rss_mb and seconds."""
    request = UpscaleRequest.build(image, prompt, negative=negative, **options)
    result = run_upscale(request, model, callback=callback)
    if stats is not None:
        stats.update(result.stats)
    return result
