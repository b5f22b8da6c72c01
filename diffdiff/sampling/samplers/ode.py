"""Deterministic single-step ODE samplers: euler, heun, heunpp2, dpm_2, dpmpp_2m, gradient_estimation.

Every sampler has k-diffusion's signature
`fn(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, **options)`,
where `model(x, sigma * x.new_ones(B), **extra_args)` returns the denoised x0. Numerics and option
defaults follow ComfyUI's comfy/k_diffusion/sampling.py; the code follows k-diffusion (MIT,
Katherine Crowson), written anew.
"""

from __future__ import annotations

import torch

from .common import add_churn_noise, churn_sigma_hat, report, to_d


@torch.no_grad()
def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                 s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0):
    """Euler steps on the probability-flow ODE (Karras et al. 2022, Algorithm 2 without the correction)."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        gamma, sigma_hat = churn_sigma_hat(sigmas, i, s_churn, s_tmin, s_tmax)
        x = add_churn_noise(x, sigmas[i], sigma_hat, gamma, s_noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        report(callback, x, i, sigmas[i], sigma_hat, denoised)
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_heun(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0):
    """Heun's second-order method (Karras et al. 2022, Algorithm 2); an Euler step into sigma = 0."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        gamma, sigma_hat = churn_sigma_hat(sigmas, i, s_churn, s_tmin, s_tmax)
        x = add_churn_noise(x, sigmas[i], sigma_hat, gamma, s_noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        report(callback, x, i, sigmas[i], sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_euler = x + d * dt
            denoised_next = model(x_euler, sigmas[i + 1] * s_in, **extra_args)
            d_next = to_d(x_euler, sigmas[i + 1], denoised_next)
            x = x + (d + d_next) / 2 * dt
    return x


@torch.no_grad()
def sample_heunpp2(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                   s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0):
    """Heun++ (ComfyUI's heunpp2, from Carzit's MIT sd-webui-samplers-scheduler): up to three slopes
    per step, weighted by sigma_{i+1} / (3 sigma_0) and sigma_{i+2} / (3 sigma_0)."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    s_end = sigmas[-1]
    for i in range(len(sigmas) - 1):
        gamma, sigma_hat = churn_sigma_hat(sigmas, i, s_churn, s_tmin, s_tmax)
        eps = torch.randn_like(x) * s_noise  # drawn every step, as ComfyUI does
        if gamma > 0:
            x = x + eps * (sigma_hat**2 - sigmas[i] ** 2) ** 0.5
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        report(callback, x, i, sigmas[i], sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == s_end:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = to_d(x_2, sigmas[i + 1], model(x_2, sigmas[i + 1] * s_in, **extra_args))
        if sigmas[i + 2] == s_end:
            w2 = sigmas[i + 1] / (2 * sigmas[0])
            x = x + (d * (1 - w2) + d_2 * w2) * dt
        else:
            x_3 = x_2 + d_2 * (sigmas[i + 2] - sigmas[i + 1])
            d_3 = to_d(x_3, sigmas[i + 2], model(x_3, sigmas[i + 2] * s_in, **extra_args))
            w2 = sigmas[i + 1] / (3 * sigmas[0])
            w3 = sigmas[i + 2] / (3 * sigmas[0])
            x = x + ((1 - w2 - w3) * d + w2 * d_2 + w3 * d_3) * dt
    return x


def dpm_2_step(model, x, d, sigma_from, sigma_to, s_in, extra_args):
    """DPM-Solver-2 style step: evaluate the slope at the log-midpoint sigma, then step the full way."""
    sigma_mid = sigma_from.log().lerp(sigma_to.log(), 0.5).exp()
    x_mid = x + d * (sigma_mid - sigma_from)
    d_mid = to_d(x_mid, sigma_mid, model(x_mid, sigma_mid * s_in, **extra_args))
    return x + d_mid * (sigma_to - sigma_from)


@torch.no_grad()
def sample_dpm_2(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                 s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0):
    """A DPM-Solver-2-inspired midpoint sampler (k-diffusion); an Euler step into sigma = 0."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        gamma, sigma_hat = churn_sigma_hat(sigmas, i, s_churn, s_tmin, s_tmax)
        x = add_churn_noise(x, sigmas[i], sigma_hat, gamma, s_noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        report(callback, x, i, sigmas[i], sigma_hat, denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:
            x = dpm_2_step(model, x, d, sigma_hat, sigmas[i + 1], s_in, extra_args)
    return x


@torch.no_grad()
def sample_dpmpp_2m(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    """DPM-Solver++(2M): a second-order multistep exponential integrator in t = -log(sigma)."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        t, t_next = sigmas[i].log().neg(), sigmas[i + 1].log().neg()
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            denoised_d = denoised
        else:
            r = (t - sigmas[i - 1].log().neg()) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x = (t_next.neg().exp() / t.neg().exp()) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_gradient_estimation(model, x, sigmas, extra_args=None, callback=None, disable=None,
                               noise_sampler=None, ge_gamma=2.0):
    """Gradient estimation (Permenter & Yuan): Euler plus (gamma - 1) times the change in slope."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    old_d = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        d = to_d(x, sigmas[i], denoised)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            x = x + d * dt
            if i >= 1:
                x = x + (ge_gamma - 1) * (d - old_d) * dt
        old_d = d
    return x
