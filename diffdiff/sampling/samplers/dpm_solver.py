"""DPM-Solver (Lu et al., arXiv 2206.00927) in noise-prediction form: dpm_fast (fixed steps of orders 3, 2, 1)
and dpm_adaptive (embedded 1/2 or 2/3 pairs with a PID step-size controller).

Time is t = -log(sigma); eps = (x - x0) / sigma. Like ComfyUI's KSampler, the registered samplers take the
run's sigmas but integrate from sigmas[0] down to the last *positive* sigma (sigmas[-2] when the schedule
ends in 0), so they stop with that sigma's noise left in x; dpm_fast spends len(sigmas) - 1 model calls.
Numerics follow ComfyUI's comfy/k_diffusion/sampling.py (k-diffusion, MIT, Katherine Crowson); written anew.
"""

from __future__ import annotations

import math

import torch

from .common import get_ancestral_step, report
from .noise import independent_noise_source


def _sigma(t):
    return t.neg().exp()


def _t(sigma):
    return sigma.log().neg()


class _Eps:
    """eps(x, t) of the model, cached by stage name within one step."""

    def __init__(self, model, extra_args):
        self.model = model
        self.extra_args = extra_args
        self.calls = 0

    def __call__(self, cache: dict, key: str, x, t):
        if key not in cache:
            sigma = _sigma(t)
            cache[key] = (x - self.model(x, sigma * x.new_ones([x.shape[0]]), **self.extra_args)) / sigma
            self.calls += 1
        return cache[key]


def dpm_solver_1_step(eps, x, t, t_next, cache):
    """First order (DDIM): x - sigma_next (e^h - 1) eps."""
    h = t_next - t
    return x - _sigma(t_next) * h.expm1() * eps(cache, "eps", x, t)


def dpm_solver_2_step(eps, x, t, t_next, cache, r1=1 / 2):
    """Second order, intermediate point at t + r1 h."""
    h = t_next - t
    e = eps(cache, "eps", x, t)
    s1 = t + r1 * h
    u1 = x - _sigma(s1) * (r1 * h).expm1() * e
    e_r1 = eps(cache, "eps_r1", u1, s1)
    return x - _sigma(t_next) * h.expm1() * e - _sigma(t_next) / (2 * r1) * h.expm1() * (e_r1 - e)


def dpm_solver_3_step(eps, x, t, t_next, cache, r1=1 / 3, r2=2 / 3):
    """Third order, intermediate points at t + r1 h and t + r2 h."""
    h = t_next - t
    e = eps(cache, "eps", x, t)
    s1, s2 = t + r1 * h, t + r2 * h
    u1 = x - _sigma(s1) * (r1 * h).expm1() * e
    e_r1 = eps(cache, "eps_r1", u1, s1)
    u2 = (x - _sigma(s2) * (r2 * h).expm1() * e
          - _sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (e_r1 - e))
    e_r2 = eps(cache, "eps_r2", u2, s2)
    return x - _sigma(t_next) * h.expm1() * e - _sigma(t_next) / r2 * (h.expm1() / h - 1) * (e_r2 - e)


def fast_orders(nfe: int) -> list[int]:
    """The orders of dpm_fast's steps for `nfe` model calls: threes, then 2 and 1 or the remainder."""
    steps = nfe // 3 + 1
    if nfe % 3 == 0:
        return [3] * (steps - 2) + [2, 1]
    return [3] * (steps - 1) + [nfe % 3]


def _ancestral_target(t, t_next, t_end, eta):
    """(t to step to, noise std to add after) for an ancestral step t -> t_next (eta = 0: (t_next, 0))."""
    if not eta:
        return t_next, 0.0
    sigma_down, _ = get_ancestral_step(_sigma(t), _sigma(t_next), eta)
    target = torch.minimum(t_end, _t(sigma_down))
    return target, (_sigma(t_next) ** 2 - _sigma(target) ** 2) ** 0.5


