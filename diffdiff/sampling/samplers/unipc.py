"""UniPC (uni_pc = B(h) variant "bh1", uni_pc_bh2 = "bh2") as ComfyUI runs it on a sigma schedule.

UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of Diffusion
Models"; MIT reference code wl-zhao/UniPC, followed here in our own words) is a multistep
exponential-integrator solver in data-prediction form: a UniP predictor step from the remembered x0
estimates, then a UniC corrector that reuses the model call made at the new point (so the corrector is
free: one model call per step).

How ComfyUI drives it (its `sample_unipc`), reproduced here:
- Sigmas are VE noise levels; each is read as a VP point with alpha = 1/sqrt(1 + sigma^2),
  std = sigma/sqrt(1 + sigma^2), half-log-SNR lambda = log(alpha/std) = -log(sigma). The state is kept
  in VP scale (x_vp = x / sqrt(1 + sigma_0^2) at the start) and divided by alpha(last sigma) at the end.
- A final sigma of 0 is replaced by 0.001: the run ends at sigma 0.001, not at the clean estimate.
- The model is asked for x0 at the VE input x_vp * sqrt(1 + sigma^2); ComfyUI turns that into eps and
  back into x0 (x0 = (x_vp - std * eps) / alpha); we do the same round trip.
- Order = min(3, steps - 1), "lower_order_final": step k (1-based) uses order min(k, order) while warming
  up, then min(order, steps + 1 - k); every step but the last runs the corrector, whose model call is the
  next step's x0; the last step (order 1) runs none. Model calls = steps.
- The predictor of order 2 uses rho = 1/2 and the corrector of order 1 uses rho = 1/2 (the paper's
  simplified choices); other orders solve R rho = b with R_ij = r_j^(i-1), b_i = i! h phi_(i+1)(h) / B(h).
- Flow models are not treated differently (ComfyUI does not either).

Deviation: with a single step (two sigmas) ComfyUI's order becomes 0 and it returns the input unchanged
apart from rescaling (noise). Here a single step is one first-order step (DPM-Solver++(1) / DDIM) to the
end sigma, costing the same one model call.
"""

from __future__ import annotations

import torch

from .common import report, weighted_sum

FINAL_SIGMA = 0.001  # what ComfyUI puts in place of a final sigma of 0
MAX_ORDER = 3


def log_alpha(sigma: torch.Tensor) -> torch.Tensor:
    """log alpha of the VP point with VE noise level sigma: 0.5 log(1 / (sigma^2 + 1))."""
    return 0.5 * torch.log(1 / (sigma * sigma + 1))


def vp_alpha(sigma: torch.Tensor) -> torch.Tensor:
    return torch.exp(log_alpha(sigma))


