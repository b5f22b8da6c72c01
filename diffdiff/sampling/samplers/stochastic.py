"""Stochastic exponential samplers in half-log-SNR time: er_sde, seeds_3, sa_solver and sa_solver_pece.

All draw independent noise (`default_noise_sampler` seeded from extra_args["seed"]), work in
lambda = log(alpha / sigma) of the model's parametrisation (flow: alpha = 1 - sigma; otherwise 1), and
move a flow run's first sigma of 1 just below 1. Numerics follow ComfyUI's comfy/k_diffusion/sampling.py;
written anew.
"""

from __future__ import annotations

import torch

from .common import (
    _percent_to_sigma,
    ei_h_phi_1,
    ei_h_phi_2,
    half_log_snr_to_sigma,
    model_sampling_of,
    offset_first_sigma_for_snr,
    report,
    sigma_to_half_log_snr,
)
from .noise import independent_noise_source
from .sa_solver import adams_weights, tau_window
from .sde import carry_seeds_noise

ER_SDE_POINTS = 200  # the Riemann sum ComfyUI uses for ER-SDE's stage-2/3 integrals


def er_sde_noise_scaler(value: torch.Tensor) -> torch.Tensor:
    """ComfyUI's default ER-SDE noise scaler f(l) = l (e^{l^0.3} + 10)."""
    return value * ((value**0.3).exp() + 10.0)


@torch.no_grad()
def sample_er_sde(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                  s_noise=1.0, noise_scaler=None, max_stage=3):
    """Extended reverse-time SDE solver (Cui et al., arXiv 2309.06169), VP form, up to `max_stage` (1..3).

    In l = sigma / alpha: x_t = (alpha_t / alpha_s) r x_s + alpha_t (1 - r) x0 with r = f(l_t) / f(l_s),
    plus stage-2/3 corrections from divided differences of x0 (their integrals as 200-point Riemann sums,
    in float32 as ComfyUI), plus noise of std alpha_t sqrt(l_t^2 - l_s^2 r^2).
    """
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    scaler = er_sde_noise_scaler if noise_scaler is None else noise_scaler
    s_in = x.new_ones([x.shape[0]])
    points = torch.arange(0, float(ER_SDE_POINTS), dtype=torch.float32, device=x.device)
    ms = model_sampling_of(model)
    sigmas = offset_first_sigma_for_snr(sigmas, ms)
    levels = sigma_to_half_log_snr(sigmas, ms).neg().exp()  # l = sigma / alpha
    old_denoised = old_denoised_d = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        stage = min(max_stage, i + 1)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            l_s, l_t = levels[i], levels[i + 1]
            alpha_s, alpha_t = sigmas[i] / l_s, sigmas[i + 1] / l_t
            r = scaler(l_t) / scaler(l_s)
            x = alpha_t / alpha_s * r * x + alpha_t * (1 - r) * denoised
            if stage >= 2:
                dt = l_t - l_s
                step = -dt / ER_SDE_POINTS
                nodes = l_t + points * step
                scaled = scaler(nodes)
                integral_1 = torch.sum(1 / scaled) * step
                denoised_d = (denoised - old_denoised) / (l_s - levels[i - 1])
                x = x + alpha_t * (dt + integral_1 * scaler(l_t)) * denoised_d
                if stage >= 3:
                    integral_2 = torch.sum((nodes - l_s) / scaled) * step
                    denoised_u = (denoised_d - old_denoised_d) / ((l_s - levels[i - 2]) / 2)
                    x = x + alpha_t * ((dt**2) / 2 + integral_2 * scaler(l_t)) * denoised_u
                old_denoised_d = denoised_d
            if s_noise > 0:
                spread = (l_t**2 - l_s**2 * r**2).sqrt().nan_to_num(nan=0.0)
                x = x + alpha_t * noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * spread
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_seeds_3(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                   eta=1.0, s_noise=1.0, r_1=1.0 / 3, r_2=2.0 / 3):
    """SEEDS-3 (Gonzalez et al., arXiv 2305.14267): three-stage stochastic exponential solver, stages at
    lambda fractions r_1 and r_2 of each step, data prediction."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    ms = model_sampling_of(model)
    inject_noise = eta > 0 and s_noise > 0
    sigmas = offset_first_sigma_for_snr(sigmas, ms)
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
        lambda_1, lambda_2 = torch.lerp(lambda_s, lambda_t, r_1), torch.lerp(lambda_s, lambda_t, r_2)
        sigma_1, sigma_2 = half_log_snr_to_sigma(lambda_1, ms), half_log_snr_to_sigma(lambda_2, ms)
        alpha_1, alpha_2 = sigma_1 * lambda_1.exp(), sigma_2 * lambda_2.exp()
        alpha_t = sigmas[i + 1] * lambda_t.exp()

        x_2 = sigma_1 / sigmas[i] * (-r_1 * h * eta).exp() * x - alpha_1 * ei_h_phi_1(-r_1 * h_eta) * denoised
        if inject_noise:
            noise = (-2 * r_1 * h * eta).expm1().neg().sqrt() * noise_sampler(sigmas[i], sigma_1)
            x_2 = x_2 + noise * sigma_1 * s_noise
        denoised_2 = model(x_2, sigma_1 * s_in, **extra_args)

        a_2 = r_2 / r_1 * ei_h_phi_2(-r_2 * h_eta)
        a_1 = ei_h_phi_1(-r_2 * h_eta) - a_2
        x_3 = sigma_2 / sigmas[i] * (-r_2 * h * eta).exp() * x - alpha_2 * (a_1 * denoised + a_2 * denoised_2)
        if inject_noise:
            noise = carry_seeds_noise(noise, noise_sampler, sigma_1, sigma_2, (r_1 - r_2) * h * eta)
            x_3 = x_3 + noise * sigma_2 * s_noise
        denoised_3 = model(x_3, sigma_2 * s_in, **extra_args)

        b_3 = ei_h_phi_2(-h_eta) / r_2
        b_1 = ei_h_phi_1(-h_eta) - b_3
        x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x - alpha_t * (b_1 * denoised + b_3 * denoised_3)
        if inject_noise:
            noise = carry_seeds_noise(noise, noise_sampler, sigma_2, sigmas[i + 1], (r_2 - 1) * h * eta)
            x = x + noise * sigmas[i + 1] * s_noise
    return x


def default_tau(model_sampling):
    """ComfyUI's default SA-Solver stochasticity: tau = 1 for sigma between the 20% and 80% points of the
    model's schedule, else 0. Without a model sampling (a bare test denoiser) the run is the ODE, tau = 0."""
    if model_sampling is None:
        return tau_window(0.0, 0.0, eta=0.0)
    return tau_window(_percent_to_sigma(model_sampling, 0.2), _percent_to_sigma(model_sampling, 0.8), eta=1.0)