def dpm_solver_fast(model, x, t_start, t_end, nfe, extra_args, callback, noise_sampler, eta=0.0, s_noise=1.0):
    """DPM-Solver-fast from t_start to t_end: equal steps in t, orders from `fast_orders(nfe)`."""
    if not t_end > t_start and eta:
        raise ValueError("eta must be 0 for reverse sampling")
    eps = _Eps(model, extra_args)
    orders = fast_orders(nfe)
    ts = torch.linspace(t_start, t_end, nfe // 3 + 2, dtype=t_start.dtype, device=x.device)
    steppers = {1: dpm_solver_1_step, 2: dpm_solver_2_step, 3: dpm_solver_3_step}
    for i, order in enumerate(orders):
        cache: dict = {}
        t, t_next = ts[i], ts[i + 1]
        target, sigma_up = _ancestral_target(t, t_next, t_end, eta)
        denoised = x - _sigma(t) * eps(cache, "eps", x, t)
        report(callback, x, i, _sigma(t), _sigma(t), denoised)
        x = steppers[order](eps, x, t, target, cache)
        if sigma_up:
            x = x + sigma_up * s_noise * noise_sampler(_sigma(t), _sigma(t_next))
    return x


class PIDStepSizeController:
    """PID control of the step size h from the scaled error (k-diffusion's controller): the factor
    prod(1/err_k)^b_k is softened by 1 + atan(f - 1); a factor below `accept_safety` rejects the step."""

    def __init__(self, h, pcoeff, icoeff, dcoeff, order=1, accept_safety=0.81, eps=1e-8):
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety = accept_safety
        self.eps = eps
        self.errs: list[float] = []

    def propose_step(self, error) -> bool:
        """Update h from `error`; True when the step just taken is accepted."""
        inv_error = 1 / (float(error) + self.eps)
        if not self.errs:
            self.errs = [inv_error, inv_error, inv_error]
        self.errs[0] = inv_error
        factor = self.errs[0] ** self.b1 * self.errs[1] ** self.b2 * self.errs[2] ** self.b3
        factor = 1 + math.atan(factor - 1)
        accept = factor >= self.accept_safety
        if accept:
            self.errs[2] = self.errs[1]
            self.errs[1] = self.errs[0]
        self.h *= factor
        return accept


def dpm_solver_adaptive(model, x, t_start, t_end, extra_args, callback, noise_sampler, order=3, rtol=0.05,
                        atol=0.0078, h_init=0.05, pcoeff=0.0, icoeff=1.0, dcoeff=0.0, accept_safety=0.81,
                        eta=0.0, s_noise=1.0):
    """Adaptive DPM-Solver-12 (order 2) or -23 (order 3): a step is accepted when the controller's factor
    from error = ||(x_low - x_high) / max(atol, rtol max(|x_low|, |x_prev|))|| / sqrt(n) is large enough.
    Returns (x, info) with counts steps, nfe, n_accept, n_reject."""
    if order not in (2, 3):
        raise ValueError("order should be 2 or 3")
    forward = t_end > t_start
    if not forward and eta:
        raise ValueError("eta must be 0 for reverse sampling")
    eps = _Eps(model, extra_args)
    h_init = abs(h_init) * (1 if forward else -1)
    atol, rtol = torch.tensor(atol), torch.tensor(rtol)
    s = t_start
    x_prev = x
    pid = PIDStepSizeController(h_init, pcoeff, icoeff, dcoeff, 1.5 if eta else order, accept_safety)
    info = {"steps": 0, "nfe": 0, "n_accept": 0, "n_reject": 0}
    while (s < t_end - 1e-5) if forward else (s > t_end + 1e-5):
        cache: dict = {}
        t = torch.minimum(t_end, s + pid.h) if forward else torch.maximum(t_end, s + pid.h)
        target, sigma_up = _ancestral_target(s, t, t_end, eta)
        denoised = x - _sigma(s) * eps(cache, "eps", x, s)
        if order == 2:
            x_low = dpm_solver_1_step(eps, x, s, target, cache)
            x_high = dpm_solver_2_step(eps, x, s, target, cache)
        else:
            x_low = dpm_solver_2_step(eps, x, s, target, cache, r1=1 / 3)
            x_high = dpm_solver_3_step(eps, x, s, target, cache)
        delta = torch.maximum(atol, rtol * torch.maximum(x_low.abs(), x_prev.abs()))
        error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
        if pid.propose_step(error):
            x_prev = x_low
            x = x_high
            if sigma_up:
                x = x + sigma_up * s_noise * noise_sampler(_sigma(s), _sigma(t))
            s = t
            info["n_accept"] += 1
        else:
            info["n_reject"] += 1
        info["nfe"] += order
        info["steps"] += 1
        report(callback, x, info["steps"] - 1, _sigma(s), _sigma(s), denoised)
    return x, info


def _integration_range(sigmas):
    """(sigma_max, sigma_min) as ComfyUI's wrappers pick them: the first sigma and the last positive one."""
    sigma_min = sigmas[-1] if sigmas[-1] > 0 else sigmas[-2]
    if sigma_min <= 0 or sigmas[0] <= 0:
        raise ValueError("sigma_min and sigma_max must not be 0")
    return sigmas[0], sigma_min


@torch.no_grad()
def sample_dpm_fast(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    """DPM-Solver-fast over the run's sigma range with len(sigmas) - 1 model calls (no options, as
    ComfyUI's KSampler registers it: deterministic)."""
    if len(sigmas) <= 1:
        return x
    extra_args = {} if extra_args is None else extra_args
    sigma_max, sigma_min = _integration_range(sigmas)
    return dpm_solver_fast(model, x, _t(sigma_max), _t(sigma_min), len(sigmas) - 1, extra_args, callback,
                           noise_sampler)


@torch.no_grad()
def sample_dpm_adaptive(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                        order=3, rtol=0.05, atol=0.0078, h_init=0.05, pcoeff=0.0, icoeff=1.0, dcoeff=0.0,
                        accept_safety=0.81, eta=0.0, s_noise=1.0):
    """Adaptive DPM-Solver over the run's sigma range; the number of model calls follows the tolerances
    (the schedule's spacing is not used). eta > 0 adds ancestral noise (seeded from extra_args)."""
    if len(sigmas) <= 1:
        return x
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = independent_noise_source(x, extra_args, noise_sampler)
    sigma_max, sigma_min = _integration_range(sigmas)
    x, _ = dpm_solver_adaptive(model, x, _t(sigma_max), _t(sigma_min), extra_args, callback, noise_sampler,
                               order, rtol, atol, h_init, pcoeff, icoeff, dcoeff, accept_safety, eta, s_noise)
    return x
