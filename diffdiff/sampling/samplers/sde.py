"""SDE samplers in half-log-SNR time: dpmpp_sde, dpmpp_2m_sde(_heun), dpmpp_3m_sde (Brownian-tree noise),
seeds_2 and exp_heun_2_x0(_sde) (independent noise), and their "_gpu" aliases (tree on x's device).

lambda = log(alpha / sigma) depends on the model's sampling (flow: alpha = 1 - sigma; else alpha = 1),
read from `model.model_sampling` when the denoiser exposes it. Numerics follow ComfyUI's
comfy/k_diffusion/sampling.py; code follows k-diffusion (MIT, Katherine Crowson), written anew.
"""

from __future__ import annotations

import torch

from .common import (
    ei_h_phi_1,
    ei_h_phi_2,
    get_ancestral_step,
    half_log_snr_to_sigma,
    model_sampling_of,
    offset_first_sigma_for_snr,
    report,
    sigma_to_half_log_snr,
)
from .noise import brownian_noise_source, independent_noise_source


@torch.no_grad()
def sample_dpmpp_sde(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                     eta=1.0, s_noise=1.0, r=1 / 2, cpu_tree=True):
    """DPM-Solver++ (stochastic), two model calls per step: an intermediate point at lambda + r h."""
    if len(sigmas) <= 1:
        return x
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = brownian_noise_source(x, sigmas, extra_args, noise_sampler, cpu=cpu_tree)
    s_in = x.new_ones([x.shape[0]])
    ms = model_sampling_of(model)
    sigmas = offset_first_sigma_for_snr(sigmas, ms)
    fac = 1 / (2 * r)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lambda_s = sigma_to_half_log_snr(sigmas[i], ms)
        lambda_t = sigma_to_half_log_snr(sigmas[i + 1], ms)
        h = lambda_t - lambda_s
        lambda_s_1 = lambda_s + r * h
        sigma_s_1 = half_log_snr_to_sigma(lambda_s_1, ms)
        alpha_s = sigmas[i] * lambda_s.exp()
        alpha_s_1 = sigma_s_1 * lambda_s_1.exp()
        alpha_t = sigmas[i + 1] * lambda_t.exp()

        # Step 1: to the intermediate level
        sd, su = get_ancestral_step(lambda_s.neg().exp(), lambda_s_1.neg().exp(), eta)
        h_ = sd.log().neg() - lambda_s
        x_2 = (alpha_s_1 / alpha_s) * (-h_).exp() * x - alpha_s_1 * (-h_).expm1() * denoised
        if eta > 0 and s_noise > 0:
            x_2 = x_2 + alpha_s_1 * noise_sampler(sigmas[i], sigma_s_1) * s_noise * su
        denoised_2 = model(x_2, sigma_s_1 * s_in, **extra_args)

        # Step 2: the full step with the blended x0 estimate
        sd, su = get_ancestral_step(lambda_s.neg().exp(), lambda_t.neg().exp(), eta)
        h_ = sd.log().neg() - lambda_s
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (alpha_t / alpha_s) * (-h_).exp() * x - alpha_t * (-h_).expm1() * denoised_d
        if eta > 0 and s_noise > 0:
            x = x + alpha_t * noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * su
    return x


def _sde_base_step(x, denoised, sigma, sigma_next, h, eta, alpha_t):
    """The first-order part of the DPM-Solver++ SDE step from lambda_s to lambda_s + h."""
    h_eta = h * (eta + 1)
    return sigma_next / sigma * (-h * eta).exp() * x + alpha_t * (-h_eta).expm1().neg() * denoised


def _sde_noise(noise_sampler, sigma, sigma_next, h, eta, s_noise):
    """The injected noise of the DPM-Solver++ SDE step: sigma_next * sqrt(1 - e^{-2 h eta})."""
    return noise_sampler(sigma, sigma_next) * sigma_next * (-2 * h * eta).expm1().neg().sqrt() * s_noise