def vp_std(sigma: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(1.0 - torch.exp(2.0 * log_alpha(sigma)))


def half_log_snr(sigma: torch.Tensor) -> torch.Tensor:
    """lambda = log alpha - log std (= -log sigma, computed through alpha as ComfyUI does)."""
    la = log_alpha(sigma)
    return la - 0.5 * torch.log(1.0 - torch.exp(2.0 * la))


def _data_prediction(model, x_vp, sigma, s_in, extra_args):
    """x0 at the VP state x_vp: the model sees the VE input; its x0 goes through eps and back."""
    x_ve = x_vp * ((sigma**2 + 1.0) ** 0.5)
    eps = (x_ve - model(x_ve, sigma * s_in, **extra_args)) / sigma
    return (x_vp - vp_std(sigma) * eps) / vp_alpha(sigma)


def _rho_system(h_neg: torch.Tensor, ratios: torch.Tensor, order: int, variant: str):
    """R (rows r^(i-1)), b (i! h phi_(i+1)(h) / B(h)) and B(h) for an order-`order` update, h_neg = -h."""
    h_phi_1 = torch.expm1(h_neg)
    if variant == "bh1":
        b_h = h_neg
    elif variant == "bh2":
        b_h = torch.expm1(h_neg)
    else:
        raise ValueError(f"UniPC variant must be one of bh1, bh2, got {variant!r}")
    rows, rhs = [], []
    h_phi_k = h_phi_1 / h_neg - 1  # h phi_2(h) / h ... advanced in the loop to higher phi functions
    factorial = 1
    for i in range(1, order + 1):
        rows.append(torch.pow(ratios, i - 1))
        rhs.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / h_neg - 1 / factorial
    return torch.stack(rows), torch.stack(rhs), b_h, h_phi_1


def unipc_update(predict, x, sigmas_prev, x0s_prev, sigma, order, variant, use_corrector):
    """One UniPC step of the VP state x from sigmas_prev[-1] to sigma.

    sigmas_prev / x0s_prev: the remembered points and x0 estimates, oldest first (at least `order`).
    predict(x_vp, sigma) -> x0. Returns (x_next, x0 at x_next's predictor point or None).
    """
    sigma_prev = sigmas_prev[-1]
    x0_prev = x0s_prev[-1]
    lam_prev = half_log_snr(sigma_prev)
    h = half_log_snr(sigma) - lam_prev

    ratios, slopes = [], []
    for k in range(1, order):
        r_k = (half_log_snr(sigmas_prev[-(k + 1)]) - lam_prev) / h
        ratios.append(r_k)
        slopes.append((x0s_prev[-(k + 1)] - x0_prev) / r_k)
    ratios.append(torch.ones_like(h))
    ratios = torch.stack(ratios)

    h_neg = -h
    R, b, b_h, h_phi_1 = _rho_system(h_neg, ratios, order, variant)
    alpha = vp_alpha(sigma)

    # First-order (DPM-Solver++(1)) part shared by predictor and corrector.
    x_base = (vp_std(sigma) / vp_std(sigma_prev)) * x - (alpha * h_phi_1) * x0_prev

    if slopes:
        rhos_p = torch.full_like(b[:1], 0.5) if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1])
        x_next = x_base - (alpha * b_h) * weighted_sum(rhos_p, slopes)
    else:
        x_next = x_base
    if not use_corrector:
        return x_next, None

    rhos_c = torch.full_like(b[:1], 0.5) if order == 1 else torch.linalg.solve(R, b)
    x0_next = predict(x_next, sigma)
    correction = weighted_sum(rhos_c[:-1], slopes) + rhos_c[-1] * (x0_next - x0_prev)
    return x_base - (alpha * b_h) * correction, x0_next


def _report_ve(callback, x_vp, i, sigma, denoised) -> None:
    """`common.report` with x back on the VE scale the other samplers report."""
    if callback is not None:
        report(callback, x_vp / vp_alpha(sigma), i, sigma, sigma, denoised)


def sample_unipc(model, x, sigmas, extra_args=None, callback=None, variant="bh1"):
    """UniPC multistep (order 3, lower order at the start and end) over the given sigmas."""
    extra_args = {} if extra_args is None else extra_args
    steps = len(sigmas) - 1
    if steps < 1:
        return x
    points = sigmas.clone()
    if points[-1] == 0:
        points[-1] = FINAL_SIGMA
    s_in = x.new_ones([x.shape[0]])

    def predict(x_vp, sigma):
        return _data_prediction(model, x_vp, sigma, s_in, extra_args)

    order = max(1, min(MAX_ORDER, steps - 1))
    x = x / torch.sqrt(1.0 + points[0] ** 2.0)
    sigmas_prev, x0s_prev = [points[0]], [predict(x, points[0])]
    _report_ve(callback, x, 0, points[0], x0s_prev[-1])
    for k in range(1, steps):
        step_order = k if k < order else min(order, steps + 1 - k)
        x, x0 = unipc_update(predict, x, sigmas_prev, x0s_prev, points[k], step_order, variant, True)
        sigmas_prev = [*sigmas_prev, points[k]][-order:]
        x0s_prev = [*x0s_prev, x0][-order:]
        _report_ve(callback, x, k, points[k], x0)
    x, _ = unipc_update(predict, x, sigmas_prev, x0s_prev, points[steps], 1, variant, False)
    return x / vp_alpha(points[-1])


def sample_uni_pc(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    """ComfyUI's "uni_pc": UniPC with B(h) = h (bh1)."""
    return sample_unipc(model, x, sigmas, extra_args, callback, variant="bh1")


def sample_uni_pc_bh2(model, x, sigmas, extra_args=None, callback=None, disable=None,
                      noise_sampler=None):
    """ComfyUI's "uni_pc_bh2": UniPC with B(h) = e^h - 1 (bh2)."""
    return sample_unipc(model, x, sigmas, extra_args, callback, variant="bh2")
