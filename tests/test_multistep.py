"""Multistep samplers (lms, ipndm, deis, uni_pc, uni_pc_bh2) against hand-written steps and the exact ODE.

The analytic denoiser D(x, sigma) = x / (1 + sigma^2) is the exact posterior mean for data ~ N(0, 1);
the probability-flow ODE solution is x(sigma) = x(s0) * sqrt(1 + sigma^2) / sqrt(1 + s0^2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from doubles import Recorder, analytic, blur_then_shrink, karras, with_zero
from numpy.polynomial import Polynomial
from scipy import integrate

from diffdiff.sampling.samplers import MULTISTEP_SAMPLERS
from diffdiff.sampling.samplers.multistep import ipndm_v_weights

NAMES = ("lms", "ipndm", "ipndm_v", "deis", "uni_pc", "uni_pc_bh2")


def d_of(x, sigma):
    """dx/dsigma for the analytic denoiser."""
    return (x - x / (1 + sigma**2)) / sigma


def start(seed=0, shape=(1, 2, 3, 3)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64) * 5


def f64(values):
    return torch.tensor(values, dtype=torch.float64)


def test_registry_has_the_six_names():
    assert set(MULTISTEP_SAMPLERS) == set(NAMES)


# ---- lms ---------------------------------------------------------------------------------------------


def lagrange_weight(nodes, j, a, b):
    """Exact integral over [a, b] of the Lagrange basis polynomial of nodes[j] (numpy polynomials)."""
    others = [n for k, n in enumerate(nodes) if k != j]
    poly = Polynomial.fromroots(others) / np.prod([nodes[j] - n for n in others]) if others else Polynomial(1)
    antiderivative = poly.integ()
    return antiderivative(b) - antiderivative(a)


def test_lms_steps_are_euler_then_adams_bashforth_with_lagrange_weights():
    s = [8.0, 5.0, 3.0, 1.8, 1.0, 0.5]
    sigmas = f64(s)
    x = start()
    model = Recorder()
    MULTISTEP_SAMPLERS["lms"](model, x, sigmas)
    xs = [c[0] for c in model.calls]
    ds = [d_of(xs[i], s[i]) for i in range(len(xs))]
    # step 0: Euler
    assert torch.allclose(xs[1], x + (s[1] - s[0]) * ds[0], rtol=1e-12, atol=1e-12)
    # step 1: two-point rule, closed form
    c_cur = ((s[2] - s[0]) ** 2 - (s[1] - s[0]) ** 2) / 2 / (s[1] - s[0])
    c_prev = (s[2] - s[1]) ** 2 / 2 / (s[0] - s[1])
    assert torch.allclose(xs[2], xs[1] + c_cur * ds[1] + c_prev * ds[0], rtol=1e-6, atol=1e-9)
    # steps 2 and 3: orders 3 and 4, weights from exact polynomial integration
    for i in (2, 3):
        order = i + 1
        nodes = [s[i - k] for k in range(order)]
        expected = xs[i] + sum(lagrange_weight(nodes, j, s[i], s[i + 1]) * ds[i - j] for j in range(order))
        assert torch.allclose(xs[i + 1], expected, rtol=1e-5, atol=1e-7)


def test_lms_keeps_order_four_after_warm_up():
    s = [9.0, 6.0, 4.0, 2.7, 1.8, 1.2, 0.8]
    x = start(1)
    model = Recorder()
    out = MULTISTEP_SAMPLERS["lms"](model, x, f64(s))
    xs = [c[0] for c in model.calls] + [out]
    i = 5  # history d5, d4, d3, d2 (four nodes; d1 and d0 forgotten)
    nodes = [s[i - k] for k in range(4)]
    ds = [d_of(xs[k], s[k]) for k in range(len(s) - 1)]
    expected = xs[i] + sum(lagrange_weight(nodes, j, s[i], s[i + 1]) * ds[i - j] for j in range(4))
    assert torch.allclose(xs[i + 1], expected, rtol=1e-5, atol=1e-7)


# ---- ipndm -------------------------------------------------------------------------------------------


def test_ipndm_steps_use_fixed_adams_bashforth_weights():
    s = [8.0, 5.0, 3.0, 1.8, 1.0, 0.5]
    x = start(2)
    model = Recorder()
    out = MULTISTEP_SAMPLERS["ipndm"](model, x, f64(s))
    xs = [c[0] for c in model.calls] + [out]
    d = [d_of(xs[i], s[i]) for i in range(5)]
    h = [s[i + 1] - s[i] for i in range(5)]
    expected = [
        xs[0] + h[0] * d[0],
        xs[1] + h[1] * (3 * d[1] - d[0]) / 2,
        xs[2] + h[2] * (23 * d[2] - 16 * d[1] + 5 * d[0]) / 12,
        xs[3] + h[3] * (55 * d[3] - 59 * d[2] + 37 * d[1] - 9 * d[0]) / 24,
        xs[4] + h[4] * (55 * d[4] - 59 * d[3] + 37 * d[2] - 9 * d[1]) / 24,
    ]
    for i in range(5):
        assert torch.allclose(xs[i + 1], expected[i], rtol=1e-12, atol=1e-12), i


def test_ipndm_v_is_euler_then_variable_step_adams_bashforth():
    s = [8.0, 5.0, 3.0, 1.8, 1.0]
    x = start(12)
    model = Recorder()
    out = MULTISTEP_SAMPLERS["ipndm_v"](model, x, f64(s))
    xs = [c[0] for c in model.calls] + [out]
    d = [d_of(xs[i], s[i]) for i in range(4)]
    assert torch.allclose(xs[1], xs[0] + (s[1] - s[0]) * d[0], rtol=1e-12, atol=1e-12)
    # order 2 is the exact two-point rule (the same weights as lms's second step)
    c_cur = ((s[2] - s[0]) ** 2 - (s[1] - s[0]) ** 2) / 2 / (s[1] - s[0])
    c_prev = (s[2] - s[1]) ** 2 / 2 / (s[0] - s[1])
    assert torch.allclose(xs[2], xs[1] + c_cur * d[1] + c_prev * d[0], rtol=1e-12, atol=1e-12)


def test_ipndm_v_up_to_order_3_equals_ipndm_on_an_even_grid():
    grid = f64([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0])
    x = start(13)
    a = MULTISTEP_SAMPLERS["ipndm_v"](analytic, x, grid, max_order=3)
    b = MULTISTEP_SAMPLERS["ipndm"](analytic, x, grid, max_order=3)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    uneven = f64([9.0, 8.0, 6.5, 6.0, 5.0, 4.0, 3.0])
    a = MULTISTEP_SAMPLERS["ipndm_v"](analytic, x, uneven, max_order=3)
    b = MULTISTEP_SAMPLERS["ipndm"](analytic, x, uneven, max_order=3)
    assert (a - b).abs().max() > 1e-6


def test_ipndm_v_order_4_keeps_diff_samplers_even_grid_weights():
    # diff-sampler's (and so ComfyUI's) order-4 correction on an even grid, by hand: temp1 = 5/12,
    # temp2 = 5/12 + (3/4)(1/18) = 11/24, q = 1, giving (57, -65, 43, -11)/24, not AB4's (55, -59, 37, -9)/24.
    weights = ipndm_v_weights(4, [-1.0, -1.0, -1.0, -1.0])
    assert weights == pytest.approx([57 / 24, -65 / 24, 43 / 24, -11 / 24], rel=1e-12)
    assert ipndm_v_weights(3, [-0.5, -0.5, -0.5]) == pytest.approx([23 / 12, -16 / 12, 5 / 12], rel=1e-12)


@pytest.mark.parametrize("name", ["lms", "ipndm", "ipndm_v"])
def test_step_to_zero_returns_the_denoised_estimate(name):
    s = [4.0, 2.0, 1.0, 0.0]
    x = start(3)
    model = Recorder()
    out = MULTISTEP_SAMPLERS[name](model, x, f64(s))
    last_x = model.calls[-1][0]
    assert torch.equal(out, analytic(last_x, f64([1.0])))


# ---- deis --------------------------------------------------------------------------------------------


def vp_time_and_sigma():
    """The VP schedule fitted to EDM's sigma range [0.002, 80] with t_eps = 1e-3 (float64)."""
    beta_d = 2 * (math.log(0.002**2 + 1) / 1e-3 - math.log(80.0**2 + 1)) / (1e-3 - 1)
    beta_min = math.log(80.0**2 + 1) - 0.5 * beta_d

    def time_of(sigma):
        return (math.sqrt(beta_min**2 + 2 * beta_d * math.log(sigma**2 + 1)) - beta_min) / beta_d

    def dsigma_dt(t):
        sigma = math.sqrt(math.expm1(0.5 * beta_d * t * t + beta_min * t))
        return (beta_min + beta_d * t) * (1 + sigma**2) / (2 * sigma)

    return time_of, dsigma_dt


