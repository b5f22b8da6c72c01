"""Continuous strength levels: a pixel between two steps' thresholds enters part-way (docs/design.md §5)."""

import sys

import numpy as np
import pytest
import torch
from doubles import analytic
from PIL import Image

from diffdiff import pipeline
from diffdiff.errors import DiffdiffError
from diffdiff.request import Gate
from diffdiff.sampling import DifferentialGate, calculate_sigmas, model_sampling, sample

RAMP_WIDTH = 512


def pulled(x, sigma, **kwargs):
    """A pixelwise denoiser whose x0 is pulled towards +2, so a pixel's change from its latent is large."""
    return (x + 2.0) / (1 + sigma.view(-1, 1, 1, 1) ** 2)


@pytest.fixture
def ramp_run(monkeypatch):
    """`run(levels, steps, sampler, strength=ramp)` on a 1 × RAMP_WIDTH latent whose every pixel has the same
    latent and the same noise, so the result depends on the strength alone."""
    generator = torch.Generator().manual_seed(3)
    latent = torch.randn(1, 4, 1, 1, generator=generator).expand(1, 4, 1, RAMP_WIDTH).contiguous()
    noise = torch.randn(1, 4, 1, 1, generator=generator).expand(1, 4, 1, RAMP_WIDTH).contiguous()
    sample_module = sys.modules["diffdiff.sampling.sample"]
    monkeypatch.setattr(sample_module, "prepare_noise", lambda like, seed: noise.clone())
    ramp = torch.linspace(0, 1, RAMP_WIDTH).reshape(1, 1, 1, RAMP_WIDTH)
    ms = model_sampling("sd1")

    def run(levels, steps, sampler="euler", strength=ramp, denoiser=pulled):
        arguments = dict(model_sampling=ms, sampler=sampler, scheduler="normal", steps=steps, seed=0)
        if strength is None:
            return sample(denoiser, latent, **arguments)
        return sample(denoiser, latent, **arguments, strength_map=strength, strength_levels=levels)

    return run, latent, ramp


def change_along(out, latent) -> torch.Tensor:
    return (out - latent).pow(2).mean(1).sqrt()[0, 0].double()


@pytest.mark.parametrize("steps", [4, 8, 20])
def test_continuous_levels_give_many_more_distinct_changes_than_steps(ramp_run, steps):
    run, latent, _ = ramp_run
    quantised = change_along(run("steps", steps), latent)
    continuous = change_along(run("continuous", steps), latent)
    assert len(torch.unique(torch.round(quantised * 1e4))) <= steps + 1
    assert len(torch.unique(torch.round(continuous * 1e4))) >= 4 * steps


def progress_along(out, latent) -> torch.Tensor:
    """How far each pixel went from its latent towards the strength-1 pixel (the last one): 0 … 1."""
    direction = out[..., -1:] - latent[..., -1:]
    return ((out - latent) * direction).sum(1)[0, 0].double() / float((direction * direction).sum())


@pytest.mark.parametrize("steps", [4, 8, 20])
@pytest.mark.parametrize("denoiser", [analytic, pulled])
def test_continuous_change_strictly_increases_across_four_bins_per_step(ramp_run, steps, denoiser):
    """Euler (no history between steps): every bin of strengths up to 0.8 goes further than the bin below.
    Above that the results saturate (entering at an even higher noise adds nothing the noise left), so
    there only rounding-sized steps back are allowed."""
    run, latent, _ = ramp_run
    progress = progress_along(run("continuous", steps, denoiser=denoiser), latent)
    lower = progress[1 : int(0.8 * RAMP_WIDTH)]
    means = torch.stack([chunk.mean() for chunk in lower.tensor_split(4 * steps)])
    assert bool((torch.diff(means) > 1e-5).all()), torch.diff(means)
    assert bool((torch.diff(progress) >= -1e-5).all())  # pixel by pixel too, up to rounding
    assert float(progress[0]) == 0 and float(progress[-1]) == pytest.approx(1.0)


