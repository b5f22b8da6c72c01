"""Noise schedules: the nine ComfyUI schedulers and the σ sequence of a run (denoise, dropped penultimate σ).

Every scheduler returns a descending 1-D float32 tensor that ends in 0. Values equal ComfyUI's
(``comfy/samplers.py`` and k-diffusion's ``get_sigmas_*``): the same arithmetic in the same order, so the
float32 rounding matches. Which bound each one uses: karras, exponential and kl_optimal read
``sigma_min`` / ``sigma_max`` as floats; simple, ddim_uniform and beta pick entries of the σ table; normal and
sgm_uniform go through ``timestep`` / ``sigma``; linear_quadratic scales a [1 → 0] ramp by ``sigma_max``.
"""

from __future__ import annotations

import math

import numpy
import scipy.stats
import torch

# Samplers that take one more step's σ and drop the penultimate one (ComfyUI's KSampler does this).
DISCARD_PENULTIMATE_SIGMA_SAMPLERS = frozenset(("dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"))


def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def simple_sigmas(ms, steps: int) -> torch.Tensor:
    """Evenly spaced entries of the σ table from the top: S[M−1−⌊k·M/steps⌋]."""
    stride = len(ms.sigmas) / steps
    values = [float(ms.sigmas[-(1 + int(k * stride))]) for k in range(steps)]
    return torch.FloatTensor(values + [0.0])


