"""The CFG++ samplers (Chung et al., arXiv 2406.08070): steps that renoise with the *unconditional* x0.

euler_cfg_pp, euler_ancestral_cfg_pp, dpmpp_2m_cfg_pp, dpmpp_2s_ancestral_cfg_pp, res_multistep_cfg_pp,
res_multistep_ancestral_cfg_pp, gradient_estimation_cfg_pp.

How the unconditional x0 reaches a sampler: every model call here passes the keyword ``with_uncond=True``
(`denoise_with_uncond`). A classifier-free-guidance link that knows it (`CFGDenoiser`) then returns the
guided x0 and the unconditional x0 stacked on the channel axis, (B, 2C, h, w), running the uncond branch
even at cfg = 1 (ComfyUI's `disable_cfg1_optimization`). The links between the sampler and CFG treat that
output channel-wise: the differential gate holds both halves at the clean latent, the tiler blends both
with the same weights. A denoiser that does not know the keyword (no CFG: the analytic test denoisers, a
model without an unconditional prompt) returns x0 alone, C channels, and then the unconditional x0 is
taken to be x0 itself, so these samplers still run (and reduce to their plain forms where CFG++ does).

Numerics follow ComfyUI's comfy/k_diffusion/sampling.py (its post-CFG hook there captures the same
unconditional x0); the code is written anew.
"""

from __future__ import annotations

import torch

from .ancestral import dpmpp_2s_rf_step, dpmpp_2s_step
from .common import (
    get_ancestral_step,
    is_flow,
    model_sampling_of,
    report,
    res_multistep_weights,
    rf_ancestral_step,
    sigma_to_half_log_snr,
    to_d,
)
from .noise import independent_noise_source


def denoise_with_uncond(model, x, sigma, extra_args):
    """(x0, uncond_x0) at one call: the model is asked for both with ``with_uncond=True``; a (B, 2C, ...)
    answer is split in two, a (B, C, ...) one means the model has no unconditional branch (uncond = x0)."""
    out = model(x, sigma, **extra_args, with_uncond=True)
    channels = x.shape[1]
    if out.shape[1] == 2 * channels:
        return out[:, :channels], out[:, channels:]
    return out, out


def _uncond_at(model, s_in, extra_args):
    """The unconditional x0 as a function of (x, sigma): the midpoint call of the (2S) steps."""
    return lambda x, sigma: denoise_with_uncond(model, x, sigma * s_in, extra_args)[1]


@torch.no_grad()
def sample_euler_ancestral_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None,
                                  noise_sampler=None, eta=1.0, s_noise=1.0):
    """Euler ancestral with CFG++: jump to the guided x0, then back out along the unconditional slope.

    In alpha-scaled form (alpha = 1, or 1 - sigma for flow): the ancestral split is taken between
    sigma / alpha levels, and x_next = alpha_t x0 + sigma_down d_uncond (+ alpha_t sigma_up noise).
    """
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    ms = model_sampling_of(model)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised, uncond = denoise_with_uncond(model, x, sigmas[i] * s_in, extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        alpha_s = sigmas[i] * sigma_to_half_log_snr(sigmas[i], ms).exp()
        alpha_t = sigmas[i + 1] * sigma_to_half_log_snr(sigmas[i + 1], ms).exp()
        d = to_d(x, sigmas[i], alpha_s * uncond)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i] / alpha_s, sigmas[i + 1] / alpha_t, eta=eta)
        x = alpha_t * denoised + alpha_t * sigma_down * d
        if eta > 0 and s_noise > 0:
            x = x + alpha_t * noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_euler_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    """Euler with CFG++: euler_ancestral_cfg_pp without noise (eta = 0)."""
    return sample_euler_ancestral_cfg_pp(model, x, sigmas, extra_args, callback, disable, None,
                                         eta=0.0, s_noise=0.0)


