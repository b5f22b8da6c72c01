"""Schedulers against values derived from their published formulas (schedules: see docs/design.md), every
kind, steps = 1 too."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from diffdiff.sampling import KINDS, SCHEDULERS, calculate_sigmas, model_sampling, run_sigmas


def table(ms) -> np.ndarray:
    return ms.sigmas.double().numpy()


def sigma_of_timestep(ms, t: np.ndarray) -> np.ndarray:
    """σ(t) from the formulas: log-σ interpolation of the table (discrete), shift formulas (flow)."""
    if ms.prediction == "flow" and len(ms.sigmas) == 1000:  # sd3 (timestep = 1000·σ), z-image (σ)
        u = t / 1000
        return ms.shift * u / (1 + (ms.shift - 1) * u)
    if ms.prediction == "flow":  # flux (μ 1.15), flux schnell (μ 1), timestep = σ
        return np.exp(ms.shift) / (np.exp(ms.shift) + 1 / t - 1)
    return np.exp(np.interp(t, np.arange(1000), np.log(table(ms))))


def timestep_of(ms, sigma: float) -> float:
    if ms.prediction == "flow":
        return sigma * (1000 if len(ms.sigmas) == 1000 else 1)
    return float(np.argmin(np.abs(np.log(sigma) - np.log(table(ms)))))


def expected(ms, name: str, steps: int) -> np.ndarray:
    s = table(ms)
    m = len(s)
    lo, hi = s[0], s[-1]
    if name == "simple":
        body = [s[m - 1 - int(k * m / steps)] for k in range(steps)]
    elif name in ("normal", "sgm_uniform"):
        t0, t1 = timestep_of(ms, hi), timestep_of(ms, lo)
        ts = np.linspace(t0, t1, steps) if name == "normal" else np.linspace(t0, t1, steps + 1)[:-1]
        body = list(sigma_of_timestep(ms, ts))
    elif name == "karras":
        u = np.linspace(0, 1, steps)
        body = list((hi ** (1 / 7) + u * (lo ** (1 / 7) - hi ** (1 / 7))) ** 7)
    elif name == "exponential":
        body = list(np.exp(np.linspace(np.log(hi), np.log(lo), steps)))
    elif name == "ddim_uniform":
        body = [s[i] for i in range(1, m, m // steps)][::-1]
    elif name == "beta":
        idx = np.rint(scipy.stats.beta.ppf(1 - np.arange(steps) / steps, 0.6, 0.6) * (m - 1)).astype(int)
        body = [s[i] for k, i in enumerate(idx) if k == 0 or i != idx[k - 1]]
    elif name == "kl_optimal":
        u = np.arange(steps) / max(steps - 1, 1)
        body = list(np.tan(u * np.arctan(lo) + (1 - u) * np.arctan(hi)))
    elif name == "linear_quadratic":
        body = list(hi * (1 - noise_levels_linear_quadratic(steps)))
    return np.array(body + [0.0])


def noise_levels_linear_quadratic(steps: int, threshold: float = 0.025) -> np.ndarray:
    """Mochi: noise rises linearly to `threshold` over steps//2, then along the quadratic q with
    q(L) = threshold, q'(L) = threshold / L (smooth join) and q(steps) = 1."""
    if steps == 1:
        return np.array([0.0])
    lin = steps // 2
    a, b, c = np.linalg.solve(np.array([[lin**2, lin, 1], [2 * lin, 1, 0], [steps**2, steps, 1]], float),
                              np.array([threshold, threshold / lin, 1.0]))
    i = np.arange(steps)
    return np.where(i < lin, i * threshold / lin, a * i**2 + b * i + c)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", SCHEDULERS)
@pytest.mark.parametrize("steps", [1, 2, 7, 20])
def test_scheduler_values(kind, name, steps):
    ms = model_sampling(kind)
    sigmas = calculate_sigmas(ms, name, steps)
    assert sigmas.dtype == torch.float32 and sigmas.ndim == 1
    assert float(sigmas[-1]) == 0.0 and torch.isfinite(sigmas).all()
    np.testing.assert_allclose(sigmas.double().numpy(), expected(ms, name, steps), rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["sd1", "flux"])
def test_one_step_schedules_start_at_sigma_max(kind):
    ms = model_sampling(kind)
    for name in SCHEDULERS:
        sigmas = calculate_sigmas(ms, name, 1)
        assert len(sigmas) == 2 and float(sigmas[1]) == 0.0
        top = float(ms.sigmas[1]) if name == "ddim_uniform" else float(ms.sigma_max)
        assert float(sigmas[0]) == pytest.approx(top, rel=1e-5), name


def test_ddim_uniform_can_give_an_extra_step_as_comfyui():
    # 1000 // 7 = 142: entries 1, 143, ..., 995 are eight σ, so eight steps for seven asked
    assert len(calculate_sigmas(model_sampling("sd1"), "ddim_uniform", 7)) == 9


def test_karras_is_not_the_table():
    ms = model_sampling("sd1")
    sigmas = calculate_sigmas(ms, "karras", 3)
    mid = ((14.614641 ** (1 / 7) + 0.029167 ** (1 / 7)) / 2) ** 7
    assert float(sigmas[1]) == pytest.approx(mid, rel=1e-4)


def test_run_sigmas_denoise_keeps_the_tail():
    ms = model_sampling("sd1")
    full = calculate_sigmas(ms, "karras", int(10 / 0.6))
    assert torch.equal(run_sigmas(ms, "karras", 10, 0.6), full[-11:])
    assert torch.equal(run_sigmas(ms, "karras", 10, 1.0), calculate_sigmas(ms, "karras", 10))
    assert len(run_sigmas(ms, "normal", 4, 0.3)) == 5


@pytest.mark.parametrize("sampler", ["dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"])
def test_run_sigmas_drops_the_penultimate_sigma(sampler):
    ms = model_sampling("sd1")
    longer = calculate_sigmas(ms, "normal", 9)
    sigmas = run_sigmas(ms, "normal", 8, 1.0, sampler)
    assert len(sigmas) == 9
    assert torch.equal(sigmas, torch.cat([longer[:-2], longer[-1:]]))
    tail = run_sigmas(ms, "normal", 8, 0.5, sampler)
    longer16 = calculate_sigmas(ms, "normal", 17)
    assert torch.equal(tail, torch.cat([longer16[:-2], longer16[-1:]])[-9:])


def test_nine_schedulers_and_kl_optimal_takes_one_step():
    ms = model_sampling("sd1")
    assert len(SCHEDULERS) == 9 and math.isfinite(float(calculate_sigmas(ms, "kl_optimal", 1)[0]))
