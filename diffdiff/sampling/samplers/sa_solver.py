"""SA-Solver's coefficient math (Xue et al., "SA-Solver: Stochastic Adams Solver", NeurIPS 2023,
arXiv 2309.05019), data-prediction form in half-log-SNR time lambda: the b weights of the stochastic
Adams predictor / corrector, and the tau (stochasticity) window ComfyUI uses by default.

One step from lambda_s to lambda_t with stochasticity tau and k = 1 + tau^2 is
x_t = (sigma_t / sigma_s) e^{-tau^2 h} x_s + sum_j b_j x0_j (+ noise), where b_j integrates the Lagrange
basis polynomial of node j (over the step's lambda nodes) against k e^{k (lambda - lambda_t)} on
[lambda_s, lambda_t], times alpha_t = sigma_t e^{lambda_t}. Follows ComfyUI's comfy/k_diffusion/sa_solver.py
numerics (the same matrix forms), written anew.
"""

from __future__ import annotations

import math

import torch


def exponential_moments(lambda_s: torch.Tensor, lambda_t: torch.Tensor, count: int,
                        tau: float) -> torch.Tensor:
    """J_p = k ∫_{lambda_s}^{lambda_t} e^{k (u - lambda_t)} u^p du for p = 0 .. count - 1, k = 1 + tau^2.

    Integration by parts gives J_p = P_p - (p / k) J_{p-1} with P_p = lambda_t^p - lambda_s^p e^{-k h};
    unrolled, J = M P with M[p, q] = (-1)^{p-q} p! / (q! k^{p-q}) for q <= p (built in log space).
    """
    k = 1 + tau**2
    h = lambda_t - lambda_s
    powers = torch.arange(count, dtype=lambda_s.dtype, device=lambda_s.device)
    boundary = lambda_t**powers - lambda_s**powers * (-k * h).exp()
    depth = powers[:, None] - powers[None, :]
    log_factorials = (powers + 1).lgamma()
    log_weights = log_factorials[:, None] - log_factorials[None, :]
    if tau > 0:
        log_weights = log_weights - depth * math.log(k)
    signs = torch.where(depth % 2 == 0, 1.0, -1.0)
    return (log_weights.exp() * signs).tril() @ boundary


def simple_order_2_weights(sigma_t, lambdas, lambda_s, lambda_t, tau: float, corrector: bool) -> torch.Tensor:
    """The paper's simplified order-2 weights (its Appendix D), ordered (older node, newer node)."""
    k = 1 + tau**2
    h = lambda_t - lambda_s
    alpha_t = sigma_t * lambda_t.exp()
    full = alpha_t * (-h * k).expm1().neg()
    if corrector:
        newer = alpha_t * (0.5 * k * h)
        return torch.stack([full - newer, newer])
    older = alpha_t * (0.5 * k * h**2) / (lambdas[-2] - lambda_s)
    return torch.stack([older, full - older])


def adams_weights(sigma_t, lambdas, lambda_s, lambda_t, tau: float, simple_order_2: bool = False,
                  corrector: bool = False) -> torch.Tensor:
    """b_j for the x0 estimates at the nodes `lambdas` (shape (N,), oldest first; N is the order) of a step
    lambda_s -> lambda_t ending at sigma_t. With `simple_order_2` and N = 2 the paper's simpler weights are
    used. The Lagrange integrals solve V^T b = J with V the (increasing) Vandermonde matrix of the nodes."""
    count = lambdas.shape[0]
    if simple_order_2 and count == 2:
        return simple_order_2_weights(sigma_t, lambdas, lambda_s, lambda_t, tau, corrector)
    moments = exponential_moments(lambda_s, lambda_t, count, tau)
    vandermonde_t = torch.vander(lambdas, count, increasing=True).T
    return sigma_t * lambda_t.exp() * torch.linalg.solve(vandermonde_t, moments)


def tau_window(start_sigma: float, end_sigma: float, eta: float = 1.0):
    """tau(sigma): eta inside start_sigma >= sigma > end_sigma, else 0 (everywhere 0 when eta <= 0).

    SA-Solver's reference code bounds the stochastic interval in time; ComfyUI (and this) in sigma. The
    lower end is exclusive as in the current Comfy-Org/ComfyUI sa_solver.py.
    """

    def tau(sigma) -> float:
        if eta <= 0:
            return 0.0
        value = float(sigma)
        return eta if start_sigma >= value > end_sigma else 0.0

    return tau
