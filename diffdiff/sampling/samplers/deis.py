"""DEIS "tab" coefficients: how much of each remembered ODE derivative one DEIS step adds.

ComfyUI's `deis` sampler (after zju-pi/diff-sampler, Apache-2.0, itself after qsh-zh/deis) maps the run's
noise levels sigma to the time t of a VP diffusion whose schedule is fitted to the EDM defaults
(sigma_min = 0.002, sigma_max = 80, t_eps = 1e-3), whatever the model:

    sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1),
    beta_d = 2 (ln(sigma_min^2 + 1) / t_eps - ln(sigma_max^2 + 1)) / (t_eps - 1),
    beta_min = ln(sigma_max^2 + 1) - beta_d / 2.

It interpolates the derivative d = (x - x0) / sigma by a Lagrange polynomial in t through the current and
previous nodes, and integrates it against dsigma over the step. The coefficient of node j is

    c_j = integral from t_i to t_{i+1} of sigma'(t) * l_j(t) dt,
    sigma'(t) = (beta_min + beta_d t) / 2 * (1 + sigma^2) / sigma,

evaluated as ComfyUI does: a sum over 10,000 evenly spaced points (both ends included) times
(t_{i+1} - t_i) / 10,000, in float32. Written anew from the formulas; no upstream code copied.
"""

from __future__ import annotations

import torch

EDM_SIGMA_MIN = 0.002
EDM_SIGMA_MAX = 80.0
EDM_T_EPS = 1e-3
QUADRATURE_POINTS = 10_000


def vp_schedule_betas() -> tuple[torch.Tensor, torch.Tensor]:
    """(beta_min, beta_d) of the VP schedule fitted to the EDM defaults, in float32 as upstream."""
    log_min = torch.log(torch.tensor(EDM_SIGMA_MIN) ** 2 + 1)
    log_max = torch.log(torch.tensor(EDM_SIGMA_MAX) ** 2 + 1)
    beta_d = 2 * (log_min / EDM_T_EPS - log_max) / (EDM_T_EPS - 1)
    beta_min = log_max - 0.5 * beta_d
    return beta_min, beta_d


def sigma_to_vp_time(sigmas: torch.Tensor, beta_min: torch.Tensor, beta_d: torch.Tensor) -> torch.Tensor:
    """Invert sigma(t): t = (sqrt(beta_min^2 + 2 beta_d ln(sigma^2 + 1)) - beta_min) / beta_d."""
    sigmas = sigmas.detach().cpu()
    return ((beta_min**2 + 2 * beta_d * torch.log(sigmas**2 + 1)).sqrt() - beta_min) / beta_d


def _dsigma_dt(taus: torch.Tensor, beta_min: torch.Tensor, beta_max: torch.Tensor) -> torch.Tensor:
    """sigma'(t) through abar(t) = 1 / (1 + sigma^2): -0.5 (d ln abar / dt) / sqrt(abar (1 - abar))."""
    slope = beta_max - beta_min
    abar = torch.exp(-0.5 * taus**2 * slope - taus * beta_min)
    dlog_abar = -(taus * slope + beta_min)
    return -0.5 * dlog_abar / torch.sqrt(abar * (1 - abar))


def _lagrange_basis(nodes: torch.Tensor, j: int, taus: torch.Tensor) -> torch.Tensor:
    """l_j(tau): 1 at nodes[j], 0 at the other nodes."""
    basis = torch.ones_like(taus)
    for k in range(nodes.shape[0]):
        if k != j:
            basis = basis * (taus - nodes[k]) / (nodes[j] - nodes[k])
    return basis


def deis_tab_coefficients(sigmas: torch.Tensor, max_order: int, points: int = QUADRATURE_POINTS) -> list:
    """Per step i, the coefficients [c_current, c_previous, ...] of DEIS order min(i + 1, max_order).

    An order-1 step (the first, or any with max_order 1) gets an empty list: the sampler takes an Euler
    step there. The list has one entry per step (len(sigmas) - 1).
    """
    beta_min, beta_d = vp_schedule_betas()
    beta_max = beta_d + beta_min
    times = sigma_to_vp_time(sigmas, beta_min, beta_d)
    table = []
    for i in range(len(times) - 1):
        order = min(i + 1, max_order)
        if order == 1:
            table.append([])
            continue
        t_cur, t_next = times[i], times[i + 1]
        taus = torch.linspace(float(t_cur), float(t_next), points)
        dtau = (t_next - t_cur) / points
        nodes = times[[i - k for k in range(order)]]
        weight = _dsigma_dt(taus, beta_min, beta_max)
        table.append([torch.sum(weight * _lagrange_basis(nodes, j, taus)) * dtau for j in range(order)])
    return table

