"""The CFG++ samplers through a real CFGDenoiser: hand-written steps with the guided x0 G and the
unconditional x0 U, the `with_uncond` hook through the tiler, the gate and the pipeline's watch links, and
the plain samplers they reduce to when there is no CFG (uncond = x0).

The inner network is analytic: x0 = x / (1 + σ²) + mean(context), so cond (context 0.6) and uncond
(context −0.3) differ by a constant and G = U + cfg·(C − U).
"""

from __future__ import annotations

import importlib
import math

import pytest
import torch
import torch.nn.functional as F
from doubles import FlowSampling, Recorder, analytic, analytic_then_blur, fixed_noise, karras, with_zero
from test_tiles_denoiser import interior_mask

from diffdiff.models.denoiser import CFGDenoiser
from diffdiff.pipeline.watch import FiniteGuard, NetworkCalls
from diffdiff.sampling import SAMPLERS, DifferentialGate, model_sampling, sample
from diffdiff.sampling.samplers.common import get_ancestral_step
from diffdiff.tiles import TiledDenoiser, plan_grid

sample_module = importlib.import_module("diffdiff.sampling.sample")
CFG_PP = ("euler_cfg_pp", "euler_ancestral_cfg_pp", "dpmpp_2m_cfg_pp", "dpmpp_2s_ancestral_cfg_pp",
          "res_multistep_cfg_pp", "res_multistep_ancestral_cfg_pp", "gradient_estimation_cfg_pp")
CFG = 3.0
X = torch.tensor([[[[-3.0, -0.5], [1.25, 4.0]]]], dtype=torch.float64)
S0, S1, S2 = 3.0, 1.2, 0.4


def context(value, dtype=torch.float64):
    return {"encoder_hidden_states": torch.full((1, 77, 4), value, dtype=dtype)}


def shrink_plus_context(x, sigma, encoder_hidden_states=None, **kwargs):
    return x / (1 + sigma.view(-1, 1, 1, 1) ** 2) + encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)


def flow_plus_context(x, sigma, encoder_hidden_states=None, **kwargs):
    s = sigma.view(-1, 1, 1, 1)
    return (1 - s) * x / ((1 - s) ** 2 + s**2) + encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)


def guided_model(inner=shrink_plus_context, cfg=CFG, flow=False, dtype=torch.float64):
    network = Recorder(inner, model_sampling=FlowSampling()) if flow else Recorder(inner)
    return CFGDenoiser(network, context(0.6, dtype), context(-0.3, dtype), cfg)


def C(x, s):
    return x / (1 + s**2) + 0.6


def U(x, s):
    return x / (1 + s**2) - 0.3


def G(x, s):
    return U(x, s) + CFG * (C(x, s) - U(x, s))


def run(name, sigmas, model=None, **options):
    model = guided_model() if model is None else model
    return SAMPLERS[name](model, X.clone(), torch.tensor(sigmas, dtype=torch.float64), **options)


# ---------------------------------------------------------------- the hook in CFGDenoiser


def test_cfg_denoiser_stacks_guided_and_uncond_x0_in_one_call():
    model = guided_model()
    sigma = torch.full((1,), S0, dtype=torch.float64)
    both = model(X, sigma, with_uncond=True)
    assert both.shape == (1, 2, 2, 2) and model.inner_calls == 1 and len(model.inner.calls) == 1
    torch.testing.assert_close(both[:, :1], G(X, S0))
    torch.testing.assert_close(both[:, 1:], U(X, S0))
    torch.testing.assert_close(model(X, sigma), G(X, S0))  # normal calls unchanged


def test_cfg_one_still_runs_the_uncond_branch_when_asked():
    model = guided_model(cfg=1.0)
    sigma = torch.full((1,), S0, dtype=torch.float64)
    both = model(X, sigma, with_uncond=True)
    assert model.inner.calls[-1].x.shape[0] == 2  # cond and uncond batched (disable_cfg1_optimization)
    torch.testing.assert_close(both[:, 1:], U(X, S0))
    torch.testing.assert_close(both[:, :1], U(X, S0) + 1.0 * (C(X, S0) - U(X, S0)))
    model(X, sigma)
    assert model.inner.calls[-1].x.shape[0] == 1  # normal samplers keep the cfg = 1 shortcut
    no_uncond = CFGDenoiser(Recorder(shrink_plus_context), context(0.6), None, 1.0)
    assert no_uncond(X, sigma, with_uncond=True).shape == X.shape  # x0 alone: read as uncond = x0


