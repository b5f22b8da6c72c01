"""Tests for the single-step, ancestral and SDE samplers and their noise sources.

The model is the analytic denoiser D(x, sigma) = x / (1 + sigma^2): the exact posterior mean for data
~ N(0, 1) under x = x0 + sigma * eps. Its probability-flow ODE has the solution
x(sigma) = x(sigma0) * sqrt(1 + sigma^2) / sqrt(1 + sigma0^2).
"""

from __future__ import annotations

import math

import pytest
import torch
from doubles import FlowSampling, Recorder, analytic, fixed_noise, karras, with_zero

from diffdiff.sampling.samplers import SAMPLERS, ancestral, ode, sde
from diffdiff.sampling.samplers.noise import BrownianTreeNoiseSampler, default_noise_sampler

SAMPLER_MODULES = (ode, ancestral, sde)
FUNCTIONS = {
    name[len("sample_"):]: fn
    for module in SAMPLER_MODULES
    for name, fn in vars(module).items()
    if name.startswith("sample_") and callable(fn)
}


X = torch.tensor([[[[-3.0, -0.5], [1.25, 4.0]]]], dtype=torch.float64)
S0, S1 = torch.tensor(3.0, dtype=torch.float64), torch.tensor(1.2, dtype=torch.float64)


def D(x, s):
    return x / (1 + s**2)


def one_step(name, sigmas=(S0, S1), **options):
    return FUNCTIONS[name](analytic, X.clone(), torch.stack(list(sigmas)), **options)


# ---------------------------------------------------------------- one step, written out by hand


def test_euler_one_step():
    expected = X + (X - D(X, S0)) / S0 * (S1 - S0)
    torch.testing.assert_close(one_step("euler"), expected)


def test_heun_one_step_averages_two_slopes():
    d0 = (X - D(X, S0)) / S0
    x_e = X + d0 * (S1 - S0)
    d1 = (x_e - D(x_e, S1)) / S1
    torch.testing.assert_close(one_step("heun"), X + (d0 + d1) / 2 * (S1 - S0))


def test_heun_and_dpm_2_take_an_euler_step_into_zero():
    zero = torch.tensor(0.0, dtype=torch.float64)
    torch.testing.assert_close(one_step("heun", (S0, zero)), D(X, S0))
    torch.testing.assert_close(one_step("dpm_2", (S0, zero)), D(X, S0))


def test_dpm_2_one_step_uses_the_geometric_midpoint():
    sm = torch.sqrt(S0 * S1)
    d0 = (X - D(X, S0)) / S0
    x_m = X + d0 * (sm - S0)
    d_m = (x_m - D(x_m, sm)) / sm
    torch.testing.assert_close(one_step("dpm_2"), X + d_m * (S1 - S0))


def test_dpmpp_2m_two_steps():
    s2 = torch.tensor(0.4, dtype=torch.float64)
    # step 1: first order (DDIM): x1 = (s1/s0) x + (1 - s1/s0) D0
    d0 = D(X, S0)
    x1 = (S1 / S0) * X + (1 - S1 / S0) * d0
    # step 2: in t = -log(sigma), r = h_last / h, x0 estimate extrapolated to the middle of the step
    h_last, h = math.log(S0 / S1), math.log(S1 / s2)
    r = h_last / h
    d1 = D(x1, S1)
    d_mix = (1 + 1 / (2 * r)) * d1 - 1 / (2 * r) * d0
    x2 = (s2 / S1) * x1 + (1 - s2 / S1) * d_mix
    torch.testing.assert_close(one_step("dpmpp_2m", (S0, S1, s2)), x2)


def test_dpmpp_2m_sde_without_noise_is_dpmpp_2m():
    # with eta = 0 the midpoint correction 0.5 (1 - e^-h) / r (D - D_old) is exactly 2M's extrapolation
    sigmas = with_zero(karras(6, 0.1, 8.0))
    x = X * 8
    ode_out = FUNCTIONS["dpmpp_2m"](analytic, x, sigmas)
    sde_out = FUNCTIONS["dpmpp_2m_sde"](analytic, x, sigmas, eta=0.0, noise_sampler=fixed_noise(x))
    torch.testing.assert_close(sde_out, ode_out)


