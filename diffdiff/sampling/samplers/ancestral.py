"""Ancestral samplers (fresh noise every step): euler_ancestral, dpm_2_ancestral, dpmpp_2s_ancestral,
res_multistep(_ancestral), ddpm, lcm, with the rectified-flow ("_RF") variants ComfyUI switches to
when the model's sampling is flow.

Noise comes from `noise_sampler` or, by default, from `default_noise_sampler(x, extra_args["seed"])`
(`independent_noise_source`).
Numerics follow ComfyUI's comfy/k_diffusion/sampling.py; code follows k-diffusion (MIT), written anew.
"""

from __future__ import annotations

import torch

from .common import (
    get_ancestral_step,
    is_flow,
    model_sampling_of,
    report,
    res_multistep_weights,
    rf_ancestral_step,
    rf_midpoint_sigma,
    to_d,
)
from .noise import independent_noise_source
from .ode import dpm_2_step


@torch.no_grad()
def sample_euler_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None,
                           noise_sampler=None, eta=1.0, s_noise=1.0):
    """Euler step down to sigma_down, then fresh noise of std sigma_up (flow models: the RF variant)."""
    if is_flow(model_sampling_of(model)):
        return sample_euler_ancestral_rf(model, x, sigmas, extra_args, callback, disable, noise_sampler,
                                         eta=eta, s_noise=s_noise)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigma_down == 0:
            x = denoised
        else:
            d = to_d(x, sigmas[i], denoised)
            x = x + d * (sigma_down - sigmas[i])
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_euler_ancestral_rf(model, x, sigmas, extra_args=None, callback=None, disable=None,
                              noise_sampler=None, eta=1.0, s_noise=1.0):
    """Euler ancestral for rectified flow: interpolate towards x0 down to sigma_down, rescale, renoise."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        sigma_down, alpha_ratio, renoise = rf_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        ratio = sigma_down / sigmas[i]
        x = ratio * x + (1 - ratio) * denoised
        if eta > 0:
            x = alpha_ratio * x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * renoise
    return x


@torch.no_grad()
def sample_dpm_2_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None,
                           noise_sampler=None, eta=1.0, s_noise=1.0):
    """dpm_2's midpoint step down to sigma_down, then fresh noise (flow models: the RF variant)."""
    flow = is_flow(model_sampling_of(model))
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if flow:
            sigma_down, alpha_ratio, sigma_up = rf_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        else:
            sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
            alpha_ratio = 1.0
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
        else:
            x = dpm_2_step(model, x, d, sigmas[i], sigma_down, s_in, extra_args)
            noise = noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
            x = alpha_ratio * x + noise if flow else x + noise
    return x


def dpmpp_2s_step(x, sigma, sigma_down, x0, x0_at):
    """One DPM-Solver++(2S) step from `sigma` down to `sigma_down` (> 0) in t = −log σ: a first-order half
    step with `x0`, then the whole step with `x0_at(x_mid, sigma_mid)`, the x0 at the midpoint."""
    t, t_next = sigma.log().neg(), torch.as_tensor(sigma_down).log().neg()
    h = t_next - t
    s = t + h / 2
    x_2 = (s.neg().exp() / t.neg().exp()) * x - (-h / 2).expm1() * x0
    x0_2 = x0_at(x_2, s.neg().exp())
    return (t_next.neg().exp() / t.neg().exp()) * x - (-h).expm1() * x0_2


def dpmpp_2s_rf_step(x, sigma, sigma_down, x0, x0_at):
    """`dpmpp_2s_step` for rectified flow: the midpoint is halfway in λ = log((1 − σ) / σ)
    (`rf_midpoint_sigma`) and both stages interpolate towards x0."""
    sigma_s = rf_midpoint_sigma(sigma, sigma_down)
    ratio_s = sigma_s / sigma
    x0_2 = x0_at(ratio_s * x + (1 - ratio_s) * x0, sigma_s)
    ratio_down = sigma_down / sigma
    return ratio_down * x + (1 - ratio_down) * x0_2


