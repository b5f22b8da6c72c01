"""What every sampler shares: the small pieces of math, the per-step callback and the option check.

Noise levels follow k-diffusion: x = x0 + sigma * eps for EPS/V models ("VE" view); for rectified-flow
models (`model.model_sampling.prediction == "flow"`) x = (1 - sigma) * x0 + sigma * eps.
Follows k-diffusion (MIT, Katherine Crowson) and ComfyUI's numerics, written anew.
"""

from __future__ import annotations

import functools
import inspect
import math

import torch

# The arguments every sampler takes (k-diffusion's signature); anything after them is a sampler option.
FIXED_ARGUMENTS = ("model", "x", "sigmas", "extra_args", "callback", "disable", "noise_sampler")


def to_d(x: torch.Tensor, sigma, denoised: torch.Tensor) -> torch.Tensor:
    """The probability-flow ODE derivative dx/dsigma = (x - x0) / sigma (Karras et al. 2022)."""
    return (x - denoised) / _as_dims(sigma, x)


def _as_dims(value, like: torch.Tensor):
    """A scalar or per-batch (B,) tensor reshaped to broadcast against `like`."""
    if isinstance(value, torch.Tensor) and value.ndim == 1 and value.shape[0] > 1:
        return value.view(-1, *([1] * (like.ndim - 1)))
    return value


def get_ancestral_step(sigma_from, sigma_to, eta: float = 1.0):
    """Split a step sigma_from -> sigma_to into a deterministic step down to `sigma_down` and fresh
    noise of standard deviation `sigma_up`, with sigma_down^2 + sigma_up^2 = sigma_to^2.

    eta = 1 is DDPM-like ancestral sampling; eta = 0 is deterministic.
    """
    if not eta:
        return sigma_to, 0.0
    variance_ratio = sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2
    sigma_up = min(sigma_to, eta * variance_ratio**0.5)
    sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
    return sigma_down, sigma_up


def rf_ancestral_step(sigma_from, sigma_to, eta: float = 1.0):
    """The rectified-flow ancestral split (ComfyUI's *_RF samplers).

    Steps down to sigma_down = sigma_to * (1 + (sigma_to / sigma_from - 1) * eta), then rescales by
    alpha_ratio = (1 - sigma_to) / (1 - sigma_down) and adds noise of std `renoise`, so that the result
    has noise level sigma_to. Returns (sigma_down, alpha_ratio, renoise).
    """
    sigma_down = sigma_to * (1 + (sigma_to / sigma_from - 1) * eta)
    alpha_to = 1 - sigma_to
    alpha_down = 1 - sigma_down
    renoise = (sigma_to**2 - sigma_down**2 * alpha_to**2 / alpha_down**2) ** 0.5
    return sigma_down, alpha_to / alpha_down, renoise


def rf_midpoint_sigma(sigma, sigma_down):
    """The rectified-flow σ halfway from `sigma` to `sigma_down` in λ = log((1 − σ) / σ); 0.9999 from σ = 1,
    where λ is infinite (ComfyUI's DPM-Solver++(2S) RF midpoint)."""
    if sigma == 1.0:
        return 0.9999
    lam = ((1 - sigma) / sigma).log()
    lam_down = ((1 - sigma_down) / sigma_down).log()
    return 1 / ((lam + (lam_down - lam) / 2).exp() + 1)


def res_multistep_weights(h, c2):
    """RES second-order multistep weights (b1, b2) for a step of length h in t = −log σ, with c2 the previous
    step's length over h (Zhang et al., arXiv 2308.02157); 0 where h = 0 makes them 0/0."""
    phi1 = torch.expm1(-h) / -h
    phi2 = (phi1 - 1.0) / -h
    return torch.nan_to_num(phi1 - phi2 / c2, nan=0.0), torch.nan_to_num(phi2 / c2, nan=0.0)


def model_sampling_of(model):
    """The `ModelSampling` a denoiser exposes, or None (then samplers behave as for EPS/VE)."""
    return getattr(model, "model_sampling", None)


def is_flow(model_sampling) -> bool:
    """True for a rectified-flow parametrisation (ComfyUI's CONST model sampling)."""
    return model_sampling is not None and getattr(model_sampling, "prediction", None) == "flow"