# ---------------------------------------------------------------- one and two steps by hand (eps)


def test_euler_cfg_pp_step():
    expected = G(X, S0) + S1 * (X - U(X, S0)) / S0
    torch.testing.assert_close(run("euler_cfg_pp", [S0, S1]), expected)


def test_euler_ancestral_cfg_pp_step_with_given_noise():
    z = torch.full_like(X, 0.7)
    sigma_down, sigma_up = get_ancestral_step(S0, S1)
    expected = G(X, S0) + sigma_down * (X - U(X, S0)) / S0 + z * sigma_up
    out = run("euler_ancestral_cfg_pp", [S0, S1], noise_sampler=fixed_noise(z))
    torch.testing.assert_close(out, expected)
    assert torch.equal(run("euler_ancestral_cfg_pp", [S0, 0.0]), G(X, S0))  # the last step lands on G


def test_dpmpp_2m_cfg_pp_two_steps():
    h0, h1 = math.log(S0 / S1), math.log(S1 / S2)
    x1 = G(X, S0) - math.exp(-h0) * U(X, S0) + math.exp(-h0) * X
    r = h0 / h1
    x2 = (G(x1, S1) - math.exp(-h1) * U(x1, S1) - math.expm1(-h1) / (2 * r) * (G(x1, S1) - U(X, S0))
          + math.exp(-h1) * x1)
    torch.testing.assert_close(run("dpmpp_2m_cfg_pp", [S0, S1, S2]), x2)


def test_dpmpp_2s_ancestral_cfg_pp_step_uses_the_midpoint_uncond_and_adds_the_guidance():
    h = math.log(S0 / S1)
    s_mid = S0 * math.exp(-h / 2)
    x_mid = (s_mid / S0) * X - math.expm1(-h / 2) * U(X, S0)
    expected = (S1 / S0) * X - math.expm1(-h) * U(x_mid, s_mid) + (G(X, S0) - U(X, S0))
    model = guided_model()
    out = SAMPLERS["dpmpp_2s_ancestral_cfg_pp"](model, X.clone(), torch.tensor([S0, S1], dtype=torch.float64),
                                                eta=0.0)
    torch.testing.assert_close(out, expected)
    assert len(model.inner.calls) == 2


def test_res_multistep_cfg_pp_two_steps():
    x1 = G(X, S0) + (X - U(X, S0)) / S0 * S1
    h = math.log(S1 / S2)
    c2 = -math.log(S0 / S1) / h  # (t_prev − t_old) / h, t_old = −log σ_down of step 0 = −log S1
    phi1 = math.expm1(-h) / -h
    phi2 = (phi1 - 1) / -h
    b1, b2 = phi1 - phi2 / c2, phi2 / c2
    x1g = x1 + (G(x1, S1) - U(x1, S1))
    x2 = math.exp(-h) * x1g + h * (b1 * U(x1, S1) + b2 * U(X, S0))
    torch.testing.assert_close(run("res_multistep_cfg_pp", [S0, S1, S2]), x2)
    z = torch.full_like(X, -0.2)
    sigma_down, sigma_up = get_ancestral_step(S0, S1)
    ancestral = G(X, S0) + (X - U(X, S0)) / S0 * sigma_down + z * sigma_up
    torch.testing.assert_close(run("res_multistep_ancestral_cfg_pp", [S0, S1], noise_sampler=fixed_noise(z)),
                               ancestral)


def test_gradient_estimation_cfg_pp_two_steps():
    d0 = (X - U(X, S0)) / S0
    x1 = G(X, S0) + d0 * S1
    d1 = (x1 - U(x1, S1)) / S1
    x2 = G(x1, S1) + d1 * S2 + (2.5 - 1) * (d1 - d0) * (S2 - S1)
    torch.testing.assert_close(run("gradient_estimation_cfg_pp", [S0, S1, S2], ge_gamma=2.5), x2)


# ---------------------------------------------------------------- flow models


def Cf(x, s):
    return (1 - s) * x / ((1 - s) ** 2 + s**2) + 0.6


def Uf(x, s):
    return Cf(x, s) - 0.9