def deis_weight(times, j, a, b, dsigma_dt):
    def integrand(t):
        basis = 1.0
        for k, tk in enumerate(times):
            if k != j:
                basis *= (t - tk) / (times[j] - tk)
        return basis * dsigma_dt(t)

    return integrate.quad(integrand, a, b, epsabs=0, epsrel=1e-10)[0]


def test_deis_steps_integrate_the_t_interpolated_derivative_against_dsigma():
    s = [8.0, 5.0, 3.0, 1.8, 1.0]
    x = start(4)
    model = Recorder()
    out = MULTISTEP_SAMPLERS["deis"](model, x, f64(s))
    xs = [c[0] for c in model.calls] + [out]
    d = [d_of(xs[i], s[i]) for i in range(4)]
    time_of, dsigma_dt = vp_time_and_sigma()
    t = [time_of(v) for v in s]
    # sanity of the mapping: the weights of one step sum to the sigma span (sum of basis = 1)
    span = sum(deis_weight(t[1::-1], j, t[1], t[2], dsigma_dt) for j in range(2))
    assert span == pytest.approx(s[2] - s[1])
    assert torch.allclose(xs[1], xs[0] + (s[1] - s[0]) * d[0], rtol=1e-12, atol=1e-12)
    for i in (1, 2, 3):
        order = min(i + 1, 3)
        nodes = [t[i - k] for k in range(order)]
        weights = [deis_weight(nodes, j, t[i], t[i + 1], dsigma_dt) for j in range(order)]
        expected = xs[i] + sum(w * d[i - j] for j, w in enumerate(weights))
        # ComfyUI's weights are a float32 10,000-point sum (both ends, step span / 10,000), not the
        # exact integral: a few 1e-6 of the step here. Lagrange weights in sigma (lms) miss by > 3e-3.
        step = (xs[i + 1] - xs[i]).abs().max()
        assert (xs[i + 1] - expected).abs().max() <= 5e-5 * step, i


