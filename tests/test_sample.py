"""sample(): exact preservation for every sampler (by the gate itself, and after the final restore),
ComfyUI's defect in comfy mode, lossless skips, callbacks and stats."""

import importlib
import math

import pytest
import torch
from doubles import analytic, analytic_then_blur

from diffdiff.sampling import SAMPLERS, calculate_sigmas, model_sampling, prepare_noise, run_sigmas, sample
from diffdiff.sampling.samplers.unipc import FINAL_SIGMA, half_log_snr

sample_module = importlib.import_module("diffdiff.sampling.sample")  # the module, not the function
MS = model_sampling("sd1")

# Samplers whose last step (to σ = 0) returns the denoiser's x0 itself (``x = denoised``, or dpmpp_2m's
# 0·x + x0): where the gate hands back the input latent, so do they, bit for bit.
LAST_STEP_IS_X0 = {
    "euler_ancestral", "dpmpp_2m", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "lcm",
    "gradient_estimation", "seeds_2", "exp_heun_2_x0", "exp_heun_2_x0_sde", "lms", "ipndm", "ipndm_v",
}


def latent(batch=1, size=8, seed=3):
    return torch.randn(batch, 4, size, size, generator=torch.Generator().manual_seed(seed))


def ramp_map(size=8, peak=1.0):
    """Strength rising left to right from 0 to `peak`; the first column is 0."""
    return torch.linspace(0, peak, size).repeat(size, 1)


def run(den=analytic_then_blur, z=None, **options):
    settings = {"model_sampling": MS, "sampler": "euler", "scheduler": "normal", "steps": 6, "seed": 1}
    settings.update(options)
    return sample(den, latent() if z is None else z, **settings)


@pytest.mark.parametrize("denoise", [1.0, 0.6])
@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_strength_zero_pixels_are_bit_identical_for_every_sampler(sampler, denoise):
    z = latent()
    smap = ramp_map()
    out = run(z=z, sampler=sampler, denoise=denoise, strength_map=smap)
    assert torch.equal(out[..., :, 0], z[..., :, 0])
    assert not torch.equal(out[..., :, -1], z[..., :, -1])  # full-strength pixels did change
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("denoise", [1.0, 0.6])
@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_the_gate_alone_keeps_strength_zero_latents(sampler, denoise, monkeypatch):
    """Without sample()'s final restore: map-0 pixels are held at every call (the gate feeds the sampler
    x0 = z there), so the sampler solves x' = (x − z)/σ for them, whose solution ends at z when σ ends at 0.
    Ancestral noise added on the way is removed by the last step to σ = 0 like the rest of x − z."""
    monkeypatch.setattr(sample_module, "restore_held_pixels", lambda out, latent, keep_mask: out)
    z = latent()
    out = run(z=z, sampler=sampler, denoise=denoise, strength_map=ramp_map())
    held, kept = out[..., 0], z[..., 0]
    if sampler in LAST_STEP_IS_X0:
        assert torch.equal(held, kept)
    elif sampler in ("uni_pc", "uni_pc_bh2"):
        # ComfyUI's UniPC ends at σ = FINAL_SIGMA, not 0 (in float32 its λ = −log σ there is ln 1024, so
        # effectively at σ_end = 1/1024): held pixels keep the residual noise (x_0 − z)·σ_end/σ_0 of the
        # exact solution, up to float32 rounding.
        sigmas = run_sigmas(MS, "normal", 6, denoise, sampler)
        start = MS.noise_scaling(sigmas[0], prepare_noise(z, 1), z, sample_module.is_max_denoise(MS, sigmas))
        sigma_end = torch.exp(-half_log_snr(torch.tensor(FINAL_SIGMA)))
        residual = (start - z)[..., 0] * (sigma_end / sigmas[0])
        torch.testing.assert_close(held - kept, residual, rtol=5e-3, atol=1e-6)
    elif sampler in ("dpm_fast", "dpm_adaptive"):
        # ComfyUI runs DPM-Solver from σ_0 down to the last positive σ, not to 0: held pixels keep the exact
        # solution's residual (x_0 − z)·σ_{N−1}/σ_0.
        sigmas = run_sigmas(MS, "normal", 6, denoise, sampler)
        start = MS.noise_scaling(sigmas[0], prepare_noise(z, 1), z, sample_module.is_max_denoise(MS, sigmas))
        residual = (start - z)[..., 0] * (sigmas[-2] / sigmas[0])
        torch.testing.assert_close(held - kept, residual, rtol=1e-3, atol=1e-5)
    else:  # the last step reaches z through x and x − z (e.g. x + (0 − σ)·(x − z)/σ): up to float32 rounding
        torch.testing.assert_close(held, kept, rtol=0, atol=1e-5)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_uniform_map_of_one_is_no_map(sampler):
    plain = run(sampler=sampler, steps=5)
    gated = run(sampler=sampler, steps=5, strength_map=torch.ones(8, 8))
    assert torch.equal(plain, gated)


def test_mean_change_grows_with_strength():
    z = latent()
    changes = []
    for level in range(1, 11):
        out = run(z=z, steps=20, strength_map=torch.full((8, 8), level / 10), den=analytic)
        changes.append(float((out - z).abs().mean()))
    assert all(a < b for a, b in zip(changes, changes[1:])), changes