def Gf(x, s):
    return Uf(x, s) + CFG * (Cf(x, s) - Uf(x, s))


def test_flow_euler_cfg_pp_uses_alpha_scaled_sigmas():
    s0, s1 = 0.8, 0.3
    expected = (1 - s1) * Gf(X, s0) + s1 * (X - (1 - s0) * Uf(X, s0)) / s0
    torch.testing.assert_close(run("euler_cfg_pp", [s0, s1], guided_model(flow_plus_context, flow=True)),
                               expected)


def test_flow_dpmpp_2s_ancestral_cfg_pp_takes_the_rectified_flow_step():
    s0, s1 = 0.8, 0.3
    z = torch.full_like(X, 0.5)
    sigma_down = s1 * s1 / s0

    def lam(s):
        return math.log((1 - s) / s)

    sigma_s = 1 / (math.exp((lam(s0) + lam(sigma_down)) / 2) + 1)
    u = (sigma_s / s0) * X + (1 - sigma_s / s0) * Uf(X, s0)
    x_down = (sigma_down / s0) * X + (1 - sigma_down / s0) * Uf(u, sigma_s)
    ratio = (1 - s1) / (1 - sigma_down)
    renoise = math.sqrt(s1**2 - sigma_down**2 * ratio**2)
    expected = ratio * x_down + z * renoise + (1 - s1) * (Gf(X, s0) - Uf(X, s0))
    out = run("dpmpp_2s_ancestral_cfg_pp", [s0, s1], guided_model(flow_plus_context, flow=True),
              noise_sampler=fixed_noise(z))
    torch.testing.assert_close(out, expected)


# ---------------------------------------------------------------- no CFG: uncond = x0


@pytest.mark.parametrize("name,plain", [
    ("euler_cfg_pp", "euler"), ("euler_ancestral_cfg_pp", "euler_ancestral"), ("dpmpp_2m_cfg_pp", "dpmpp_2m"),
    ("dpmpp_2s_ancestral_cfg_pp", "dpmpp_2s_ancestral"), ("res_multistep_cfg_pp", "res_multistep"),
    ("res_multistep_ancestral_cfg_pp", "res_multistep_ancestral"),
    ("gradient_estimation_cfg_pp", "gradient_estimation"),
])
def test_without_cfg_each_reduces_to_its_plain_sampler(name, plain):
    x = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 10
    sigmas = with_zero(karras(7, 0.1, 10.0))
    ours = SAMPLERS[name](analytic, x.clone(), sigmas, extra_args={"seed": 3})
    torch.testing.assert_close(ours, SAMPLERS[plain](analytic, x.clone(), sigmas, extra_args={"seed": 3}))


@pytest.mark.parametrize("name,order",
                         [("euler_cfg_pp", 1), ("dpmpp_2m_cfg_pp", 2), ("res_multistep_cfg_pp", 2)])
def test_convergence_order(name, order):
    x0 = X * math.sqrt(1 + 10.0**2)
    exact = x0 * math.sqrt(1 + 0.05**2) / math.sqrt(1 + 10.0**2)
    errors = [(SAMPLERS[name](analytic, x0.clone(), karras(n + 1, 0.05, 10.0)) - exact).abs().max().item()
              for n in (16, 32)]
    assert 2**order * 0.8 < errors[0] / errors[1] < 2**order * 1.25, errors


# ---------------------------------------------------------------- tiles, gate and watch links


def pointwise(x, sigma, encoder_hidden_states=None, **kwargs):
    shift = encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)
    return torch.tanh(x) / (1 + sigma.view(-1, 1, 1, 1) ** 2) + shift


def local(x, sigma, encoder_hidden_states=None, **kwargs):
    blur = F.avg_pool2d(x, 5, 1, 2, count_include_pad=True)
    shift = encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)
    return blur / (1 + sigma.view(-1, 1, 1, 1) ** 2) + shift