@torch.no_grad()
def sample_dpmpp_2s_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None,
                              noise_sampler=None, eta=1.0, s_noise=1.0):
    """DPM-Solver++(2S) single-step second order down to sigma_down, then fresh noise."""
    if is_flow(model_sampling_of(model)):
        return sample_dpmpp_2s_ancestral_rf(model, x, sigmas, extra_args, callback, disable, noise_sampler,
                                            eta=eta, s_noise=s_noise)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            x = dpmpp_2s_step(x, sigmas[i], sigma_down, denoised,
                              lambda x_2, sigma_2: model(x_2, sigma_2 * s_in, **extra_args))
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_2s_ancestral_rf(model, x, sigmas, extra_args=None, callback=None, disable=None,
                                 noise_sampler=None, eta=1.0, s_noise=1.0):
    """DPM-Solver++(2S) ancestral for rectified flow (midpoint in lambda = log((1 - sigma) / sigma))."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, alpha_ratio, renoise = rf_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            x = dpmpp_2s_rf_step(x, sigmas[i], sigma_down, denoised,
                                 lambda x_2, sigma_2: model(x_2, sigma_2 * s_in, **extra_args))
        if sigmas[i + 1] > 0 and eta > 0:
            x = alpha_ratio * x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * renoise
    return x


@torch.no_grad()
def sample_res_multistep(model, x, sigmas, extra_args=None, callback=None, disable=None,
                         noise_sampler=None, s_noise=1.0, eta=0.0):
    """RES second-order multistep (Zhang et al., arXiv 2308.02157); eta > 0 makes it ancestral."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    old_sigma_down = old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigma_down == 0 or old_denoised is None:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = sigmas[i].log().neg(), torch.as_tensor(sigma_down).log().neg()
            t_old = torch.as_tensor(old_sigma_down).log().neg()
            t_prev = sigmas[i - 1].log().neg()
            h = t_next - t
            b1, b2 = res_multistep_weights(h, (t_prev - t_old) / h)
            x = h.neg().exp() * x + h * (b1 * denoised + b2 * old_denoised)
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
        old_denoised, old_sigma_down = denoised, sigma_down
    return x


@torch.no_grad()
def sample_res_multistep_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None,
                                   noise_sampler=None, eta=1.0, s_noise=1.0):
    """res_multistep with ancestral noise (eta = 1 by default)."""
    return sample_res_multistep(model, x, sigmas, extra_args, callback, disable, noise_sampler,
                                s_noise=s_noise, eta=eta)


def ddpm_step(x_scaled, sigma, sigma_next, eps, noise_sampler):
    """One DDPM ancestral step in VP space: the posterior mean mu plus its std times fresh noise."""
    alpha_bar = 1 / (sigma * sigma + 1)
    alpha_bar_next = 1 / (sigma_next * sigma_next + 1)
    alpha = alpha_bar / alpha_bar_next
    mu = (1.0 / alpha).sqrt() * (x_scaled - (1 - alpha) * eps / (1 - alpha_bar).sqrt())
    if sigma_next > 0:
        std = ((1 - alpha) * (1.0 - alpha_bar_next) / (1.0 - alpha_bar)).sqrt()
        mu = mu + std * noise_sampler(sigma, sigma_next)
    return mu


@torch.no_grad()
def sample_ddpm(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    """DDPM ancestral sampling: step in VP space (x / sqrt(1 + sigma^2)) and scale back."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        eps = to_d(x, sigmas[i], denoised)  # the slope (x - x0) / sigma is the noise estimate
        x = ddpm_step(x / torch.sqrt(1.0 + sigmas[i] ** 2.0), sigmas[i], sigmas[i + 1], eps, noise_sampler)
        if sigmas[i + 1] != 0:
            x = x * torch.sqrt(1.0 + sigmas[i + 1] ** 2.0)
    return x


def _noise_to_level(model_sampling, sigma, noise, x0):
    """Noise a clean x0 to level sigma with the model's own rule (EPS/VE: x0 + sigma * noise)."""
    if model_sampling is not None:
        return model_sampling.noise_scaling(sigma, noise, x0)
    return noise * sigma + x0


@torch.no_grad()
def sample_lcm(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
               s_noise=1.0, s_noise_end=None, noise_clip_std=0.0):
    """Latent-consistency sampling: jump to x0, then re-noise it to the next level with fresh noise.

    `s_noise` .. `s_noise_end` scales the fresh noise, interpolated linearly over the steps;
    `noise_clip_std` > 0 clamps the noise to that many of its standard deviations.
    """
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    model_sampling = model_sampling_of(model)
    s_in = x.new_ones([x.shape[0]])
    n_steps = max(1, len(sigmas) - 1)
    s_start = float(s_noise)
    s_end = s_start if s_noise_end is None else float(s_noise_end)
    for i in range(n_steps):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = denoised
        if sigmas[i + 1] > 0:
            noise = noise_sampler(sigmas[i], sigmas[i + 1])
            if noise_clip_std > 0:
                limit = noise_clip_std * noise.std()
                noise = noise.clamp(min=-limit, max=limit)
            progress = i / (n_steps - 1) if n_steps > 1 else 0.0
            scale = s_start + (s_end - s_start) * progress
            if scale != 1.0:
                noise = noise * scale
            x = _noise_to_level(model_sampling, sigmas[i + 1], noise, x)
    return x