def test_comfy_mode_moves_strength_zero_pixels_at_the_last_call():
    """Held pixels follow Euler with x0 = z until the last call, where τ = 0 makes them active: the result
    there is D(x_{N−1}) with x_{N−1} = z + (σ_{N−1}/σ_0)·(x_0 − z) and x_0 = z + n·sqrt(1 + σ_0²)."""
    z = latent()
    smap = torch.zeros(8, 8)
    smap[:, 4:] = 1.0
    steps = 10
    out = run(den=analytic, z=z, steps=steps, strength_map=smap, gate="comfy")
    sigmas = calculate_sigmas(MS, "normal", steps).double()
    n = prepare_noise(z, 1).double()
    x0 = z.double() + n * math.sqrt(1 + float(sigmas[0]) ** 2)
    x_last = z.double() + float(sigmas[-2] / sigmas[0]) * (x0 - z.double())
    expected = x_last / (1 + float(sigmas[-2]) ** 2)
    torch.testing.assert_close(out[..., :4].double(), expected[..., :4], rtol=1e-4, atol=1e-5)
    moved = float((out[..., :4] - z[..., :4]).abs().mean())
    assert moved > 1e-3  # the anchor's defect: S = 0 pixels are not preserved
    exact = run(den=analytic, z=z, steps=steps, strength_map=smap, gate="exact")
    assert torch.equal(exact[..., :4], z[..., :4])


def test_skip_is_lossless_and_halves_the_calls():
    z = latent()
    half, full, no_skip = {}, {}, {}
    out_half = run(z=z, steps=20, strength_map=ramp_map(peak=0.5), stats=half)
    out_no_skip = run(z=z, steps=20, strength_map=ramp_map(peak=0.5), skip=False, stats=no_skip)
    run(z=z, steps=20, strength_map=ramp_map(peak=1.0), stats=full)
    assert torch.equal(out_half, out_no_skip)
    assert full["network_calls"] == 20 and no_skip["network_calls"] == 20
    # τ_i ≈ 1 − i/19 on the normal schedule: only calls 10..19 have τ ≤ 0.5
    assert half["network_calls"] == 10 and half["network_calls_without_skip"] == 20
    assert half["steps"] == 20


def test_skip_lossless_in_comfy_and_mask_modes_and_with_heun():
    for options in ({"gate": "comfy"}, {"gate": "mask"}, {"sampler": "heun"}):
        smap = ramp_map(peak=0.5) if options.get("gate") != "mask" else torch.zeros(8, 8)
        stats = {}
        skipped = run(strength_map=smap, stats=stats, **options)
        assert torch.equal(skipped, run(strength_map=smap, skip=False, **options))
        assert stats["network_calls"] < stats["network_calls_without_skip"]


def test_soft_gate_keeps_every_positive_pixel_active_so_nothing_is_skipped():
    stats = {}
    options = {"gate": "comfy", "gate_strength": 0.4, "strength_map": ramp_map(peak=0.5)}
    assert torch.equal(run(stats=stats, **options), run(skip=False, **options))
    assert stats["network_calls"] == stats["network_calls_without_skip"] == 6


def test_list_seeds_make_batch_items_equal_single_runs():
    z = latent(batch=2)
    smap = ramp_map()
    both = run(z=z, seed=[5, 9], strength_map=smap)
    alone = run(z=z[1:], seed=9, strength_map=smap)
    assert torch.equal(both[1:], alone)


def test_comfy_ddim_holds_pixels_with_seed_plus_one_noise():
    seen = []

    def recording(x, sigma, **kwargs):
        seen.append(x.clone())
        return analytic(x, sigma)

    z = latent()
    smap = torch.zeros(8, 8)
    smap[:, 4:] = 1.0
    sigmas = calculate_sigmas(MS, "normal", 4)
    for gate, seed_used in (("comfy", 8), ("exact", 7)):
        seen.clear()
        run(den=recording, z=z, sampler="ddim", steps=4, seed=7, strength_map=smap, gate=gate)
        torch.manual_seed(seed_used)
        held_noise = torch.randn(z.shape)
        assert torch.equal(seen[0][..., :4], (held_noise * sigmas[0] + z)[..., :4])


def test_flow_model_preserves_and_changes():
    z = latent()
    out = sample(analytic_then_blur, z, model_sampling=model_sampling("sd3"), sampler="euler",
                 scheduler="simple", steps=6, seed=2, strength_map=ramp_map())
    assert torch.equal(out[..., 0], z[..., 0]) and not torch.equal(out[..., -1], z[..., -1])


def test_callback_stats_and_model_sampling_reach_the_sampler(monkeypatch):
    seen = {}

    def probe_sampler(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
        seen["model_sampling"] = model.model_sampling
        seen["extra_args"] = extra_args
        denoised = model(x, sigmas[0] * x.new_ones(x.shape[0]), **extra_args)
        callback({"x": x, "i": 0, "sigma": sigmas[0], "sigma_hat": sigmas[0], "denoised": denoised})
        return denoised

    monkeypatch.setitem(SAMPLERS, "probe", probe_sampler)
    infos, stats = [], {}
    out = run(sampler="probe", callback=infos.append, stats=stats, seed=4)
    assert seen["model_sampling"] is MS and seen["extra_args"] == {"seed": 4}
    assert infos[0]["total_steps"] == 6 and infos[0]["i"] == 0 and out.shape == (1, 4, 8, 8)
    assert stats == {"network_calls": 1, "network_calls_without_skip": 1, "steps": 6}


def test_a_list_of_seeds_must_match_the_batch():
    with pytest.raises(ValueError, match="one seed per item"):
        run(seed=[1, 2])