def ddim_uniform_sigmas(ms, steps: int) -> torch.Tensor:
    """Every ⌊M/steps⌋-th table entry from index 1 upwards (may give one step more than asked, as ComfyUI)."""
    if math.isclose(float(ms.sigmas[1]), 0, abs_tol=0.00001):
        steps += 1
        values = []
    else:
        values = [0.0]
    stride = max(len(ms.sigmas) // steps, 1)
    index = 1
    while index < len(ms.sigmas):
        values.append(float(ms.sigmas[index]))
        index += stride
    return torch.FloatTensor(values[::-1])


def normal_sigmas(ms, steps: int, sgm: bool = False) -> torch.Tensor:
    """σ at timesteps spaced linearly from t(σ_max) to t(σ_min); sgm drops the last of steps+1 points."""
    start = ms.timestep(ms.sigma_max)
    end = ms.timestep(ms.sigma_min)
    append_zero = True
    if sgm:
        timesteps = torch.linspace(start, end, steps + 1)[:-1]
    else:
        if math.isclose(float(ms.sigma(end)), 0, abs_tol=0.00001):
            steps += 1
            append_zero = False
        timesteps = torch.linspace(start, end, steps)
    values = [float(ms.sigma(t)) for t in timesteps]
    if append_zero:
        values.append(0.0)
    return torch.FloatTensor(values)


def sgm_uniform_sigmas(ms, steps: int) -> torch.Tensor:
    return normal_sigmas(ms, steps, sgm=True)


def karras_sigmas(ms, steps: int, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022): σ_max^{1/ρ} → σ_min^{1/ρ} linearly, raised to ρ (after k-diffusion, MIT)."""
    sigma_min, sigma_max = float(ms.sigma_min), float(ms.sigma_max)
    ramp = torch.linspace(0, 1, steps)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential_sigmas(ms, steps: int) -> torch.Tensor:
    """σ spaced evenly in log from σ_max to σ_min (after k-diffusion, MIT)."""
    sigma_min, sigma_max = float(ms.sigma_min), float(ms.sigma_max)
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), steps).exp())


def beta_sigmas(ms, steps: int, alpha: float = 0.6, beta: float = 0.6) -> torch.Tensor:
    """Table entries at the Beta(α, β) quantiles of 1 − k/steps (arXiv 2407.12173); repeats dropped."""
    last_index = len(ms.sigmas) - 1
    quantiles = 1 - numpy.linspace(0, 1, steps, endpoint=False)
    indices = numpy.rint(scipy.stats.beta.ppf(quantiles, alpha, beta) * last_index)
    values, previous = [], -1
    for index in indices:
        if index != previous:
            values.append(float(ms.sigmas[int(index)]))
        previous = index
    return torch.FloatTensor(values + [0.0])


def linear_quadratic_sigmas(ms, steps: int, threshold_noise: float = 0.025,
                            linear_steps: int | None = None) -> torch.Tensor:
    """Mochi's schedule: noise rises linearly to ``threshold_noise`` for half the steps, then quadratically
    to 1; flipped (1 − x) into a descending σ/σ_max ramp and scaled by σ_max."""
    if steps == 1:
        ramp = [1.0, 0.0]
    else:
        if linear_steps is None:
            linear_steps = steps // 2
        linear_part = [i * threshold_noise / linear_steps for i in range(linear_steps)]
        step_diff = linear_steps - threshold_noise * steps
        quadratic_steps = steps - linear_steps
        quadratic_coef = step_diff / (linear_steps * quadratic_steps**2)
        linear_coef = threshold_noise / linear_steps - 2 * step_diff / (quadratic_steps**2)
        const = quadratic_coef * (linear_steps**2)
        quadratic_part = [quadratic_coef * (i**2) + linear_coef * i + const
                          for i in range(linear_steps, steps)]
        ramp = [1.0 - x for x in linear_part + quadratic_part + [1.0]]
    return torch.FloatTensor(ramp) * ms.sigma_max.cpu()


def kl_optimal_sigmas(ms, steps: int) -> torch.Tensor:
    """tan(u·atan σ_min + (1−u)·atan σ_max), u = k/(steps−1) (A1111 PR 15608). For one step ComfyUI divides
    by zero (NaN); here u = 0, i.e. [σ_max, 0]."""
    sigma_min, sigma_max = float(ms.sigma_min), float(ms.sigma_max)
    u = torch.arange(steps, dtype=torch.float)
    if steps > 1:
        u = u.div_(steps - 1)
    sigmas = u.new_zeros(steps + 1)
    sigmas[:-1] = (u * math.atan(sigma_min) + (1 - u) * math.atan(sigma_max)).tan_()
    return sigmas


_SCHEDULER_FUNCTIONS = {
    "simple": simple_sigmas,
    "sgm_uniform": sgm_uniform_sigmas,
    "karras": karras_sigmas,
    "exponential": exponential_sigmas,
    "ddim_uniform": ddim_uniform_sigmas,
    "beta": beta_sigmas,
    "normal": normal_sigmas,
    "linear_quadratic": linear_quadratic_sigmas,
    "kl_optimal": kl_optimal_sigmas,
}

# The scheduler names, in ComfyUI's order: the one list callers check names against.
SCHEDULERS = tuple(_SCHEDULER_FUNCTIONS)


def calculate_sigmas(model_sampling, name: str, steps: int) -> torch.Tensor:
    """The σ sequence (descending, ending in 0) of scheduler ``name`` (one of ``SCHEDULERS``; another name
    raises KeyError) for ``steps`` ≥ 1 steps."""
    return _SCHEDULER_FUNCTIONS[name](model_sampling, steps)


def run_sigmas(model_sampling, scheduler: str, steps: int, denoise: float = 1.0,
               sampler: str = "euler") -> torch.Tensor:
    """σ of one run as ComfyUI's KSampler: for denoise < 1 schedule ⌊steps/denoise⌋ steps and keep the last
    steps+1 σ; dpm_2, dpm_2_ancestral, uni_pc, uni_pc_bh2 schedule one step more and drop the
    penultimate σ. The caller has checked ``steps`` ≥ 1 (an int) and ``denoise`` in (0, 1]."""

    def scheduled(n: int) -> torch.Tensor:
        if sampler in DISCARD_PENULTIMATE_SIGMA_SAMPLERS:
            sigmas = calculate_sigmas(model_sampling, scheduler, n + 1)
            return torch.cat([sigmas[:-2], sigmas[-1:]])
        return calculate_sigmas(model_sampling, scheduler, n)

    if denoise > 0.9999:
        return scheduled(steps)
    return scheduled(int(steps / denoise))[-(steps + 1):]