def _combine(estimates, weights, like):
    """sum_j weights[j] * estimates[j] over the listed x0 estimates (stacked on a new axis 1)."""
    stacked = torch.stack(estimates, dim=1)
    return torch.tensordot(stacked, weights.to(like.dtype), dims=([1], [0]))


@torch.no_grad()
def sample_sa_solver(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                     tau_func=None, s_noise=1.0, predictor_order=3, corrector_order=4, use_pece=False,
                     simple_order_2=False):
    """SA-Solver: stochastic Adams predictor (up to `predictor_order` past x0) and corrector (up to
    `corrector_order`, including the new x0), one model call per step; with `use_pece` the corrected state
    is evaluated again (PECE, 2N - 1 calls). `tau_func(sigma)` sets the stochasticity (default: see
    `default_tau`). Orders drop near the end of a run that ends at sigma = 0."""
    if len(sigmas) <= 1:
        return x
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    ms = model_sampling_of(model)
    sigmas = offset_first_sigma_for_snr(sigmas, ms)
    lambdas = sigma_to_half_log_snr(sigmas, ms)
    tau_func = default_tau(ms) if tau_func is None else tau_func
    history_size = max(predictor_order, corrector_order)
    x_pred = x
    h, tau_t, noise = 0.0, 0.0, 0.0
    history = []
    taper = sigmas[-1].item() == 0
    for i in range(len(sigmas) - 1):
        denoised = model(x_pred, sigmas[i] * s_in, **extra_args)
        report(callback, x_pred, i, sigmas[i], sigmas[i], denoised)
        history = (history + [denoised])[-history_size:]
        p_order = min(predictor_order, len(history))
        c_order = 0 if i == 0 or (sigmas[i + 1] == 0 and not use_pece) else min(corrector_order, len(history))
        if taper:
            p_order = min(p_order, len(sigmas) - 2 - i)
            c_order = min(c_order, len(sigmas) - 1 - i)

        if c_order == 0:
            x = x_pred
        else:
            weights = adams_weights(sigmas[i], lambdas[i - c_order + 1:i + 1], lambdas[i - 1], lambdas[i],
                                    tau_t, simple_order_2, corrector=True)
            x = sigmas[i] / sigmas[i - 1] * (-(tau_t**2) * h).exp() * x + _combine(history[-c_order:],
                                                                                 weights, x)
            if tau_t > 0 and s_noise > 0:
                x = x + noise
            if use_pece:
                denoised = model(x, sigmas[i] * s_in, **extra_args)
                history[-1] = denoised

        if sigmas[i + 1] == 0:
            x_pred = denoised
            continue
        tau_t = tau_func(sigmas[i + 1])
        weights = adams_weights(sigmas[i + 1], lambdas[i - p_order + 1:i + 1], lambdas[i], lambdas[i + 1],
                                tau_t, simple_order_2, corrector=False)
        h = lambdas[i + 1] - lambdas[i]
        x_pred = sigmas[i + 1] / sigmas[i] * (-(tau_t**2) * h).exp() * x + _combine(history[-p_order:],
                                                                                 weights, x)
        if tau_t > 0 and s_noise > 0:
            spread = (-2 * tau_t**2 * h).expm1().neg().sqrt()
            noise = noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * spread * s_noise
            x_pred = x_pred + noise
    return x_pred


@torch.no_grad()
def sample_sa_solver_pece(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                          tau_func=None, s_noise=1.0, predictor_order=3, corrector_order=4,
                          simple_order_2=False):
    """SA-Solver in PECE mode (predict, evaluate, correct, evaluate)."""
    return sample_sa_solver(model, x, sigmas, extra_args, callback, disable, noise_sampler, tau_func=tau_func,
                            s_noise=s_noise, predictor_order=predictor_order,
                            corrector_order=corrector_order, use_pece=True, simple_order_2=simple_order_2)