def test_the_tiler_blends_the_uncond_x0_like_the_guided_x0():
    x = torch.randn(2, 4, 30, 26, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.5, 3.0])
    tiles = plan_grid(30, 26, (16, 12), 4)
    for inner, exact_everywhere in ((pointwise, True), (local, False)):
        model = guided_model(inner, dtype=torch.float32)
        untiled = model(x, sigma, with_uncond=True)
        tiled = TiledDenoiser(model, tiles, blend="mixture", tile_batch=3)(x, sigma, with_uncond=True)
        assert tiled.shape == (2, 8, 30, 26)
        error = (tiled - untiled).abs()
        if exact_everywhere:
            assert error.max() <= 1e-5
        else:  # away from tile edges both halves are exact; near them both carry the same blending error
            interior = torch.from_numpy(interior_mask(tiles, 30, 26))
            assert interior.float().mean() > 0.3
            assert error[..., interior].max() <= 1e-5 and error.max() > 1e-3
            torch.testing.assert_close(tiled[:, :4] - tiled[:, 4:], untiled[:, :4] - untiled[:, 4:])


@pytest.mark.parametrize("name", CFG_PP)
def test_tiled_and_untiled_runs_agree_for_a_pointwise_network(name):
    z = torch.randn(1, 4, 20, 18, generator=torch.Generator().manual_seed(4))
    ms = model_sampling("sd1")
    settings = {"model_sampling": ms, "sampler": name, "scheduler": "karras", "steps": 5, "seed": 1}
    model = guided_model(pointwise, dtype=torch.float32)
    untiled = sample(model, z, **settings)
    tiled = sample(TiledDenoiser(model, plan_grid(20, 18, 10, 4)), z, **settings)
    torch.testing.assert_close(tiled, untiled, rtol=1e-5, atol=1e-4)


def test_the_gate_holds_both_halves_and_passes_the_keyword_down():
    ms = model_sampling("sd1")
    latent = torch.randn(1, 4, 1, 4, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(1, 4, 1, 4, generator=torch.Generator().manual_seed(2))
    sigmas = torch.tensor([14.6, 5.0, 1.0, 0.0])
    model = guided_model(dtype=torch.float32)
    gate = DifferentialGate(model, torch.tensor([[0.0, 0.3, 0.7, 1.0]]), latent, noise, sigmas, ms)
    sigma = sigmas[1] * torch.ones(1)
    out = gate(torch.full_like(latent, 2.0), sigma, seed=5, with_uncond=True)
    held = ~gate.active_mask(sigma).bool().expand_as(latent)
    assert out.shape == (1, 8, 1, 4) and held.any() and (~held).any()
    assert torch.equal(out[:, :4][held], latent[held]) and torch.equal(out[:, 4:][held], latent[held])
    assert not torch.equal(out[:, :4][~held], out[:, 4:][~held])  # active pixels: G and U differ


@pytest.mark.parametrize("kind", ["sd1", "sd3"])
@pytest.mark.parametrize("name", CFG_PP)
def test_gate_invariants_through_the_pipeline_links(name, kind, monkeypatch):
    ms = model_sampling(kind)
    inner = flow_plus_context if kind == "sd3" else shrink_plus_context
    model = NetworkCalls(FiniteGuard(guided_model(inner, flow=kind == "sd3", dtype=torch.float32)))
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    smap = torch.linspace(0, 1, 8).repeat(8, 1)
    settings = {"model_sampling": ms, "sampler": name, "scheduler": "normal", "steps": 5, "seed": 2}
    plain = sample(model, z, **settings)
    assert torch.equal(sample(model, z, **settings, strength_map=torch.ones(8, 8)), plain)
    gated = sample(model, z, **settings, strength_map=smap)
    assert torch.equal(gated[..., 0], z[..., 0]) and not torch.equal(gated[..., -1], z[..., -1])
    # without the final restore the gate alone brings held pixels back to z (uncond is held too)
    monkeypatch.setattr(sample_module, "restore_held_pixels", lambda out, latent, keep_mask: out)
    alone = sample(model, z, **settings, strength_map=smap)
    torch.testing.assert_close(alone[..., 0], z[..., 0], rtol=0, atol=1e-5)


def test_cfg_pp_runs_on_a_model_without_cfg_through_sample():
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    ms = model_sampling("sd1")
    settings = {"model_sampling": ms, "scheduler": "normal", "steps": 6, "seed": 1}
    out = sample(analytic_then_blur, z, sampler="euler_cfg_pp", **settings)
    plain = sample(analytic_then_blur, z, sampler="euler", **settings)
    torch.testing.assert_close(out, plain, rtol=1e-4, atol=1e-4)