def test_dpmpp_sde_without_noise_is_the_2s_midpoint_step():
    # eta = 0, r = 1/2: x_mid = e^{-h/2} x + (1 - e^{-h/2}) D0, then x = e^{-h} x + (1 - e^{-h}) D(x_mid)
    h = math.log(S0 / S1)
    s_mid = S0 * math.exp(-h / 2)
    x_mid = math.exp(-h / 2) * X + (1 - math.exp(-h / 2)) * D(X, S0)
    expected = math.exp(-h) * X + (1 - math.exp(-h)) * D(x_mid, s_mid)
    out = one_step("dpmpp_sde", eta=0.0, noise_sampler=fixed_noise(X))
    torch.testing.assert_close(out, expected)
    out_2s = one_step("dpmpp_2s_ancestral", eta=0.0, noise_sampler=fixed_noise(X))
    torch.testing.assert_close(out_2s, expected)


def test_exp_heun_2_x0_one_step():
    h = math.log(S0 / S1)
    e = math.expm1(-h)
    x_2 = (S1 / S0) * X - e * D(X, S0)
    b2 = (e + h) / (-h)  # h phi_2(-h) with r = 1
    b1 = e - b2
    expected = (S1 / S0) * X - (b1 * D(X, S0) + b2 * D(x_2, S1))
    torch.testing.assert_close(one_step("exp_heun_2_x0"), expected)


def test_euler_ancestral_one_step_with_given_noise():
    z = torch.full_like(X, 0.7)
    sigma_up = min(float(S1), math.sqrt(S1**2 * (S0**2 - S1**2) / S0**2))
    sigma_down = math.sqrt(S1**2 - sigma_up**2)
    expected = X + (X - D(X, S0)) / S0 * (sigma_down - S0) + z * sigma_up
    torch.testing.assert_close(one_step("euler_ancestral", noise_sampler=fixed_noise(z)), expected)
    # eta = 0 is plain euler; s_noise scales only the fresh noise
    torch.testing.assert_close(one_step("euler_ancestral", eta=0.0, noise_sampler=fixed_noise(z)),
                               one_step("euler"))
    half = one_step("euler_ancestral", s_noise=0.5, noise_sampler=fixed_noise(z))
    torch.testing.assert_close(half, expected - 0.5 * z * sigma_up)


def test_ddpm_one_step_with_given_noise():
    z = torch.full_like(X, -0.3)
    ab, ab_next = 1 / (1 + S0**2), 1 / (1 + S1**2)
    alpha = ab / ab_next
    eps = (X - D(X, S0)) / S0
    x_vp = X / math.sqrt(1 + S0**2)
    mean = (x_vp - (1 - alpha) / math.sqrt(1 - ab) * eps) / math.sqrt(alpha)
    std = math.sqrt((1 - alpha) * (1 - ab_next) / (1 - ab))
    expected = (mean + std * z) * math.sqrt(1 + S1**2)
    torch.testing.assert_close(one_step("ddpm", noise_sampler=fixed_noise(z)), expected)


def test_lcm_jumps_to_x0_and_renoises():
    z = torch.full_like(X, 0.25)
    torch.testing.assert_close(one_step("lcm", noise_sampler=fixed_noise(z)), D(X, S0) + S1 * z)
    # flow models renoise with the model's own rule: sigma z + (1 - sigma) x0
    s0, s1 = torch.tensor(0.8, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)
    model = Recorder(model_sampling=FlowSampling())
    out = FUNCTIONS["lcm"](model, X.clone(), torch.stack([s0, s1]), noise_sampler=fixed_noise(z))
    torch.testing.assert_close(out, s1 * z + (1 - s1) * D(X, s0))


def test_flow_models_switch_euler_ancestral_to_the_rectified_flow_step():
    s0, s1 = torch.tensor(0.8, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)
    z = torch.full_like(X, 0.9)
    sigma_down = s1 * s1 / s0  # eta = 1
    x_down = (sigma_down / s0) * X + (1 - sigma_down / s0) * D(X, s0)
    alpha_ratio = (1 - s1) / (1 - sigma_down)
    renoise = math.sqrt(s1**2 - sigma_down**2 * alpha_ratio**2)
    expected = alpha_ratio * x_down + renoise * z
    # the result has noise level s1: signal (1 - s1) and noise std s1 in the x_down + noise mix
    flow_model = Recorder(model_sampling=FlowSampling())
    out = FUNCTIONS["euler_ancestral"](flow_model, X.clone(), torch.stack([s0, s1]),
                                       noise_sampler=fixed_noise(z))
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, one_step("euler_ancestral", (s0, s1), noise_sampler=fixed_noise(z)))


def test_flow_sde_step_in_half_log_snr_is_the_flow_ddim_step():
    # first step of dpmpp_2m_sde at eta = 0 with lambda = log((1 - s) / s): x1 = (s1/s0) x + (1 - s1/s0) D
    s0, s1 = torch.tensor(0.8, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)
    out = FUNCTIONS["dpmpp_2m_sde"](Recorder(model_sampling=FlowSampling()), X.clone(), torch.stack([s0, s1]),
                                    eta=0.0, noise_sampler=fixed_noise(X))
    torch.testing.assert_close(out, (s1 / s0) * X + (1 - s1 / s0) * D(X, s0))