def sigma_to_half_log_snr(sigma: torch.Tensor, model_sampling) -> torch.Tensor:
    """lambda = log(alpha / sigma): -log(sigma) for VE, log((1 - sigma) / sigma) for flow."""
    if is_flow(model_sampling):
        return sigma.logit().neg()
    return sigma.log().neg()


def half_log_snr_to_sigma(half_log_snr: torch.Tensor, model_sampling) -> torch.Tensor:
    """The inverse of `sigma_to_half_log_snr`."""
    if is_flow(model_sampling):
        return half_log_snr.neg().sigmoid()
    return half_log_snr.neg().exp()


def _percent_to_sigma(model_sampling, percent: float) -> float:
    """The sigma at `percent` of the way through sampling (0 = start), as ComfyUI defines it."""
    own = getattr(model_sampling, "percent_to_sigma", None)
    if own is not None:
        return float(own(percent))
    top = model_sampling.timestep(torch.as_tensor(float(model_sampling.sigma_max)))
    return float(model_sampling.sigma(torch.as_tensor(top * (1.0 - percent))))


def offset_first_sigma_for_snr(sigmas: torch.Tensor, model_sampling, percent_offset: float = 1e-4):
    """For flow models a first sigma of 1 has lambda = -inf; move it just below 1 (ComfyUI's rule)."""
    if len(sigmas) <= 1 or not is_flow(model_sampling) or sigmas[0] < 1:
        return sigmas
    sigmas = sigmas.clone()
    sigmas[0] = _percent_to_sigma(model_sampling, percent_offset)
    return sigmas


def ei_h_phi_1(h: torch.Tensor) -> torch.Tensor:
    """h * phi_1(h) = e^h - 1 (exponential-integrator weight)."""
    return torch.expm1(h)


def ei_h_phi_2(h: torch.Tensor) -> torch.Tensor:
    """h * phi_2(h) = (e^h - 1 - h) / h."""
    return (torch.expm1(h) - h) / h


def churn_sigma_hat(sigmas: torch.Tensor, i: int, s_churn: float, s_tmin: float, s_tmax: float):
    """Karras et al.'s "churn": raise sigma_i to sigma_hat = sigma_i * (1 + gamma).

    Returns (gamma, sigma_hat).
    """
    if s_churn > 0 and s_tmin <= sigmas[i] <= s_tmax:
        gamma = min(s_churn / (len(sigmas) - 1), math.sqrt(2.0) - 1)
    else:
        gamma = 0.0
    return gamma, sigmas[i] * (gamma + 1)


def add_churn_noise(x: torch.Tensor, sigma, sigma_hat, gamma: float, s_noise: float) -> torch.Tensor:
    """Add the noise that takes x from level sigma up to sigma_hat (global torch RNG, as ComfyUI)."""
    if gamma <= 0:
        return x
    eps = torch.randn_like(x) * s_noise
    return x + eps * (sigma_hat**2 - sigma**2) ** 0.5


def seed_of(extra_args: dict):
    """The run's seed (int, list of ints, or None) from extra_args, as ComfyUI passes it."""
    return extra_args.get("seed", None)


def report(callback, x, i, sigma, sigma_hat, denoised) -> None:
    """Send k-diffusion's per-step dict to `callback` when there is one."""
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


def weighted_sum(weights, tensors):
    """sum_k weights[k] * tensors[k], added left to right from 0."""
    total = 0
    for w, t in zip(weights, tensors):
        total = total + w * t
    return total


@functools.cache
def refusing_unknown_options(sampler):
    """`sampler`, raising ValueError (naming the valid options, in signature order) for an option it does
    not take. The "_gpu" aliases do not offer `cpu_tree`: they fix it."""
    parameters = inspect.signature(sampler).parameters
    valid = [name for name, parameter in parameters.items()
             if name not in FIXED_ARGUMENTS and parameter.kind is not parameter.VAR_KEYWORD]
    if sampler.__name__.endswith("_gpu"):
        valid.remove("cpu_tree")
    name = sampler.__name__.removeprefix("sample_")

    @functools.wraps(sampler)
    def checked(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                **options):
        unknown = sorted(set(options) - set(valid))
        if unknown:
            choices = ", ".join(valid) or "none"
            raise ValueError(f"sampler {name} has no option {', '.join(unknown)}; valid options: {choices}")
        return sampler(model, x, sigmas, extra_args, callback, disable, noise_sampler, **options)

    return checked