def test_deis_step_to_zero_is_euler():
    s = [4.0, 2.0, 1.0, 0.0]
    x = start(5)
    model = Recorder()
    out = MULTISTEP_SAMPLERS["deis"](model, x, f64(s))
    last_x = model.calls[-1][0]
    assert torch.allclose(out, last_x + (0.0 - 1.0) * d_of(last_x, 1.0), rtol=1e-12, atol=1e-12)


# ---- uni_pc ------------------------------------------------------------------------------------------


def unipc_by_hand(x, s, variant):
    """ComfyUI's UniPC on three steps [s0, s1, s2, 0], written out in the VE view (alpha cancels):
    order = min(3, steps - 1) = 2; step 1: Euler predictor + order-1 corrector (rho 1/2); step 2:
    order-2 predictor (rho 1/2) + order-2 corrector (2x2 solve); step 3: Euler to sigma 0.001."""

    def b_of(hh):
        return hh if variant == "bh1" else math.expm1(hh)

    def euler(x, s_from, s_to, x0):
        return (s_to / s_from) * x - (s_to / s_from - 1) * x0

    def D(x, sigma):
        return x / (1 + sigma**2)

    m0 = D(x, s[0])
    # step 1
    hh = math.log(s[1] / s[0])
    x_pred = euler(x, s[0], s[1], m0)
    m1 = D(x_pred, s[1])
    x1 = x_pred - b_of(hh) * 0.5 * (m1 - m0)
    # step 2
    hh = math.log(s[2] / s[1])
    # r1 = (lambda(s0) - lambda(s1)) / (lambda(s2) - lambda(s1)) with lambda = -log sigma (negative)
    r1 = math.log(s[1] / s[0]) / math.log(s[1] / s[2])
    slope = (m0 - m1) / r1
    base = euler(x1, s[1], s[2], m1)
    x_pred = base - b_of(hh) * 0.5 * slope
    m2 = D(x_pred, s[2])
    phi = math.expm1(hh) / hh - 1
    b1 = phi / b_of(hh)
    b2 = (phi / hh - 0.5) * 2 / b_of(hh)
    rho = np.linalg.solve(np.array([[1.0, 1.0], [r1, 1.0]]), np.array([b1, b2]))
    x2 = base - b_of(hh) * (rho[0] * slope + rho[1] * (m2 - m1))
    # step 3: first order to 0.001, no model call
    return euler(x2, s[2], 0.001, m2)