def test_flow_sde_samplers_move_a_first_sigma_of_one_just_below_one():
    model = Recorder(model_sampling=FlowSampling())
    sigmas = torch.tensor([1.0, 0.5, 0.0])
    out = FUNCTIONS["dpmpp_2m_sde"](model, torch.randn(1, 1, 4, 4), sigmas, extra_args={"seed": 1})
    assert torch.isfinite(out).all()
    assert model.sigmas_seen[0] == pytest.approx(1 - 1e-4, abs=1e-6)


# ---------------------------------------------------------------- convergence order


@pytest.mark.parametrize("name,order", [("euler", 1), ("heun", 2), ("dpm_2", 2), ("dpmpp_2m", 2),
                                        ("exp_heun_2_x0", 2), ("res_multistep", 2)])
def test_convergence_order_on_the_probability_flow_ode(name, order):
    sigma_min, sigma_max = 0.05, 10.0
    x0 = torch.linspace(-2, 2, 8, dtype=torch.float64).view(1, 1, 2, 4) * math.sqrt(1 + sigma_max**2)
    exact = x0 * math.sqrt(1 + sigma_min**2) / math.sqrt(1 + sigma_max**2)
    errors = []
    for steps in (16, 32):
        out = FUNCTIONS[name](analytic, x0.clone(), karras(steps + 1, sigma_min, sigma_max))
        errors.append((out - exact).abs().max().item())
    ratio = errors[0] / errors[1]
    assert 2**order * 0.8 < ratio < 2**order * 1.25, (errors, ratio)


# ---------------------------------------------------------------- seeds and statistics

STOCHASTIC = ["euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde",
              "dpmpp_2m_sde_heun", "dpmpp_3m_sde", "ddpm", "lcm", "res_multistep_ancestral", "seeds_2",
              "exp_heun_2_x0_sde"]
SDE_SIGMAS = with_zero(karras(8, 0.03, 14.6, dtype=torch.float32))


def run_seeded(name, x, seed):
    return FUNCTIONS[name](analytic, x.clone(), SDE_SIGMAS, extra_args={"seed": seed})


@pytest.mark.parametrize("name", STOCHASTIC)
def test_seeds_reproduce_and_differ(name):
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 14.6
    first = run_seeded(name, x, 42)
    assert torch.equal(first, run_seeded(name, x, 42))
    assert not torch.allclose(first, run_seeded(name, x, 43))


@pytest.mark.parametrize("name", STOCHASTIC)
def test_list_of_seeds_gives_each_item_its_own_run(name):
    x = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1)) * 14.6
    seeds = [7, 11, 7000]
    batch = run_seeded(name, x, seeds)
    for k, seed in enumerate(seeds):
        torch.testing.assert_close(batch[k:k + 1], run_seeded(name, x[k:k + 1], seed), rtol=0, atol=1e-6)


def test_a_list_of_seeds_must_match_the_batch():
    x = torch.zeros(2, 1, 2, 2)
    with pytest.raises(ValueError, match="one seed per batch item"):
        default_noise_sampler(x, [1, 2, 3])
    with pytest.raises(ValueError, match="one seed per batch item"):
        BrownianTreeNoiseSampler(x, 0.1, 1.0, seed=[1])


@pytest.mark.parametrize("name", [n for n in STOCHASTIC if n != "lcm"] + ["euler", "dpmpp_2m"])
def test_samples_of_unit_gaussian_data_have_unit_variance(name):
    # data ~ N(0, 1), start at x ~ N(0, 1 + sigma_max^2); D is the exact posterior mean, so a correct
    # sampler ends near N(0, 1). 4096 samples: the variance's own standard error is about 0.02.
    sigmas = with_zero(karras(80, 0.03, 14.6, dtype=torch.float32))
    x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(3)) * math.sqrt(1 + 14.6**2)
    out = FUNCTIONS[name](analytic, x, sigmas, extra_args={"seed": 5})
    assert abs(out.var().item() - 1.0) < 0.12


def test_default_noise_sampler_follows_comfyui_on_the_cpu():
    # ComfyUI seeds a CPU generator with seed + 1, so the ancestral noise differs from the start noise
    x = torch.zeros(2, 3, 4, 4)
    draw = default_noise_sampler(x, 9)
    expected = torch.randn(x.shape, generator=torch.Generator().manual_seed(10))
    assert torch.equal(draw(1.0, 0.5), expected)
    assert not torch.equal(draw(1.0, 0.5), expected)  # a fresh draw every call