@torch.no_grad()
def sample_dpmpp_2m_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None,
                           noise_sampler=None):
    """DPM-Solver++(2M) with CFG++: the decay term uses the unconditional x0, the step lands on the guided
    x0; the second-order correction is (x0 - previous uncond x0) / (2 r). t = -log(sigma) as ComfyUI."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    old_uncond = None
    for i in range(len(sigmas) - 1):
        denoised, uncond = denoise_with_uncond(model, x, sigmas[i] * s_in, extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        t, t_next = sigmas[i].log().neg(), sigmas[i + 1].log().neg()
        h = t_next - t
        mix = -torch.exp(-h) * uncond
        if old_uncond is not None and sigmas[i + 1] != 0:
            r = (t - sigmas[i - 1].log().neg()) / h
            mix = mix - torch.expm1(-h) * (1 / (2 * r)) * (denoised - old_uncond)
        x = denoised + mix + torch.exp(-h) * x
        old_uncond = uncond
    return x


@torch.no_grad()
def sample_dpmpp_2s_ancestral_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None,
                                     noise_sampler=None, eta=1.0, s_noise=1.0):
    """DPM-Solver++(2S) ancestral with CFG++: both stages step with the unconditional x0 (the second
    call's guided x0 is unused), then the first call's guidance x0 - uncond is added back (times
    alpha = 1 - sigma_next for flow models, which take the rectified-flow variant)."""
    if is_flow(model_sampling_of(model)):
        return _dpmpp_2s_ancestral_cfg_pp_rf(model, x, sigmas, extra_args, noise_sampler, callback, eta,
                                             s_noise)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised, uncond = denoise_with_uncond(model, x, sigmas[i] * s_in, extra_args)
        guidance = denoised - uncond
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], uncond) * (sigma_down - sigmas[i])
        else:
            x = dpmpp_2s_step(x, sigmas[i], sigma_down, uncond, _uncond_at(model, s_in, extra_args))
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
        x = x + guidance
    return x


def _dpmpp_2s_ancestral_cfg_pp_rf(model, x, sigmas, extra_args, noise_sampler, callback, eta, s_noise):
    """The rectified-flow form: midpoint in lambda = log((1 - sigma) / sigma), RF ancestral renoise."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised, uncond = denoise_with_uncond(model, x, sigmas[i] * s_in, extra_args)
        guidance = denoised - uncond
        sigma_down, alpha_ratio, renoise = rf_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], uncond) * (sigma_down - sigmas[i])
        else:
            x = dpmpp_2s_rf_step(x, sigmas[i], sigma_down, uncond, _uncond_at(model, s_in, extra_args))
        if sigmas[i + 1] > 0 and eta > 0:
            x = alpha_ratio * x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * renoise
        x = x + (1 - sigmas[i + 1]) * guidance
    return x


def _res_multistep_cfg_pp(model, x, sigmas, extra_args, callback, noise_sampler, s_noise, eta):
    """RES multistep (arXiv 2308.02157) with CFG++: the guidance x0 - uncond is added to x before the
    exponential step, which then uses the unconditional x0 (and the previous one) as its history."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    old_sigma_down = old_uncond = None
    for i in range(len(sigmas) - 1):
        denoised, uncond = denoise_with_uncond(model, x, sigmas[i] * s_in, extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigma_down == 0 or old_uncond is None:
            x = denoised + to_d(x, sigmas[i], uncond) * sigma_down
        else:
            t, t_next = sigmas[i].log().neg(), torch.as_tensor(sigma_down).log().neg()
            t_old = torch.as_tensor(old_sigma_down).log().neg()
            h = t_next - t
            b1, b2 = res_multistep_weights(h, (sigmas[i - 1].log().neg() - t_old) / h)
            x = x + (denoised - uncond)
            x = h.neg().exp() * x + h * (b1 * uncond + b2 * old_uncond)
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
        old_uncond, old_sigma_down = uncond, sigma_down
    return x


@torch.no_grad()
def sample_res_multistep_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None,
                                noise_sampler=None, s_noise=1.0):
    """res_multistep with CFG++, deterministic (eta = 0; s_noise then has no effect, as in ComfyUI)."""
    return _res_multistep_cfg_pp(model, x, sigmas, extra_args, callback, noise_sampler, s_noise, 0.0)


@torch.no_grad()
def sample_res_multistep_ancestral_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None,
                                          noise_sampler=None, eta=1.0, s_noise=1.0):
    """res_multistep_cfg_pp with ancestral noise (eta = 1 by default)."""
    return _res_multistep_cfg_pp(model, x, sigmas, extra_args, callback, noise_sampler, s_noise, eta)


@torch.no_grad()
def sample_gradient_estimation_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None,
                                      noise_sampler=None, ge_gamma=2.0):
    """Gradient estimation with CFG++: x_next = x0 + sigma_next d_uncond, plus (gamma - 1) times the
    change of the unconditional slope d_uncond = (x - uncond) / sigma."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    old_d = None
    for i in range(len(sigmas) - 1):
        denoised, uncond = denoise_with_uncond(model, x, sigmas[i] * s_in, extra_args)
        d = to_d(x, sigmas[i], uncond)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            x = denoised + d * sigmas[i + 1]
            if i >= 1:
                x = x + (ge_gamma - 1) * (d - old_d) * dt
        old_d = d
    return x