@pytest.mark.parametrize("name,variant", [("uni_pc", "bh1"), ("uni_pc_bh2", "bh2")])
def test_unipc_three_steps_match_the_hand_written_solver(name, variant):
    s = [6.0, 2.5, 0.9, 0.0]
    x = start(6)
    sigmas = f64(s)
    model = Recorder()
    out = MULTISTEP_SAMPLERS[name](model, x, sigmas)
    assert len(model.calls) == 3
    assert sigmas[-1] == 0  # the caller's sigmas are not modified
    assert torch.allclose(out, unipc_by_hand(x, s, variant), rtol=1e-9, atol=1e-9)


def test_unipc_variants_differ_and_bh2_is_not_bh1():
    s = f64([6.0, 2.5, 0.9, 0.0])
    x = start(7)
    a = MULTISTEP_SAMPLERS["uni_pc"](analytic, x, s)
    b = MULTISTEP_SAMPLERS["uni_pc_bh2"](analytic, x, s)
    assert (a - b).abs().max() > 1e-6


def test_unipc_single_step_is_one_first_order_step():
    s0 = 3.0
    x = start(8)
    model = Recorder()
    out = MULTISTEP_SAMPLERS["uni_pc"](model, x, f64([s0, 0.0]))
    assert len(model.calls) == 1
    expected = (0.001 / s0) * x + (1 - 0.001 / s0) * x / (1 + s0**2)
    assert torch.allclose(out, expected, rtol=1e-9, atol=1e-9)


# ---- all samplers ------------------------------------------------------------------------------------


def euler(model, x, sigmas):
    s_in = x.new_ones(x.shape[0])
    for i in range(len(sigmas) - 1):
        x = x + (sigmas[i + 1] - sigmas[i]) * (x - model(x, sigmas[i] * s_in)) / sigmas[i]
    return x


def relative_error(fn, n):
    sigmas = karras(n + 1, 0.1, 10.0)
    x = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    exact = x * math.sqrt(1 + sigmas[-1] ** 2) / math.sqrt(1 + sigmas[0] ** 2)
    return ((fn(analytic, x, sigmas) - exact).abs() / exact.abs()).max().item()


def test_euler_reference_is_first_order():
    e32, e64 = relative_error(euler, 32), relative_error(euler, 64)
    assert 1.8 < e32 / e64 < 2.2


