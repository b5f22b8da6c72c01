"""DifferentialGate: threshold rule, held pixels, modes, skipping, the latent-grid map (the gate rule: see
docs/design.md)."""

import pytest
import torch
from doubles import Recorder

from diffdiff.sampling import DifferentialGate, as_gate_map, calculate_sigmas, model_sampling

STRENGTHS = torch.tensor([[0.0, 0.3, 0.7, 1.0]])  # a 1 × 4 latent grid


def make_gate(mode="exact", gate_strength=1.0, skip=True, strength=STRENGTHS, inner=None, kind="sd1"):
    ms = model_sampling(kind)
    sigmas = calculate_sigmas(ms, "normal", 10)
    g = torch.Generator().manual_seed(0)
    latent = torch.randn(1, 4, 1, 4, generator=g)
    noise = torch.randn(1, 4, 1, 4, generator=g)
    inner = inner or Recorder()
    gate = DifferentialGate(inner, strength, latent, noise, sigmas, ms, mode=mode,
                            gate_strength=gate_strength, skip=skip)
    return gate, inner, latent, noise, sigmas, ms


def test_threshold_runs_from_one_to_zero_in_timestep_units():
    gate, _, _, _, sigmas, ms = make_gate()
    assert float(gate.threshold(sigmas[0])) == 1.0
    # σ_to = max(σ_min, σ_N = 0) = σ_min, timestep 0; σ_0 = σ_max, timestep 999
    assert float(gate.threshold(sigmas[-2])) == pytest.approx(0.0)
    t = int(ms.timestep(sigmas[4]))
    assert float(gate.threshold(sigmas[4] * torch.ones(1))) == pytest.approx(t / 999)


def test_active_pixels_by_mode():
    gate, _, _, _, sigmas, _ = make_gate("exact")
    assert gate.active_mask(sigmas[0]).flatten().tolist() == [0, 0, 0, 1]
    assert gate.active_mask(sigmas[-2]).flatten().tolist() == [0, 1, 1, 1]  # τ = 0: S = 0 still held
    comfy, _, _, _, _, _ = make_gate("comfy")
    assert comfy.active_mask(sigmas[-2]).flatten().tolist() == [1, 1, 1, 1]  # the anchor's last-call defect
    mask, _, _, _, _, _ = make_gate("mask")
    torch.testing.assert_close(mask.active_mask(sigmas[0]).flatten(), STRENGTHS.flatten())


def test_soft_gate_strength():
    gate, _, _, _, sigmas, _ = make_gate("comfy", gate_strength=0.5)
    # first call: binary [0, 0, 0, 1] blended half-half with S
    torch.testing.assert_close(gate.active_mask(sigmas[0]).flatten(), torch.tensor([0.0, 0.15, 0.35, 1.0]))
    zero, _, _, _, _, _ = make_gate("comfy", gate_strength=0.0)  # ComfyUI treats 0 as 1
    assert zero.active_mask(sigmas[0]).flatten().tolist() == [0, 0, 0, 1]
    exact, _, _, _, _, _ = make_gate("exact", gate_strength=0.5)
    assert exact.active_mask(sigmas[-2]).flatten().tolist()[0] == 0.0  # S = 0 stays held


def test_held_pixels_see_noised_latent_and_return_clean_latent():
    gate, inner, latent, noise, sigmas, _ = make_gate()
    sigma = sigmas[3] * torch.ones(1)
    x = torch.full_like(latent, 5.0)
    out = gate(x, sigma, seed=123, extra="kept")
    active = gate.active_mask(sigma).bool().expand_as(latent)
    seen_x, _, kwargs = inner.calls[0]
    assert "seed" not in kwargs and kwargs["extra"] == "kept" and "active_mask" not in kwargs
    assert torch.equal(seen_x[~active], (noise * sigmas[3] + latent)[~active])
    assert torch.equal(seen_x[active], x[active])
    assert torch.equal(out[~active], latent[~active])
    torch.testing.assert_close(out[active], (x / (1 + sigmas[3] ** 2))[active])


def test_active_mask_is_passed_to_inner_that_accepts_it():
    gate, inner, latent, _, sigmas, _ = make_gate(inner=Recorder(accepts_active_mask=True))
    gate(latent.clone(), sigmas[-2] * torch.ones(1))
    mask = inner.calls[0][2]["active_mask"]
    assert mask.shape == (1, 1, 1, 4) and mask.flatten().tolist() == [0, 1, 1, 1]


@pytest.mark.parametrize("mode", ["exact", "comfy"])
def test_skip_makes_no_call_and_changes_no_bit(mode):
    strength = torch.tensor([[0.0, 0.2, 0.4, 0.5]])  # nothing active while τ > 0.5
    skipping, inner, latent, _, sigmas, _ = make_gate(mode, strength=strength)
    full, full_inner, _, _, _, _ = make_gate(mode, strength=strength, skip=False)
    x = torch.randn(1, 4, 1, 4, generator=torch.Generator().manual_seed(5))
    for sigma in sigmas[:-1]:
        assert torch.equal(skipping(x, sigma * torch.ones(1)), full(x, sigma * torch.ones(1)))
    assert skipping.calls == full.calls == 10 and full.network_calls == 10
    assert skipping.network_calls == len(inner.calls) < 10
    assert torch.equal(skipping(x, sigmas[0] * torch.ones(1)), latent)


def test_map_is_reshaped_and_moved_not_resized():
    latent = torch.zeros(2, 4, 8, 8)
    grid = torch.rand(8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    shaped = as_gate_map(grid, latent)
    assert shaped.shape == (1, 1, 8, 8) and shaped.dtype == torch.float32
    assert torch.equal(shaped[0, 0], grid.float())
    assert as_gate_map(torch.ones(2, 8, 8), latent).shape == (2, 1, 8, 8)
    assert as_gate_map(torch.ones(2, 1, 8, 8), latent).shape == (2, 1, 8, 8)
    assert as_gate_map(torch.ones(1, 1, 8, 8), latent).shape == (1, 1, 8, 8)


def test_gate_exposes_model_sampling_and_works_for_flow():
    gate, inner, latent, noise, sigmas, ms = make_gate(kind="sd3")
    assert gate.model_sampling is ms
    sigma = sigmas[2] * torch.ones(1)
    gate(torch.zeros_like(latent), sigma)
    held = ~gate.active_mask(sigma).bool().expand_as(latent)
    expected = sigmas[2] * noise + (1 - sigmas[2]) * latent
    assert torch.equal(inner.calls[0][0][held], expected[held])
