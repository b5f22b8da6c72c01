"""ParametrisedNetwork (eps / v → x0) and CFGDenoiser (batched guidance, expansion) with fake networks."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from doubles import Recorder, cfg_probe

from diffdiff.models.denoiser import CFGDenoiser, ParametrisedNetwork, expand_to_batch
from diffdiff.sampling.parametrisation import model_sampling


def sd_sigma_table() -> np.ndarray:
    """The sd1 σ table (parametrisations: see docs/design.md): β = linspace(√0.00085, √0.012, 1000)²,
    σ_i = sqrt((1 − ᾱ_i)/ᾱ_i)."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas)
    return np.sqrt((1 - alphas_cumprod) / alphas_cumprod)


class FakeUNet(torch.nn.Module):
    """out = 0.5·input + t/1000 + mean(context); records what it was given."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1, dtype=dtype))
        self.calls = []

    @property
    def dtype(self):
        return self.weight.dtype

    def forward(self, sample, timestep, encoder_hidden_states=None, added_cond_kwargs=None):
        self.calls.append(SimpleNamespace(sample=sample, timestep=timestep, context=encoder_hidden_states,
                                          added=added_cond_kwargs))
        t = torch.as_tensor(timestep, dtype=sample.dtype).view(-1, 1, 1, 1)
        ctx = encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)
        return SimpleNamespace(sample=0.5 * sample + t / 1000 + ctx)


def fake_output(model_input, t, context):
    return 0.5 * model_input + t / 1000 + context.mean()


@pytest.mark.parametrize("kind", ["sd1", "sd2-v"])
def test_parametrised_network_matches_formulas(kind):
    table = sd_sigma_table()
    t_index = 500
    sigma = float(np.float32(table[t_index]))
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    context = torch.full((1, 77, 16), 0.25)
    unet = FakeUNet()
    network = ParametrisedNetwork(unet, model_sampling(kind))
    x0 = network(x, torch.full((2,), sigma), encoder_hidden_states=context, active_mask=None)

    scaled = x / (sigma**2 + 1) ** 0.5
    out = fake_output(scaled, t_index, context)
    if kind == "sd1":
        expected = x - sigma * out
    else:
        expected = x / (sigma**2 + 1) - out * sigma / (sigma**2 + 1) ** 0.5
    torch.testing.assert_close(x0, expected, rtol=1e-5, atol=1e-5)
    call = unet.calls[0]
    assert torch.as_tensor(call.timestep).tolist() == [t_index, t_index]
    assert call.context.shape == (2, 77, 16)  # expanded from batch 1
    torch.testing.assert_close(call.sample, scaled)


def test_parametrised_network_runs_in_model_dtype_and_returns_x_dtype():
    unet = FakeUNet(dtype=torch.float64)
    network = ParametrisedNetwork(unet, model_sampling("sd1"))
    x = torch.ones(1, 4, 4, 4)
    x0 = network(x, torch.tensor([1.0]), encoder_hidden_states=torch.zeros(1, 77, 8, dtype=torch.float32))
    assert unet.calls[0].sample.dtype == torch.float64
    assert unet.calls[0].context.dtype == torch.float64
    assert x0.dtype == torch.float32


def test_parametrised_network_passes_added_cond_expanded():
    unet = FakeUNet()
    added = {"text_embeds": torch.ones(1, 12), "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])}
    network = ParametrisedNetwork(unet, model_sampling("sdxl"), added_cond=added)
    network(torch.zeros(3, 4, 4, 4), torch.full((3,), 2.0), encoder_hidden_states=torch.zeros(1, 77, 8))
    got = unet.calls[0].added
    assert got["text_embeds"].shape == (3, 12)
    assert got["time_ids"].shape == (3, 6)


def cfg_inner() -> Recorder:
    """x0 = x·σ + context mean, recording every call; its model_sampling is a sentinel."""
    return Recorder(cfg_probe, model_sampling="sentinel")


def test_cfg_one_makes_a_single_cond_call():
    inner = cfg_inner()
    cond = {"encoder_hidden_states": torch.full((1, 77, 4), 3.0)}
    uncond = {"encoder_hidden_states": torch.full((1, 77, 4), -1.0)}
    denoiser = CFGDenoiser(inner, cond, uncond, cfg=1.0)
    x = torch.ones(2, 4, 2, 2)
    x0 = denoiser(x, torch.full((2,), 0.5), active_mask=torch.ones(2, 1, 2, 2))
    assert len(inner.calls) == 1
    assert inner.calls[0].x.shape[0] == 2
    torch.testing.assert_close(x0, x * 0.5 + 3.0)
    assert denoiser.model_sampling == "sentinel"


def test_cfg_batches_cond_and_uncond_and_combines():
    inner = cfg_inner()
    cond = {"encoder_hidden_states": torch.full((1, 77, 4), 3.0)}
    uncond = {"encoder_hidden_states": torch.full((1, 77, 4), -1.0)}
    cfg = 7.5
    denoiser = CFGDenoiser(inner, cond, uncond, cfg=cfg)
    x = torch.ones(3, 4, 2, 2)
    x0 = denoiser(x, torch.full((3,), 0.5), seed=1)
    assert len(inner.calls) == 1
    assert inner.calls[0].x.shape[0] == 6
    x0_cond, x0_uncond = x * 0.5 + 3.0, x * 0.5 - 1.0
    torch.testing.assert_close(x0, x0_uncond + cfg * (x0_cond - x0_uncond))


def test_cfg_expands_image_conditioning_to_tiles():
    inner = cfg_inner()
    cond = {"encoder_hidden_states": torch.stack([torch.full((77, 4), 1.0), torch.full((77, 4), 2.0)])}
    denoiser = CFGDenoiser(inner, cond, None, cfg=1.0)
    x = torch.zeros(6, 4, 2, 2)  # 3 tiles × 2 images, image index fastest
    x0 = denoiser(x, torch.full((6,), 1.0))
    assert x0[:, 0, 0, 0].tolist() == [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]


def test_expand_to_batch_rejects_non_multiples():
    with pytest.raises(ValueError, match="does not divide"):
        expand_to_batch(torch.zeros(2, 3), 5)


def test_cfg_needs_uncond_above_one():
    with pytest.raises(ValueError, match="unconditional"):
        CFGDenoiser(cfg_inner(), {"encoder_hidden_states": torch.zeros(1, 1, 1)}, None, cfg=2.0)