@torch.no_grad()
def sample_dpmpp_2m_sde(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                        eta=1.0, s_noise=1.0, solver_type="midpoint", cpu_tree=True):
    """DPM-Solver++(2M) SDE: second-order multistep correction, "midpoint" or "heun"."""
    if len(sigmas) <= 1:
        return x
    if solver_type not in ("heun", "midpoint"):
        raise ValueError(f"unknown solver_type {solver_type!r}; choose 'heun' or 'midpoint'")
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = brownian_noise_source(x, sigmas, extra_args, noise_sampler, cpu=cpu_tree)
    s_in = x.new_ones([x.shape[0]])
    ms = model_sampling_of(model)
    sigmas = offset_first_sigma_for_snr(sigmas, ms)
    old_denoised = None
    h = h_last = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lambda_s = sigma_to_half_log_snr(sigmas[i], ms)
            lambda_t = sigma_to_half_log_snr(sigmas[i + 1], ms)
            h = lambda_t - lambda_s
            h_eta = h * (eta + 1)
            alpha_t = sigmas[i + 1] * lambda_t.exp()
            x = _sde_base_step(x, denoised, sigmas[i], sigmas[i + 1], h, eta, alpha_t)
            if old_denoised is not None:
                r = h_last / h
                weight = (-h_eta).expm1().neg()
                if solver_type == "heun":
                    x = x + alpha_t * (weight / (-h_eta) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * alpha_t * weight * (1 / r) * (denoised - old_denoised)
            if eta > 0 and s_noise > 0:
                x = x + _sde_noise(noise_sampler, sigmas[i], sigmas[i + 1], h, eta, s_noise)
        old_denoised = denoised
        h_last = h
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde_heun(model, x, sigmas, extra_args=None, callback=None, disable=None,
                             noise_sampler=None, eta=1.0, s_noise=1.0, solver_type="heun", cpu_tree=True):
    """dpmpp_2m_sde with the "heun" correction by default."""
    return sample_dpmpp_2m_sde(model, x, sigmas, extra_args, callback, disable, noise_sampler, eta=eta,
                               s_noise=s_noise, solver_type=solver_type, cpu_tree=cpu_tree)


@torch.no_grad()
def sample_dpmpp_3m_sde(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                        eta=1.0, s_noise=1.0, cpu_tree=True):
    """DPM-Solver++(3M) SDE: third-order multistep (second order on its second step)."""
    if len(sigmas) <= 1:
        return x
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = brownian_noise_source(x, sigmas, extra_args, noise_sampler, cpu=cpu_tree)
    s_in = x.new_ones([x.shape[0]])
    ms = model_sampling_of(model)
    sigmas = offset_first_sigma_for_snr(sigmas, ms)
    denoised_1 = denoised_2 = None
    h = h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lambda_s = sigma_to_half_log_snr(sigmas[i], ms)
            lambda_t = sigma_to_half_log_snr(sigmas[i + 1], ms)
            h = lambda_t - lambda_s
            h_eta = h * (eta + 1)
            alpha_t = sigmas[i + 1] * lambda_t.exp()
            x = _sde_base_step(x, denoised, sigmas[i], sigmas[i + 1], h, eta, alpha_t)
            phi_2 = h_eta.neg().expm1() / h_eta + 1
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_3 = phi_2 / h_eta - 0.5
                x = x + (alpha_t * phi_2) * d1 - (alpha_t * phi_3) * d2
            elif h_1 is not None:
                x = x + (alpha_t * phi_2) * ((denoised - denoised_1) / (h_1 / h))
            if eta > 0 and s_noise > 0:
                x = x + _sde_noise(noise_sampler, sigmas[i], sigmas[i + 1], h, eta, s_noise)
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


def carry_seeds_noise(previous, noise_sampler, sigma_a, sigma_b, segment):
    """Carry SEEDS' correlated noise over one sub-interval: decay the old part by e^{segment} and add fresh
    noise of std sqrt(1 - e^{2 segment}) (segment <= 0), so the sum stays unit-variance."""
    noise = previous * segment.exp()
    return noise + segment.mul(2).expm1().neg().sqrt() * noise_sampler(sigma_a, sigma_b)


@torch.no_grad()
def sample_seeds_2(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                   eta=1.0, s_noise=1.0, r=0.5, solver_type="phi_1"):
    """SEEDS-2 (Gonzalez et al., arXiv 2305.14267): stochastic exponential two-stage solver."""
    if solver_type not in ("phi_1", "phi_2"):
        raise ValueError(f"unknown solver_type {solver_type!r}; choose 'phi_1' or 'phi_2'")
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    ms = model_sampling_of(model)
    inject_noise = eta > 0 and s_noise > 0
    sigmas = offset_first_sigma_for_snr(sigmas, ms)
    fac = 1 / (2 * r)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lambda_s = sigma_to_half_log_snr(sigmas[i], ms)
        lambda_t = sigma_to_half_log_snr(sigmas[i + 1], ms)
        h = lambda_t - lambda_s
        h_eta = h * (eta + 1)
        lambda_s_1 = torch.lerp(lambda_s, lambda_t, r)
        sigma_s_1 = half_log_snr_to_sigma(lambda_s_1, ms)
        alpha_s_1 = sigma_s_1 * lambda_s_1.exp()
        alpha_t = sigmas[i + 1] * lambda_t.exp()

        x_2 = sigma_s_1 / sigmas[i] * (-r * h * eta).exp() * x - alpha_s_1 * ei_h_phi_1(-r * h_eta) * denoised
        if inject_noise:
            sde_noise = (-2 * r * h * eta).expm1().neg().sqrt() * noise_sampler(sigmas[i], sigma_s_1)
            x_2 = x_2 + sde_noise * sigma_s_1 * s_noise
        denoised_2 = model(x_2, sigma_s_1 * s_in, **extra_args)

        decay = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x
        if solver_type == "phi_1":
            x = decay - alpha_t * ei_h_phi_1(-h_eta) * torch.lerp(denoised, denoised_2, fac)
        else:
            b2 = ei_h_phi_2(-h_eta) / r
            b1 = ei_h_phi_1(-h_eta) - b2
            x = decay - alpha_t * (b1 * denoised + b2 * denoised_2)
        if inject_noise:
            sde_noise = carry_seeds_noise(sde_noise, noise_sampler, sigma_s_1, sigmas[i + 1],
                                          (r - 1) * h * eta)
            x = x + sde_noise * sigmas[i + 1] * s_noise
    return x


@torch.no_grad()
def sample_exp_heun_2_x0(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                         solver_type="phi_2"):
    """Deterministic exponential Heun (second order, data prediction, lambda time)."""
    return sample_seeds_2(model, x, sigmas, extra_args, callback, disable, None, eta=0.0, s_noise=0.0,
                          r=1.0, solver_type=solver_type)


@torch.no_grad()
def sample_exp_heun_2_x0_sde(model, x, sigmas, extra_args=None, callback=None, disable=None,
                             noise_sampler=None, eta=1.0, s_noise=1.0, solver_type="phi_2"):
    """Stochastic exponential Heun (second order, data prediction, lambda time)."""
    return sample_seeds_2(model, x, sigmas, extra_args, callback, disable, noise_sampler, eta=eta,
                          s_noise=s_noise, r=1.0, solver_type=solver_type)


def _on_device_tree(sampler):
    """The "_gpu" alias of an SDE sampler: its Brownian tree lives on x's device, not the CPU."""

    def sample_with_device_tree(model, x, sigmas, extra_args=None, callback=None, disable=None,
                                noise_sampler=None, **options):
        return sampler(model, x, sigmas, extra_args, callback, disable, noise_sampler, cpu_tree=False,
                       **options)

    sample_with_device_tree.__wrapped__ = sampler  # so its options can be read from `sampler`
    sample_with_device_tree.__name__ = sampler.__name__ + "_gpu"
    sample_with_device_tree.__doc__ = f"{sampler.__name__} with the Brownian tree on x's device."
    return sample_with_device_tree


sample_dpmpp_sde_gpu = _on_device_tree(sample_dpmpp_sde)
sample_dpmpp_2m_sde_gpu = _on_device_tree(sample_dpmpp_2m_sde)
sample_dpmpp_2m_sde_heun_gpu = _on_device_tree(sample_dpmpp_2m_sde_heun)
sample_dpmpp_3m_sde_gpu = _on_device_tree(sample_dpmpp_3m_sde)
