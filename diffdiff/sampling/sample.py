"""One sampling run, as ComfyUI's KSampler: seed → noise, scheduler → σ, start latent, gate, sampler, result.

``sample`` mirrors ComfyUI: noise from the seed, σ from the scheduler (denoise truncation, dropped
penultimate σ for dpm_2 / dpm_2_ancestral / uni_pc / uni_pc_bh2), start x = noise_scaling(σ0, n, z) with the
max-denoise rule, the sampler called with ``extra_args={"seed": seed}``, then inverse_noise_scaling. With a
strength map the denoiser is wrapped in a ``DifferentialGate``; in "exact" and "mask" modes strength-0 pixels
of the result are finally set to the input latent (``restore_held_pixels``), so they come out bit-identical
to it for every sampler.

The arguments are trusted: the caller (the request layer) has checked the sampler and scheduler names
(``SAMPLERS``, ``SCHEDULERS``), steps (an int ≥ 1), denoise (in (0, 1]), the gate mode (``GATE_MODES``),
gate_strength (in (0, 1]) and the strength map (on the latent grid, values in [0, 1]).
"""

from __future__ import annotations

import math

import torch

from .gate import DifferentialGate
from .noise import ddim_inpaint_noise, prepare_noise
from .samplers import SAMPLERS
from .schedules import run_sigmas


class CountingDenoiser:
    """Pass-through wrapper for runs without a map: drops ``seed``, counts calls, exposes model_sampling.

    Other keywords reach the inner denoiser unchanged, ``with_uncond`` of the CFG++ samplers included: a
    CFG denoiser answers it with guided and unconditional x0 stacked on the channel axis; one without CFG
    returns x0 alone, which those samplers read as uncond = x0."""

    def __init__(self, inner, model_sampling):
        self.inner = inner
        self.model_sampling = model_sampling
        self.calls = 0
        self.network_calls = 0

    def __call__(self, x, sigma, **kwargs):
        kwargs.pop("seed", None)
        self.calls += 1
        self.network_calls += 1
        return self.inner(x, sigma, **kwargs)


def is_max_denoise(model_sampling, sigmas: torch.Tensor) -> bool:
    """ComfyUI's rule: the run starts at full noise when σ0 ≥ σ_max (within relative 1e-5)."""
    sigma_max = float(model_sampling.sigma_max)
    sigma0 = float(sigmas[0])
    return math.isclose(sigma_max, sigma0, rel_tol=1e-05) or sigma0 > sigma_max


def restore_held_pixels(out: torch.Tensor, latent: torch.Tensor, keep_mask: torch.Tensor) -> torch.Tensor:
    """``out`` with the pixels of ``keep_mask`` (strength 0) set to the input latent, bit for bit."""
    return torch.where(keep_mask, latent, out)


def sample(denoiser, latent: torch.Tensor, *, model_sampling, sampler: str, scheduler: str, steps: int, seed,
           denoise: float = 1.0, strength_map=None, gate: str = "exact", gate_strength: float = 1.0,
           strength_levels: str = "steps", callback=None, skip: bool = True,
           stats: dict | None = None) -> torch.Tensor:
    """Denoise ``latent`` (B, C, h, w, model space) and return the result latent.

    ``denoiser(x, sigma, **kw) -> x0``; ``seed`` an int or one int per batch item; ``strength_map`` None
    (change everything) or a float tensor on the latent grid ((h, w), (B, h, w) or (1 or B, 1, h, w)) with
    values in [0, 1]; ``strength_levels`` "steps" | "continuous" (exact gate only, see ``DifferentialGate``);
    ``callback`` gets k-diffusion's step dict (``x``, ``i``, ``sigma``, ``sigma_hat``,
    ``denoised``) plus ``total_steps``; ``stats`` (a dict) is filled with ``network_calls``,
    ``network_calls_without_skip`` and ``steps``. An unknown sampler name raises KeyError.
    """
    assert latent.ndim == 4, latent.shape
    sampler_fn = SAMPLERS[sampler]
    noise = prepare_noise(latent, seed)
    sigmas = run_sigmas(model_sampling, scheduler, steps, denoise, sampler).to(latent.device)

    if strength_map is None:
        model = CountingDenoiser(denoiser, model_sampling)
    else:
        held_noise = noise
        if gate == "comfy" and sampler == "ddim":
            held_noise = ddim_inpaint_noise(noise, seed)
        model = DifferentialGate(denoiser, strength_map, latent, held_noise, sigmas, model_sampling,
                                 mode=gate, gate_strength=gate_strength, skip=skip, levels=strength_levels)

    k_callback = None
    if callback is not None:
        total_steps = len(sigmas) - 1

        def k_callback(info):
            callback({**info, "total_steps": total_steps})

    with torch.no_grad():
        x = model_sampling.noise_scaling(sigmas[0], noise, latent, is_max_denoise(model_sampling, sigmas))
        out = sampler_fn(model, x, sigmas, extra_args={"seed": seed}, callback=k_callback, disable=True)
        out = model_sampling.inverse_noise_scaling(sigmas[-1], out)
        if strength_map is not None and gate != "comfy":
            out = restore_held_pixels(out, latent, model.keep_mask)

    if stats is not None:
        stats["network_calls"] = model.network_calls
        stats["network_calls_without_skip"] = model.calls
        stats["steps"] = len(sigmas) - 1
    return out
