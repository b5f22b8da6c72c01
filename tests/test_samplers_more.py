"""dpm_fast, dpm_adaptive, er_sde, seeds_3, sa_solver(_pece): hand-written steps, exact-ODE convergence, the
SA-Solver weights against quadrature, the registry, and the exact-gate invariants for eps, v and flow.

The analytic denoiser D(x, σ) = x / (1 + σ²) is the exact posterior mean for data ~ N(0, 1) under
x = x0 + σ·eps; its probability-flow ODE has the solution x(σ) = x(σ0)·sqrt(1 + σ²) / sqrt(1 + σ0²).
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
from doubles import (
    FlowSampling,
    Recorder,
    analytic,
    analytic_then_blur,
    fixed_noise,
    karras,
    with_zero,
)
from scipy import integrate

from diffdiff.sampling import SAMPLERS, model_sampling, prepare_noise, run_sigmas, sample
from diffdiff.sampling.samplers import dpm_solver, sa_solver, stochastic

sample_module = importlib.import_module("diffdiff.sampling.sample")
NEW = ("dpm_fast", "dpm_adaptive", "er_sde", "seeds_3", "sa_solver", "sa_solver_pece", "euler_cfg_pp",
       "euler_ancestral_cfg_pp", "dpmpp_2m_cfg_pp", "dpmpp_2s_ancestral_cfg_pp", "res_multistep_cfg_pp",
       "res_multistep_ancestral_cfg_pp", "gradient_estimation_cfg_pp")
COMFY_NAMES = (
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "exp_heun_2_x0",
    "exp_heun_2_x0_sde", "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive",
    "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde",
    "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu",
    "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp",
    "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "gradient_estimation",
    "gradient_estimation_cfg_pp", "er_sde", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece", "ddim",
    "uni_pc", "uni_pc_bh2")
X = torch.tensor([[[[-3.0, -0.5], [1.25, 4.0]]]], dtype=torch.float64)


def D(x, s):
    return x / (1 + s**2)


def f64(values):
    return torch.tensor(values, dtype=torch.float64)


def exact(x, s_from, s_to):
    return x * math.sqrt(1 + s_to**2) / math.sqrt(1 + s_from**2)


# ---------------------------------------------------------------- registry


def test_registry_lists_every_comfyui_sampler_name():
    assert set(SAMPLERS) == set(COMFY_NAMES)


@pytest.mark.parametrize("name,options", [
    ("dpm_fast", "none"),
    ("dpm_adaptive", "order, rtol, atol, h_init, pcoeff, icoeff, dcoeff, accept_safety, eta, s_noise"),
    ("er_sde", "s_noise, noise_scaler, max_stage"),
    ("seeds_3", "eta, s_noise, r_1, r_2"),
    ("sa_solver", "tau_func, s_noise, predictor_order, corrector_order, use_pece, simple_order_2"),
    ("sa_solver_pece", "tau_func, s_noise, predictor_order, corrector_order, simple_order_2"),
    ("euler_cfg_pp", "none"), ("euler_ancestral_cfg_pp", "eta, s_noise"), ("dpmpp_2m_cfg_pp", "none"),
    ("dpmpp_2s_ancestral_cfg_pp", "eta, s_noise"), ("res_multistep_cfg_pp", "s_noise"),
    ("res_multistep_ancestral_cfg_pp", "eta, s_noise"), ("gradient_estimation_cfg_pp", "ge_gamma"),
])
def test_new_samplers_take_comfyuis_options(name, options):
    with pytest.raises(ValueError, match=f"valid options: {options}$"):
        SAMPLERS[name](analytic, X, with_zero(f64([2.0, 1.0])), bogus=1)


# ---------------------------------------------------------------- dpm_fast / dpm_adaptive


@pytest.mark.parametrize("nfe,orders", [(1, [1]), (2, [2]), (3, [2, 1]), (4, [3, 1]), (5, [3, 2]),
                                        (6, [3, 2, 1]), (10, [3, 3, 3, 1])])
def test_dpm_fast_orders_spend_exactly_the_calls(nfe, orders):
    assert dpm_solver.fast_orders(nfe) == orders
    model = Recorder()
    sigmas = with_zero(karras(nfe, 0.1, 10.0))
    SAMPLERS["dpm_fast"](model, X.clone() * 10, sigmas)
    assert len(model.calls) == nfe == len(sigmas) - 1
    # it integrates from sigmas[0] to the last positive sigma, as ComfyUI's KSampler wrapper
    assert model.sigmas_seen[0] == pytest.approx(10.0) and min(model.sigmas_seen) >= 0.1 - 1e-12


def test_dpm_fast_one_first_and_one_second_order_step():
    s0, s1 = 3.0, 1.2
    h = math.log(s0 / s1)
    eps0 = (X - D(X, s0)) / s0
    ddim = X - s1 * math.expm1(h) * eps0
    torch.testing.assert_close(SAMPLERS["dpm_fast"](analytic, X.clone(), f64([s0, s1])), ddim)
    # nfe 2 on [s0, s1, 0] is one DPM-Solver-2 step s0 -> s1 (midpoint at t + h/2)
    s_mid = s0 * math.exp(-h / 2)
    u = X - s_mid * math.expm1(h / 2) * eps0
    eps_mid = (u - D(u, s_mid)) / s_mid
    second = X - s1 * math.expm1(h) * eps0 - s1 * math.expm1(h) * (eps_mid - eps0)
    torch.testing.assert_close(SAMPLERS["dpm_fast"](analytic, X.clone(), f64([s0, s1, 0.0])), second)


def test_dpm_fast_converges_to_the_exact_ode_solution():
    errors = []
    for nfe in (9, 18, 36):
        sigmas = with_zero(karras(nfe, 0.05, 10.0))
        out = SAMPLERS["dpm_fast"](analytic, X.clone() * 10, sigmas)
        errors.append((out - exact(X * 10, 10.0, 0.05)).abs().max().item())
    assert errors[0] < 0.5 and errors[1] < errors[0] / 4 and errors[2] < errors[1] / 4, errors


def test_dpm_adaptive_meets_its_tolerance_and_tighter_tolerance_costs_calls():
    sigmas = with_zero(karras(5, 0.05, 10.0))
    target = exact(X * 10, 10.0, 0.05)
    results = {}
    for rtol, atol in ((0.05, 0.0078), (1e-4, 1e-5)):
        model = Recorder()
        out = SAMPLERS["dpm_adaptive"](model, X.clone() * 10, sigmas, rtol=rtol, atol=atol)
        results[rtol] = ((out - target).abs().max().item(), len(model.calls))
    (loose_error, loose_calls), (tight_error, tight_calls) = results[0.05], results[1e-4]
    assert loose_error < 0.5 and tight_error < 1e-3 and tight_error < loose_error / 100, results
    assert tight_calls > loose_calls
    # the schedule only sets the range: a finer schedule with the same ends gives the same run
    finer = SAMPLERS["dpm_adaptive"](analytic, X.clone() * 10, with_zero(karras(40, 0.05, 10.0)))
    torch.testing.assert_close(finer, SAMPLERS["dpm_adaptive"](analytic, X.clone() * 10, sigmas))


def test_dpm_adaptive_counts_calls_per_attempt_and_reports_each():
    seen = []
    model = Recorder()
    sigmas = with_zero(karras(5, 0.05, 10.0))
    x, info = dpm_solver.dpm_solver_adaptive(model, X.clone() * 10, sigmas[0].log().neg(),
                                             sigmas[-2].log().neg(), {}, seen.append, None, order=2)
    assert info["nfe"] == 2 * info["steps"] and info["steps"] == info["n_accept"] + info["n_reject"]
    assert len(model.calls) == info["nfe"] and len(seen) == info["steps"]
    assert float(seen[-1]["sigma"]) == pytest.approx(0.05)


def test_pid_controller_rule():
    pid = dpm_solver.PIDStepSizeController(0.05, 0.0, 1.0, 0.0, order=3, accept_safety=0.81)
    assert pid.propose_step(0.5)  # factor 1 + atan(2^(1/3) - 1) > 0.81: accepted, h grows
    assert pid.h == pytest.approx(0.05 * (1 + math.atan(2 ** (1 / 3) - 1)))
    h = pid.h
    assert not pid.propose_step(100.0)  # error far above 1: rejected, h shrinks
    assert pid.h == pytest.approx(h * (1 + math.atan((1 / (100.0 + 1e-8)) ** (1 / 3) - 1)))


# ---------------------------------------------------------------- er_sde


def er_reference(x, sigmas, noise, flow=False, max_stage=3, s_noise=1.0):
    """ER-SDE written out in float64 from the formulas: l = σ/α, r = f(l_t)/f(l_s), Riemann sums."""
    def f(v):
        return v * (math.exp(v**0.3) + 10.0)

    def alpha(s):
        return 1 - s if flow else 1.0

    levels = [s / alpha(s) for s in sigmas]
    olds, old_d = [], None
    for i in range(len(sigmas) - 1):
        den = D(x, sigmas[i]) if not flow else (1 - sigmas[i]) * x / ((1 - sigmas[i]) ** 2 + sigmas[i] ** 2)
        if sigmas[i + 1] == 0:
            x = den
            break
        ls, lt = levels[i], levels[i + 1]
        at, as_ = alpha(sigmas[i + 1]), alpha(sigmas[i])
        r = f(lt) / f(ls)
        x = at / as_ * r * x + at * (1 - r) * den
        stage = min(max_stage, i + 1)
        if stage >= 2:
            dt = lt - ls
            nodes = [lt - k * dt / 200 for k in range(200)]
            s1 = sum(1 / f(u) for u in nodes) * (-dt / 200)
            d1 = (den - olds[-1]) / (ls - levels[i - 1])
            x = x + at * (dt + s1 * f(lt)) * d1
            if stage >= 3:
                s2 = sum((u - ls) / f(u) for u in nodes) * (-dt / 200)
                du = (d1 - old_d) / ((ls - levels[i - 2]) / 2)
                x = x + at * (dt**2 / 2 + s2 * f(lt)) * du
            old_d = d1
        x = x + at * noise * s_noise * math.sqrt(max(lt**2 - ls**2 * r**2, 0.0))
        olds.append(den)
    return x


def flow_posterior(x, sigma, **kwargs):
    """Exact x0 posterior mean for data ~ N(0, 1) under x = (1 − σ)·x0 + σ·n."""
    s = sigma.view(-1, 1, 1, 1)
    return (1 - s) * x / ((1 - s) ** 2 + s**2)


@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("max_stage", [1, 2, 3])
def test_er_sde_matches_the_written_out_stages(flow, max_stage):
    sigmas = [0.9, 0.7, 0.5, 0.3, 0.15, 0.0] if flow else [8.0, 5.0, 3.0, 1.8, 1.0, 0.5]
    z = torch.full_like(X, 0.3)
    model = Recorder(flow_posterior, model_sampling=FlowSampling()) if flow else analytic
    out = SAMPLERS["er_sde"](model, X.clone(), f64(sigmas), noise_sampler=fixed_noise(z), max_stage=max_stage)
    torch.testing.assert_close(out, er_reference(X.clone(), sigmas, z, flow, max_stage), rtol=1e-5, atol=1e-5)


def test_er_sde_ends_on_unit_variance_for_gaussian_data():
    sigmas = with_zero(karras(60, 0.03, 14.6, dtype=torch.float32))
    x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(3)) * math.sqrt(1 + 14.6**2)
    out = SAMPLERS["er_sde"](analytic, x, sigmas, extra_args={"seed": 5})
    assert abs(out.var().item() - 1.0) < 0.12


# ---------------------------------------------------------------- seeds_3


def test_seeds_3_without_noise_is_the_three_stage_exponential_step():
    s0, s1 = 3.0, 1.2
    h = math.log(s0 / s1)
    e = math.expm1

    def phi2(v):
        return (math.expm1(v) - v) / v

    x_2 = (s0 * math.exp(-h / 3)) / s0 * X - e(-h / 3) * D(X, s0)
    s_2 = s0 * math.exp(-2 * h / 3)
    a2 = 2 * phi2(-2 * h / 3)
    x_3 = s_2 / s0 * X - ((e(-2 * h / 3) - a2) * D(X, s0) + a2 * D(x_2, s0 * math.exp(-h / 3)))
    b3 = phi2(-h) / (2 / 3)
    expected = s1 / s0 * X - ((e(-h) - b3) * D(X, s0) + b3 * D(x_3, s_2))
    out = SAMPLERS["seeds_3"](analytic, X.clone(), f64([s0, s1]), eta=0.0)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


def test_seeds_3_is_third_order_and_reproducible():
    x0 = X * math.sqrt(1 + 10.0**2)
    errors = []
    for steps in (8, 16):
        out = SAMPLERS["seeds_3"](analytic, x0.clone(), karras(steps + 1, 0.05, 10.0), eta=0.0)
        errors.append((out - exact(x0, 10.0, 0.05)).abs().max().item())
    assert 8 * 0.7 < errors[0] / errors[1] < 8 * 1.4, errors
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 14.6
    sigmas = with_zero(karras(6, 0.03, 14.6, dtype=torch.float32))
    first = SAMPLERS["seeds_3"](analytic, x, sigmas, extra_args={"seed": 3})
    assert torch.equal(first, SAMPLERS["seeds_3"](analytic, x, sigmas, extra_args={"seed": 3}))
    assert not torch.allclose(first, SAMPLERS["seeds_3"](analytic, x, sigmas, extra_args={"seed": 4}))


# ---------------------------------------------------------------- sa_solver


def quad_weights(nodes, lam_s, lam_t, sigma_t, tau):
    """b_j = α_t ∫ k e^{k(u − λ_t)} ℓ_j(u) du over [λ_s, λ_t], by quadrature (ℓ_j: Lagrange basis)."""
    k = 1 + tau**2
    weights = []
    for j, node in enumerate(nodes):
        others = [n for m, n in enumerate(nodes) if m != j]

        def integrand(u, node=node, others=others):
            basis = np.prod([(u - n) / (node - n) for n in others]) if others else 1.0
            return k * math.exp(k * (u - lam_t)) * basis

        weights.append(integrate.quad(integrand, lam_s, lam_t, epsabs=1e-13, epsrel=1e-12)[0])
    return sigma_t * math.exp(lam_t) * np.array(weights)


@pytest.mark.parametrize("tau", [0.0, 1.0, 0.4])
@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_sa_solver_weights_integrate_the_lagrange_basis(tau, count):
    nodes = [-1.2, -0.7, -0.1, 0.5][-count:]
    lam_s, lam_t, sigma_t = 0.5, 1.1, math.exp(-1.1)
    weights = sa_solver.adams_weights(f64(sigma_t), f64(nodes), f64(lam_s), f64(lam_t), tau)
    np.testing.assert_allclose(weights.numpy(), quad_weights(nodes, lam_s, lam_t, sigma_t, tau), rtol=1e-8,
                               atol=1e-12)
    assert float(weights.sum()) == pytest.approx(sigma_t * math.exp(lam_t) * -math.expm1(-(1 + tau**2) * 0.6))


def test_sa_solver_simple_order_2_weights():
    nodes, lam_s, lam_t, tau = f64([-0.4, 0.2]), f64(0.2), f64(0.9), 0.5
    k, h, alpha_t = 1.25, 0.7, math.exp(-0.9) * math.exp(0.9)
    older = alpha_t * 0.5 * k * h**2 / (-0.4 - 0.2)
    full = alpha_t * -math.expm1(-k * h)
    predictor = sa_solver.adams_weights(f64(math.exp(-0.9)), nodes, lam_s, lam_t, tau, simple_order_2=True)
    torch.testing.assert_close(predictor, f64([older, full - older]))
    corrector = sa_solver.adams_weights(f64(math.exp(-0.9)), nodes, lam_s, lam_t, tau, True, corrector=True)
    torch.testing.assert_close(corrector, f64([full - alpha_t * 0.5 * k * h, alpha_t * 0.5 * k * h]))


def test_sa_solver_default_tau_window_follows_the_schedule_percents():
    ms = model_sampling("sd1")
    tau = stochastic.default_tau(ms)
    start, end = ms.percent_to_sigma(0.2), ms.percent_to_sigma(0.8)
    assert tau(torch.tensor(start)) == 1.0 and tau(start * 1.01) == 0.0
    assert tau((start * end) ** 0.5) == 1.0 and tau(end) == 0.0 and tau(end * 0.99) == 0.0
    assert sa_solver.tau_window(2.0, 1.0, eta=0.0)(1.5) == 0.0
    assert stochastic.default_tau(None)(1.0) == 0.0  # no model sampling: the ODE


def sa_reference(x, s, p_order, c_order, pece=False, tau=0.0, z=None):
    """SA-Solver with the weights from quadrature: predictor x_{i+1} = (σ_{i+1}/σ_i) e^{−τ²h} x_i + Σ b x0,
    corrector on the new evaluation; orders taper at the end of a run that ends at 0."""
    lam = [-math.log(v) if v > 0 else math.inf for v in s]
    hist, x_pred, h, noise, n = [], x, 0.0, 0.0, len(s)
    for i in range(n - 1):
        den = D(x_pred, s[i])
        hist = (hist + [den])[-max(p_order, c_order):]
        po = min(p_order, len(hist), n - 2 - i)
        co = 0 if i == 0 or (s[i + 1] == 0 and not pece) else min(c_order, len(hist), n - 1 - i)
        if co == 0:
            xc = x_pred
        else:
            b = quad_weights(lam[i - co + 1:i + 1], lam[i - 1], lam[i], s[i], tau)
            xc = s[i] / s[i - 1] * math.exp(-tau**2 * h) * xc + sum(w * d for w, d in zip(b, hist[-co:]))
            xc = xc + noise
            if pece:
                hist[-1] = den = D(xc, s[i])
        if s[i + 1] == 0:
            return den
        b = quad_weights(lam[i - po + 1:i + 1], lam[i], lam[i + 1], s[i + 1], tau)
        h = lam[i + 1] - lam[i]
        x_pred = s[i + 1] / s[i] * math.exp(-tau**2 * h) * xc + sum(w * d for w, d in zip(b, hist[-po:]))
        noise = 0.0 if z is None else z * s[i + 1] * math.sqrt(-math.expm1(-2 * tau**2 * h))
        x_pred = x_pred + noise
    return x_pred


@pytest.mark.parametrize("pece", [False, True])
@pytest.mark.parametrize("p_order,c_order", [(1, 1), (2, 2), (3, 4)])
def test_sa_solver_matches_a_quadrature_predictor_corrector(pece, p_order, c_order):
    s = [8.0, 5.0, 3.0, 1.8, 1.0, 0.5, 0.0]
    name = "sa_solver_pece" if pece else "sa_solver"
    model = Recorder()
    out = SAMPLERS[name](model, X.clone(), f64(s), predictor_order=p_order, corrector_order=c_order,
                         tau_func=lambda sigma: 0.0)
    torch.testing.assert_close(out, sa_reference(X.clone(), s, p_order, c_order, pece), rtol=1e-6, atol=1e-6)
    assert len(model.calls) == (2 * (len(s) - 1) - 1 if pece else len(s) - 1)
    z = torch.full_like(X, -0.4)
    noisy = SAMPLERS[name](analytic, X.clone(), f64(s), predictor_order=p_order, corrector_order=c_order,
                           tau_func=lambda sigma: 0.7, noise_sampler=fixed_noise(z))
    expected = sa_reference(X.clone(), s, p_order, c_order, pece, tau=0.7, z=z)
    torch.testing.assert_close(noisy, expected, rtol=1e-6, atol=1e-6)


def test_sa_solver_ode_converges_fast():
    x0 = X * math.sqrt(1 + 10.0**2)
    errors = []
    for steps in (8, 16):
        out = SAMPLERS["sa_solver"](analytic, x0.clone(), karras(steps + 1, 0.05, 10.0),
                                    tau_func=lambda sigma: 0.0)
        errors.append((out - exact(x0, 10.0, 0.05)).abs().max().item())
    assert errors[0] / errors[1] > 8 * 0.8, errors


@pytest.mark.parametrize("name", ["sa_solver", "er_sde", "seeds_3"])
def test_list_seeds_give_each_item_its_own_run(name):
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1)) * 14.6
    sigmas = with_zero(karras(6, 0.03, 14.6, dtype=torch.float32))
    options = {"tau_func": lambda sigma: 1.0} if name == "sa_solver" else {}
    batch = SAMPLERS[name](analytic, x, sigmas, extra_args={"seed": [4, 9]}, **options)
    alone = SAMPLERS[name](analytic, x[1:], sigmas, extra_args={"seed": 9}, **options)
    torch.testing.assert_close(batch[1:], alone, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- through sample(): the exact gate


def ramp_map(size=8):
    return torch.linspace(0, 1, size).repeat(size, 1)


@pytest.mark.parametrize("kind", ["sd1", "sd2-v", "sd3"])
@pytest.mark.parametrize("name", NEW)
def test_gate_invariants_for_eps_v_and_flow(kind, name):
    ms = model_sampling(kind)
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    settings = {"model_sampling": ms, "sampler": name, "scheduler": "normal", "steps": 5, "seed": 2}
    plain = sample(analytic_then_blur, z, **settings)
    assert torch.isfinite(plain).all()
    assert torch.equal(sample(analytic_then_blur, z, **settings, strength_map=torch.ones(8, 8)), plain)
    gated = sample(analytic_then_blur, z, **settings, strength_map=ramp_map())
    assert torch.equal(gated[..., 0], z[..., 0]) and not torch.equal(gated[..., -1], z[..., -1])


@pytest.mark.parametrize("name", ["dpm_fast", "dpm_adaptive"])
def test_dpm_solvers_leave_held_pixels_at_the_last_positive_sigma(name, monkeypatch):
    """Without the final restore, held pixels follow x' = (x − z)/σ exactly (DPM-Solver is exact for a
    constant eps) but stop at σ_min = the last positive σ, so x − z keeps the factor σ_min/σ_0."""
    monkeypatch.setattr(sample_module, "restore_held_pixels", lambda out, latent, keep_mask: out)
    ms = model_sampling("sd1")
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    out = sample(analytic_then_blur, z, model_sampling=ms, sampler=name, scheduler="karras", steps=6, seed=1,
                 strength_map=ramp_map())
    sigmas = run_sigmas(ms, "karras", 6, 1.0, name)
    start = ms.noise_scaling(sigmas[0], prepare_noise(z, 1), z, True)
    torch.testing.assert_close(out[..., 0] - z[..., 0], (start - z)[..., 0] * (sigmas[-2] / sigmas[0]),
                               rtol=1e-3, atol=1e-5)
