"""Model parametrisations against the published formulas (docs/design.md §2), computed in float64."""

import math

import numpy as np
import pytest
import torch

from diffdiff.sampling import KINDS, flux_mu, model_sampling


def reference_sd_table() -> np.ndarray:
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas)
    return np.sqrt((1 - alphas_cumprod) / alphas_cumprod)


@pytest.mark.parametrize("kind", ["sd1", "sd2", "sd2-v", "sdxl"])
def test_discrete_table_matches_scaled_linear_betas(kind):
    ms = model_sampling(kind)
    assert ms.sigmas.dtype == torch.float32 and ms.sigmas.shape == (1000,)
    np.testing.assert_allclose(ms.sigmas.numpy(), reference_sd_table(), rtol=1e-6)
    assert float(ms.sigma_min) == pytest.approx(0.029167, abs=1e-6)
    assert float(ms.sigma_max) == pytest.approx(14.6146, abs=1e-4)
    assert ms.prediction == ("v" if kind == "sd2-v" else "eps")


def test_discrete_timestep_is_nearest_entry_in_log_sigma():
    ms = model_sampling("sd1")
    table = reference_sd_table()
    assert torch.equal(ms.timestep(torch.tensor(table[[0, 17, 500, 999]], dtype=torch.float32)),
                       torch.tensor([0, 17, 500, 999]))
    # a σ a quarter of the way (in log) from entry 300 to 301 belongs to 300; three quarters to 301
    low, high = math.log(table[300]), math.log(table[301])
    assert int(ms.timestep(torch.tensor(math.exp(0.75 * low + 0.25 * high)))) == 300
    assert int(ms.timestep(torch.tensor(math.exp(0.25 * low + 0.75 * high)))) == 301
    assert ms.timestep(torch.tensor([1e-4, 1e4])).tolist() == [0, 999]


def test_discrete_sigma_interpolates_log_sigma():
    ms = model_sampling("sd1")
    table = reference_sd_table()
    assert float(ms.sigma(torch.tensor(250.0))) == pytest.approx(table[250], rel=1e-5)
    expected = math.exp(0.3 * math.log(table[40]) + 0.7 * math.log(table[41]))
    assert float(ms.sigma(torch.tensor(40.7))) == pytest.approx(expected, rel=1e-5)
    assert float(ms.sigma(torch.tensor(5000.0))) == pytest.approx(table[-1], rel=1e-6)  # clamped


def test_percent_to_sigma():
    ms = model_sampling("sd1")
    assert ms.percent_to_sigma(0.0) == 999999999.9 and ms.percent_to_sigma(1.0) == 0.0
    assert ms.percent_to_sigma(0.5) == pytest.approx(float(ms.sigma(torch.tensor(499.5))), rel=1e-6)
    sd3 = model_sampling("sd3")
    assert sd3.percent_to_sigma(0.0) == 1.0 and sd3.percent_to_sigma(1.0) == 0.0
    assert sd3.percent_to_sigma(0.5) == pytest.approx(3 * 0.5 / (1 + 2 * 0.5))
    flux = model_sampling("flux", shift=1.0)
    assert flux.percent_to_sigma(0.75) == pytest.approx(math.e / (math.e + 1 / 0.25 - 1))


def test_sd3_flow_schedule():
    ms = model_sampling("sd3")
    assert ms.prediction == "flow" and ms.sigmas.shape == (1000,) and ms.sigmas.dtype == torch.float32
    t = np.arange(1, 1001) / 1000
    np.testing.assert_allclose(ms.sigmas.numpy(), 3 * t / (1 + 2 * t), rtol=1e-6)
    assert float(ms.sigma_max) == pytest.approx(1.0)
    assert float(ms.timestep(torch.tensor(0.25))) == pytest.approx(250.0)
    assert float(ms.sigma(torch.tensor(500.0))) == pytest.approx(0.75, rel=1e-6)
    shifted = model_sampling("sd3", shift=1.0)
    assert float(shifted.sigma(torch.tensor(500.0))) == pytest.approx(0.5)