def test_brownian_noise_is_unit_variance_and_consistent_across_intervals():
    x = torch.zeros(1, 4, 32, 32)
    noise = BrownianTreeNoiseSampler(x, 0.1, 10.0, seed=3)
    a, b, c = torch.tensor(8.0), torch.tensor(2.0), torch.tensor(0.5)
    n_ab, n_bc, n_ac = noise(a, b), noise(b, c), noise(a, c)
    assert abs(n_ab.var().item() - 1) < 0.1 and abs(n_ab.mean().item()) < 0.1
    # W(c) - W(a) = (W(b) - W(a)) + (W(c) - W(b)), each increment normalised by sqrt(|dt|)
    combined = n_ab * math.sqrt(6.0) + n_bc * math.sqrt(1.5)
    torch.testing.assert_close(n_ac * math.sqrt(7.5), combined, rtol=1e-4, atol=1e-4)
    assert abs(torch.corrcoef(torch.stack([n_ab.flatten(), n_bc.flatten()]))[0, 1].item()) < 0.1


# ---------------------------------------------------------------- call counts and callbacks

N = 6


@pytest.mark.parametrize("name,calls", [
    ("euler", N), ("euler_ancestral", N), ("heun", 2 * N - 1), ("dpm_2", 2 * N - 1),
    ("dpm_2_ancestral", 2 * N - 1), ("dpmpp_2s_ancestral", 2 * N - 1), ("dpmpp_sde", 2 * N - 1),
    ("dpmpp_2m", N), ("dpmpp_2m_sde", N), ("dpmpp_3m_sde", N), ("ddpm", N), ("lcm", N),
    ("heunpp2", 3 * N - 3), ("seeds_2", 2 * N - 1), ("exp_heun_2_x0", 2 * N - 1),
    ("res_multistep", N), ("gradient_estimation", N),
])
def test_model_call_counts_match_comfyui(name, calls):
    model = Recorder()
    steps = []
    sigmas = with_zero(karras(N, 0.1, 10.0, dtype=torch.float32))
    FUNCTIONS[name](model, torch.randn(1, 1, 4, 4) * 10, sigmas, extra_args={"seed": 0},
                    callback=steps.append)
    assert len(model.calls) == calls
    assert [s["i"] for s in steps] == list(range(N))
    assert set(steps[0]) == {"x", "i", "sigma", "sigma_hat", "denoised"}
    assert float(steps[2]["sigma"]) == pytest.approx(float(sigmas[2]))


def test_churn_raises_the_first_sigma_the_model_sees():
    model = Recorder()
    sigmas = with_zero(karras(4, 0.1, 10.0, dtype=torch.float32))
    FUNCTIONS["euler"](model, torch.randn(1, 1, 4, 4), sigmas, s_churn=1.0)
    gamma = min(1.0 / 4, math.sqrt(2) - 1)
    assert model.sigmas_seen[0] == pytest.approx(float(sigmas[0]) * (1 + gamma), rel=1e-6)


def test_unknown_solver_type_is_refused():
    with pytest.raises(ValueError, match="midpoint"):
        FUNCTIONS["dpmpp_2m_sde"](analytic, X, torch.stack([S0, S1]), solver_type="rk4")


def test_registry_holds_comfyui_names():
    for name in ["euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "dpmpp_2s_ancestral",
                 "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "ddpm", "lcm", "ddim"]:
        assert callable(SAMPLERS[name]), name
    assert SAMPLERS["ddim"] is SAMPLERS["euler"]


def test_registry_refuses_unknown_options_naming_the_valid_ones():
    sigmas = torch.stack([S0, S1])
    with pytest.raises(ValueError, match="valid options: eta, s_noise"):
        SAMPLERS["euler_ancestral"](analytic, X, sigmas, order=3)
    with pytest.raises(ValueError, match="cpu_tree"):
        SAMPLERS["dpmpp_2m_sde_gpu"](analytic, X, sigmas, cpu_tree=True)
    expected = X + (X - D(X, S0)) / S0 * (S1 - S0)
    torch.testing.assert_close(SAMPLERS["euler"](analytic, X.clone(), sigmas, s_churn=0.0), expected)
    out = SAMPLERS["dpmpp_2m_sde_gpu"](analytic, X.clone(), with_zero(sigmas), eta=0.0,
                                       extra_args={"seed": 1})
    torch.testing.assert_close(out, FUNCTIONS["dpmpp_2m_sde"](analytic, X.clone(), with_zero(sigmas),
                                                              eta=0.0))
