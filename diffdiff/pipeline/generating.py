"""Run a `GenerateRequest`: text to image at the asked size (made at the next multiple of the VAE's factor,
then cropped), with the same samplers, tiles and metadata as an edit."""

from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image

from ..models.families import FAMILY_TABLE
from ..models.networks import network_patch
from ..request import GenerateRequest, with_family_defaults
from .editing import padded_size
from .inpainting import grey_latent
from .result import RunResult
from .run import model_record, resolve_model, sample_latents
from .tiling import plan_tiling


def run_generate(request: GenerateRequest, model, *, callback=None) -> RunResult:
    started = time.perf_counter()
    model = resolve_model(model)
    request = with_family_defaults(request, model.family)
    codec = model.vae_codec
    patch = network_patch(model.family)
    padded_w, padded_h = padded_size(request.width, request.height, codec.factor * patch)
    plan = plan_tiling(request.tiling, padded_w, padded_h, native_size=FAMILY_TABLE[model.family].native_size,
                       factor=codec.factor, patch=patch)
    latent_hw = (padded_h // codec.factor, padded_w // codec.factor)
    latent = torch.zeros((request.sampling.batch, model.latent_channels, *latent_hw), device=model.device)
    inpaint = None
    if model.inpainting:  # nothing is known: the whole image is the hole
        inpaint = dict(clean=latent, hole_latent=grey_latent(codec, latent),
                       hole=torch.ones_like(latent[:1, :1]), follow_gate=False)
    result, stats = sample_latents(model, latent, prompts=[(request.prompt, request.negative)],
                                   size=request.size, sampling=request.sampling, tiling=request.tiling,
                                   plan=plan, prompting=request.prompting, inpaint=inpaint, callback=callback)
    decoded = codec.decode(result, plan.vae_tile, plan.vae_overlap)
    height, width = request.height, request.width
    images = [Image.fromarray(np.ascontiguousarray(item[:height, :width])) for item in decoded]
    settings = {**model_record(model), **request.record(), "tiles": stats["tiles"]}
    stats["seconds"] = time.perf_counter() - started
    return RunResult(images, None, images, settings, stats)


def generate(prompt: str, *, model, negative: str = "", width: int = 512, height: int = 512, callback=None,
             stats: dict | None = None, **options) -> RunResult:
    """Text to image at `width`×`height` pixels; `options` as `edit`'s sampling and tiling keywords."""
    request = GenerateRequest.build(prompt, negative=negative, width=width, height=height, **options)
    result = run_generate(request, model, callback=callback)
    if stats is not None:
        stats.update(result.stats)
    return result