def test_flux_schedule():
    ms = model_sampling("flux")
    assert ms.prediction == "flow" and ms.sigmas.shape == (10000,)
    t = np.arange(1, 10001) / 10000
    mu = 1.15
    np.testing.assert_allclose(ms.sigmas.numpy(), np.exp(mu) / (np.exp(mu) + 1 / t - 1), rtol=1e-5)
    assert float(ms.sigma_max) == 1.0
    assert float(ms.timestep(torch.tensor(0.3))) == pytest.approx(0.3)
    other = model_sampling("flux", shift=0.5)
    assert float(other.sigma(torch.tensor(0.5))) == pytest.approx(math.exp(0.5) / (math.exp(0.5) + 1))


def test_flux_mu_from_image_size():
    assert flux_mu(1024, 1024) == pytest.approx(1.15)  # 4096 tokens
    assert flux_mu(256, 256) == pytest.approx(0.5)  # 256 tokens
    assert flux_mu(512, 512) == pytest.approx(0.5 + 0.65 * (1024 - 256) / 3840)
    with pytest.raises(ValueError, match="size"):
        flux_mu(0, 512)


@pytest.fixture
def tensors():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)


def test_eps_parametrisation(tensors):
    z, n = tensors
    ms = model_sampling("sd1")
    sigma = torch.tensor([2.0, 0.5])
    s = sigma.view(2, 1, 1, 1)
    x = z + s * n
    torch.testing.assert_close(ms.calculate_input(sigma, x), x / torch.sqrt(s**2 + 1))
    torch.testing.assert_close(ms.calculate_denoised(sigma, n, x), z)  # the true ε gives back z
    torch.testing.assert_close(ms.noise_scaling(sigma, n, z), x)
    torch.testing.assert_close(ms.noise_scaling(sigma, n, z, max_denoise=True), z + n * torch.sqrt(1 + s**2))
    assert ms.inverse_noise_scaling(sigma, x) is x


def test_v_parametrisation_recovers_clean_latent(tensors):
    z, n = tensors
    ms = model_sampling("sd2-v")
    sigma = torch.tensor([3.0, 0.2])
    s = sigma.view(2, 1, 1, 1)
    alpha, sigma_vp = 1 / torch.sqrt(1 + s**2), s / torch.sqrt(1 + s**2)
    v = alpha * n - sigma_vp * z  # v-target in the variance-preserving formulation
    torch.testing.assert_close(ms.calculate_denoised(sigma, v, z + s * n), z)


def test_flow_parametrisation(tensors):
    z, n = tensors
    for kind in ("sd3", "flux"):
        ms = model_sampling(kind)
        sigma = torch.tensor([0.8, 0.3])
        s = sigma.view(2, 1, 1, 1)
        x = s * n + (1 - s) * z
        torch.testing.assert_close(ms.noise_scaling(sigma, n, z), x)
        torch.testing.assert_close(ms.noise_scaling(sigma, n, z, max_denoise=True), x)
        assert ms.calculate_input(sigma, x) is x
        torch.testing.assert_close(ms.calculate_denoised(sigma, n - z, x), z)  # velocity n − z
        torch.testing.assert_close(ms.inverse_noise_scaling(sigma, x), x / (1 - s))
        assert torch.equal(ms.inverse_noise_scaling(torch.tensor(0.0), x), x)


def test_unknown_kind_and_bad_parameters():
    with pytest.raises(ValueError, match="sd1.*flux"):
        model_sampling("sd4")
    with pytest.raises(ValueError, match="sd3"):
        model_sampling("sd3", mu=2.0)
    assert set(KINDS) == {"sd1", "sd2", "sd2-v", "sdxl", "sd3", "flux", "flux-schnell", "flux-fill",
                          "z-image"}