@pytest.mark.parametrize("name", NAMES)
def test_error_falls_at_least_at_second_order(name):
    # Every one starts (lms, ipndm, deis) or ends (uni_pc) with a first-order step whose local error is
    # O(h^2), so the global order is at least 2: halving the step must divide the error by ~4 or more,
    # against Euler's 2.
    # ipndm_v's default order 4 carries diff-sampler's inexact order-4 weights (see above) and converges
    # erratically; its orders up to 3 are proper variable-step rules.
    options = {"max_order": 3} if name == "ipndm_v" else {}

    def fn(model, x, sigmas):
        return MULTISTEP_SAMPLERS[name](model, x, sigmas, **options)

    e32, e64, e128 = (relative_error(fn, n) for n in (32, 64, 128))
    assert e32 / e64 > 3.5 and e64 / e128 > 3.5, (e32, e64, e128)
    assert e64 < relative_error(euler, 64) / 50


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("final_zero", [True, False])
def test_one_model_call_per_step(name, final_zero):
    sigmas = f64([7.0, 4.0, 2.0, 1.0, 0.5, 0.2] + ([0.0] if final_zero else []))
    model = Recorder()
    MULTISTEP_SAMPLERS[name](model, start(9), sigmas)
    assert len(model.calls) == len(sigmas) - 1
    called = [float(c[1][0]) for c in model.calls]
    assert called[0] == 7.0 and all(v > 0 for v in called)


@pytest.mark.parametrize("name", NAMES)
def test_callback_reports_each_step(name):
    # `denoised` is the output of that step's model call (for UniPC made at the predictor's point,
    # before the corrector moves x), `x` the state at `sigma`.
    sigmas = f64([7.0, 4.0, 2.0, 1.0, 0.0])
    seen = []
    model = Recorder()
    MULTISTEP_SAMPLERS[name](model, start(10), sigmas, callback=seen.append)
    assert [info["i"] for info in seen] == [0, 1, 2, 3]
    for info, (called_x, called_sigma, _) in zip(seen, model.calls):
        assert set(info) == {"x", "i", "sigma", "sigma_hat", "denoised"}
        assert float(info["sigma"]) == float(sigmas[info["i"]]) == float(called_sigma[0])
        assert info["x"].shape == called_x.shape
        assert torch.allclose(info["denoised"], analytic(called_x, called_sigma), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_batches_run_and_each_item_matches_running_alone(name):
    sigmas = with_zero(karras(7, 0.1, 10.0).to(torch.float32))
    x = start(11, (3, 4, 8, 6)).to(torch.float32)
    together = MULTISTEP_SAMPLERS[name](blur_then_shrink, x, sigmas)
    assert together.shape == x.shape and torch.isfinite(together).all()
    for k in range(3):
        alone = MULTISTEP_SAMPLERS[name](blur_then_shrink, x[k : k + 1], sigmas)
        assert torch.allclose(together[k : k + 1], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "name,options",
    [("lms", {"order": 0}), ("ipndm", {"max_order": 5}), ("ipndm_v", {"max_order": 0}),
     ("deis", {"deis_mode": "rhoab"}), ("deis", {"max_order": "3"}), ("lms", {"eta": 1.0}),
     ("uni_pc", {"order": 2})],
)
def test_bad_options_raise_value_error(name, options):
    with pytest.raises(ValueError, match="option|order|deis_mode"):
        MULTISTEP_SAMPLERS[name](analytic, start(), f64([2.0, 1.0, 0.0]), **options)


def test_unknown_option_message_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid options: max_order, deis_mode"):
        MULTISTEP_SAMPLERS["deis"](analytic, start(), f64([2.0, 1.0, 0.0]), eta=1.0)


def test_extra_args_reach_the_model():
    received = []

    def model(x, sigma, **kwargs):
        received.append(kwargs)
        return analytic(x, sigma)

    for name in NAMES:
        received.clear()
        MULTISTEP_SAMPLERS[name](model, start(), f64([3.0, 2.0, 1.0, 0.0]), extra_args={"seed": 7})
        assert received and all(kw == {"seed": 7} for kw in received), name
