"""Multistep samplers lms, ipndm, ipndm_v and deis, with ComfyUI's numerics (UniPC, also multistep: unipc.py).

Each reuses the denoiser outputs of earlier steps instead of spending extra model calls, so all of them
call the model once per step. `model(x, sigma * x.new_ones(B), **extra_args)` returns x0; the ODE is the
probability-flow ODE in the VE view, dx/dsigma = (x - x0) / sigma. None of these samplers treats flow
models differently (neither does ComfyUI): flow sigmas are used as VE sigmas.

lms follows k-diffusion (MIT, Katherine Crowson) closely; ipndm, ipndm_v and deis follow zju-pi/diff-sampler
(Apache-2.0) as ComfyUI ships them; DEIS's weights are computed in `deis.py`. Unknown options are refused
by the registry (`common.refusing_unknown_options`); the option values are checked here.
"""

from __future__ import annotations

from scipy import integrate

from .common import report, to_d, weighted_sum
from .deis import deis_tab_coefficients

# Fixed-step Adams-Bashforth weights of the iPNDM update (orders 1-4): integer numerators, newest
# derivative first, and their common denominator.
ADAMS_BASHFORTH = {
    1: ((1,), 1),
    2: ((3, -1), 2),
    3: ((23, -16, 5), 12),
    4: ((55, -59, 37, -9), 24),
}


def _check_order(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def linear_multistep_coeff(order: int, t, i: int, j: int) -> float:
    """Weight of the derivative j steps back in the order-`order` Adams-Bashforth step from t[i] to
    t[i+1]: the integral of the Lagrange basis polynomial of node t[i-j] over the step (scipy quad,
    relative tolerance 1e-4, as k-diffusion)."""
    if order - 1 > i:
        raise ValueError(f"order {order} too high for step {i}")

    def basis(tau):
        product = 1.0
        for k in range(order):
            if k != j:
                product *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return product

    return integrate.quad(basis, t[i], t[i + 1], epsrel=1e-4)[0]


def sample_lms(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, order=4):
    """Linear multistep (variable-step Adams-Bashforth in sigma), order 4; a step to sigma = 0 returns
    the denoised estimate. After k-diffusion's `sample_lms` (MIT)."""
    order = _check_order("lms order", order, 1, 32)
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    sigmas_cpu = sigmas.detach().cpu().numpy()
    derivatives = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        derivatives.append(to_d(x, sigmas[i], denoised))
        if len(derivatives) > order:
            derivatives.pop(0)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        current_order = min(i + 1, order)
        weights = [linear_multistep_coeff(current_order, sigmas_cpu, i, j) for j in range(current_order)]
        x = x + sum(w * d for w, d in zip(weights, reversed(derivatives)))
    return x


def _remember(history: list, derivative, max_order: int) -> None:
    """Keep the newest max_order - 1 derivatives (the history an order-max_order step needs)."""
    if max_order > 1:
        history.append(derivative)
        del history[: max(0, len(history) - (max_order - 1))]


def sample_ipndm(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                 max_order=4):
    """iPNDM: Adams-Bashforth in sigma with the fixed-step weights, warming up from Euler (order 1)
    to max_order (default 4); a step to sigma = 0 returns the denoised estimate."""
    max_order = _check_order("ipndm max_order", max_order, 1, 4)
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    history = []  # previous derivatives, oldest first
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * s_in, **extra_args)
        report(callback, x, i, sigma, sigma, denoised)
        d = to_d(x, sigma, denoised)
        order = min(max_order, i + 1)
        if sigma_next == 0:
            x_next = denoised
        else:
            numerators, denominator = ADAMS_BASHFORTH[order]
            newest_first = [d, *reversed(history)]
            slope = sum(n * dd for n, dd in zip(numerators, newest_first)) / denominator
            x_next = x + (sigma_next - sigma) * slope
        _remember(history, d, max_order)
        x = x_next
    return x


def ipndm_v_weights(order: int, steps: list) -> list:
    """Weights (newest derivative first) of iPNDM's variable-step update, multiplied by the step.

    `steps` = [h_n, h_n-1, h_n-2, h_n-3] (sigma increments, newest first; only the first `order` used).
    Order 2 is the exact variable-step Adams-Bashforth rule; orders 3 and 4 add diff-sampler's
    corrections (zju-pi/diff-sampler, Apache-2.0), which reduce to the fixed-step weights 23/12, ... on
    an even grid.
    """
    if order == 1:
        return [1.0]
    h, h1 = steps[0], steps[1]
    ratio = h / h1
    w = [(2 + ratio) / 2, -ratio / 2]
    if order == 2:
        return w
    h2 = steps[2]
    t1 = (1 - h / (3 * (h + h1)) * (h * (h + h1)) / (h1 * (h1 + h2))) / 2
    w = [w[0] + t1, w[1] - (1 + h1 / h2) * t1, t1 * h1 / h2]
    if order == 3:
        return w
    h3 = steps[3]
    q = h1 * (h1 + h2) / (h2 * (h2 + h3))
    t2 = ((1 - h / (3 * (h + h1))) / 2 + (1 - h / (2 * (h + h1))) * h / (6 * (h + h1 + h2)))
    t2 = t2 * (h * (h + h1) * (h + h1 + h2)) / (h1 * (h1 + h2) * (h1 + h2 + h3))
    return [
        w[0] + t2,
        w[1] - (1 + h1 / h2 + q) * t2,
        w[2] + (h1 / h2 + q * (1 + h2 / h3)) * t2,
        -t2 * q * h1 / h2,
    ]


def sample_ipndm_v(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                   max_order=4):
    """iPNDM with variable-step weights (`ipndm_v_weights`), orders warming up to max_order (default 4);
    a step to sigma = 0 returns the denoised estimate."""
    max_order = _check_order("ipndm_v max_order", max_order, 1, 4)
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    history = []  # previous derivatives, oldest first
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * s_in, **extra_args)
        report(callback, x, i, sigma, sigma, denoised)
        d = to_d(x, sigma, denoised)
        order = min(max_order, i + 1)
        if sigma_next == 0:
            x_next = denoised
        else:
            increments = [sigmas[i + 1 - k] - sigmas[i - k] for k in range(order)]
            weights = ipndm_v_weights(order, increments)
            slope = weighted_sum(weights, [d, *reversed(history)])
            x_next = x + (sigma_next - sigma) * slope
        _remember(history, d, max_order)
        x = x_next
    return x


def sample_deis(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                max_order=3, deis_mode="tab"):
    """DEIS (tab mode, max_order 3 by default): the derivative interpolated in VP time, integrated in
    sigma with precomputed weights (see `deis.py`); Euler for the first step and for a step to 0."""
    max_order = _check_order("deis max_order", max_order, 1, 4)
    if deis_mode != "tab":
        raise ValueError(f"deis_mode must be 'tab', got {deis_mode!r}")
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    weights = deis_tab_coefficients(sigmas, max_order)
    history = []  # previous derivatives, oldest first
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * s_in, **extra_args)
        report(callback, x, i, sigma, sigma, denoised)
        d = to_d(x, sigma, denoised)
        order = 1 if sigma_next <= 0 else min(max_order, i + 1)
        if order == 1:
            x_next = x + (sigma_next - sigma) * d
        else:
            x_next = x
            for weight, dd in zip(weights[i], [d, *reversed(history)]):
                x_next = x_next + weight.to(x.device) * dd
        _remember(history, d, max_order)
        x = x_next
    return x

