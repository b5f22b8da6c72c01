"""The sampling run shared by edit, generate and upscale: prompt → conditioning → the denoiser chain
(inpainting inputs → tiles → call counter → NaN guard → CFG → network; the gate is added by `sample`) →
`sample()` → the run's counts. Also the model's part of the settings record."""

from __future__ import annotations

from pathlib import Path

import torch

import diffdiff

from ..errors import DiffdiffError
from ..models.conditioning import Conditioning, stack_conditionings
from ..phases import phase
from ..request import Gate, Prompting, Sampling, Tiling
from ..sampling import sample
from .inpainting import InpaintInputs
from .step_cost import step_costs, weighted
from .tiling import TilingPlan, wrap_denoiser
from .watch import FiniteGuard, NetworkCalls

MODEL_ATTRIBUTES = ("family", "encode_prompt", "denoiser", "vae_codec", "model_sampling", "sampling_at")


def resolve_model(model):
    """A LoadedModel as given, or one loaded (with defaults) from a checkpoint path."""
    if isinstance(model, (str, Path)):
        from ..models import load_model

        return load_model(model)
    for attribute in MODEL_ATTRIBUTES:
        if not hasattr(model, attribute):
            raise DiffdiffError(f"model must be a LoadedModel or a checkpoint path; it lacks {attribute!r}")
    return model


def model_record(model) -> dict:
    """The model's entries in the settings record."""
    record = {"model": getattr(model, "name", None), "model_hash": getattr(model, "short_hash", None),
              "family": model.family, "version": diffdiff.__version__}
    precision = getattr(model, "precision", None)
    if precision is not None:
        record.update(precision.record())
    if getattr(model, "inpainting", False):
        record["inpainting_model"] = True
    return record


def model_denoiser(model, conditioning: Conditioning, sampling: Sampling):
    """The model's denoiser for the run's CFG scale, with the distilled guidance and the skip-layer
    guidance when they are asked for."""
    extra = {}
    if sampling.guidance is not None:
        extra["guidance"] = sampling.guidance
    if sampling.slg:
        extra["skip_layer_guidance"] = (sampling.slg, sampling.slg_layers)
    return model.denoiser(conditioning, sampling.cfg, **extra)


def encode_prompts(model, prompts: list[tuple[str, str]], size: tuple[int, int],
                   reading=None) -> Conditioning:
    """The conditioning of (prompt, negative) pairs: batch 1 when all pairs are the same (it is expanded to
    the latent's batch later), else one row per pair, each distinct pair encoded once."""
    width, height = size
    encoded = {pair: model.encode_prompt(*pair, width=width, height=height, batch=1, reading=reading)
               for pair in dict.fromkeys(prompts)}
    if len(encoded) == 1:
        return next(iter(encoded.values()))
    return stack_conditionings([encoded[pair] for pair in prompts])


def sample_latents(model, latent: torch.Tensor, *, prompts: list[tuple[str, str]], size: tuple[int, int],
                   sampling: Sampling, tiling: Tiling, plan: TilingPlan, strength: torch.Tensor | None = None,
                   gate: Gate | None = None, seeds: list[int] | None = None,
                   prompting: Prompting | None = None, inpaint: dict | None = None,
                   callback=None) -> tuple[torch.Tensor, dict]:
    """Denoise `latent` (B, C, h, w); with a latent-grid `strength` map ((h, w) or (B, h, w)) through the
    `gate`. `prompts`: one (prompt, negative) pair for all items, or one per item, read as `prompting` says,
    with its LoRAs (those of the first prompt: items run together share them) applied for the run;
    `seeds`: one per item (default: the sampling's seed + k); `inpaint`: the keywords of `InpaintInputs`
    (clean, hole_latent, hole, follow_gate) for an inpainting UNet.

    Returns the result latent and the counts: `steps`, `sampler_calls` (calls of the gated denoiser,
    skipped ones included), `network_calls` (batched network calls made), `tiles`, `tile_evaluations`
    (per image: the whole image counts as one tile when untiled) and `tile_evaluations_without_skip`
    (sampler calls × tiles).
    """
    from ..lora import applied_loras

    prompting = prompting or Prompting()
    with applied_loras(model, list(prompting.loras_for(prompts[0][0])), allow_pickle=prompting.allow_pickle):
        return _sample(model, latent, prompts, size, sampling, tiling, plan, strength, gate, seeds, prompting,
                       inpaint, callback)


def _sample(model, latent, prompts, size, sampling, tiling, plan, strength, gate, seeds, prompting, inpaint,
            callback):
    with phase("text_encode"):  # the text encoders' first load included
        conditioning = encode_prompts(model, prompts, size, prompting.reading())
    network = NetworkCalls(FiniteGuard(model_denoiser(model, conditioning, sampling)))
    model_sampling = model.sampling_at(*size)  # Flux dev's shift depends on the size
    denoiser, tile_count = wrap_denoiser(network, plan, tuple(latent.shape[-2:]), blend=tiling.blend,
                                         tile_batch=tiling.tile_batch, seed=sampling.seed)
    gate_arguments = {}
    if strength is not None:
        gate_arguments = {"strength_map": strength, "gate": gate.mode, "gate_strength": gate.strength,
                          "strength_levels": gate.levels}
        if callback is not None:
            tiles = denoiser.tiles if tile_count > 1 and tiling.blend != "spot" else None
            union = strength.amax(0) if strength.ndim == 3 else strength  # a step costs if any item is active
            callback = weighted(callback, step_costs(model_sampling, sampling, gate, union, tiles))
    arguments = sampling.sampler_arguments()
    if seeds is not None:
        arguments["seed"] = list(seeds)
    counts: dict = {}
    outer = InpaintInputs(denoiser, **inpaint) if inpaint is not None else denoiser
    with torch.no_grad(), phase("sampling"):
        result = sample(outer, latent, model_sampling=model_sampling, **arguments,
                        **gate_arguments, callback=callback, skip=True, stats=counts)
    sampler_calls = int(counts["network_calls_without_skip"])
    evaluations = denoiser.tile_calls / latent.shape[0] if tile_count > 1 else counts["network_calls"]
    return result, {
        "steps": int(counts["steps"]), "sampler_calls": sampler_calls, "network_calls": network.calls,
        "tiles": tile_count, "tile_evaluations": round(evaluations),
        "tile_evaluations_without_skip": sampler_calls * tile_count,
    }