def test_strength_zero_is_exact_and_strength_one_is_the_plain_run(ramp_run):
    run, latent, ramp = ramp_run
    out = run("continuous", 4)
    assert torch.equal(out[..., 0], latent[..., 0])
    plain = run("continuous", 4, strength=None)
    ones = torch.ones_like(ramp)
    assert torch.equal(run("continuous", 4, strength=ones), plain)
    assert torch.equal(out[..., -1], plain[..., -1])


def test_on_each_threshold_continuous_equals_steps(ramp_run):
    """At a strength equal to a step's threshold both rules make the same pixel: they differ only between."""
    run, latent, _ = ramp_run
    ms = model_sampling("sd1")
    sigmas = calculate_sigmas(ms, "normal", 4)
    plane = torch.zeros(1, 1, 1, 1)
    probe = DifferentialGate(None, torch.zeros(1, 1), plane, plane, sigmas, ms)
    thresholds = torch.tensor([float(probe.threshold(sigma)) for sigma in sigmas[1:-1]])
    strength = thresholds.reshape(1, 1, 1, -1).expand(1, 1, 1, len(thresholds)).float()
    strength = torch.nn.functional.pad(strength, (0, RAMP_WIDTH - len(thresholds)))
    steps_out = run("steps", 4, strength=strength)[..., : len(thresholds)]
    continuous_out = run("continuous", 4, strength=strength)[..., : len(thresholds)]
    torch.testing.assert_close(continuous_out, steps_out, rtol=0, atol=1e-5)
    between = (thresholds[:-1] + thresholds[1:]) / 2
    middle = torch.nn.functional.pad(between.reshape(1, 1, 1, -1), (0, RAMP_WIDTH - len(between)))
    assert not torch.allclose(run("continuous", 4, strength=middle)[..., : len(between)],
                              run("steps", 4, strength=middle)[..., : len(between)])


def test_the_active_weight_lies_in_zero_one_and_grows_with_strength():
    ms = model_sampling("sd1")
    sigmas = calculate_sigmas(ms, "karras", 6)
    strength = torch.linspace(0, 1, 101).reshape(1, 101)
    plane = torch.zeros(1, 1, 1, 101)
    gate = DifferentialGate(None, strength, plane, plane, sigmas, ms, levels="continuous")
    for sigma in sigmas[:-1]:
        weight = gate.active_mask(sigma)[0, 0, 0]
        assert float(weight.min()) >= 0 and float(weight.max()) <= 1
        assert float(weight[0]) == 0
        assert bool((torch.diff(weight) >= 0).all())
    fractional = gate.active_mask(sigmas[1])[0, 0, 0]
    assert bool(((fractional > 0) & (fractional < 1)).any())  # some pixels enter part-way


def test_continuous_levels_need_the_exact_gate():
    assert Gate().levels == "continuous"
    assert Gate(mode="comfy").levels == "steps"
    assert Gate(levels="steps").levels == "steps"
    with pytest.raises(DiffdiffError, match="need the exact gate"):
        Gate(mode="comfy", levels="continuous")
    with pytest.raises(DiffdiffError, match="strength levels"):
        Gate(levels="smooth")


def test_an_edit_records_its_strength_levels_and_they_change_a_soft_map(tiny_sd1):
    image = Image.new("RGB", (64, 64), (90, 140, 200))
    strength = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (64, 1))
    options = dict(model=tiny_sd1, steps=4, cfg=1.0, seed=5)
    continuous = pipeline.edit(image, strength, "a lake", **options)
    steps = pipeline.edit(image, strength, "a lake", strength_levels="steps", **options)
    assert continuous.settings["strength_levels"] == "continuous"
    assert steps.settings["strength_levels"] == "steps"
    first, second = (np.asarray(result.images[0], np.int16) for result in (continuous, steps))
    assert np.array_equal(first[:, 0], np.asarray(image)[:, 0])  # map 0: the input's bytes
    assert np.abs(first - second).max() > 0
