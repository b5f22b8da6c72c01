"""Change-aware composite: exact preservation at map 0, monotone in the map, the change curve's midpoint."""

import numpy as np
import pytest
import torch
from PIL import Image

from diffdiff import composite as comp


def _images(height=16, width=24, seed=0):
    rng = np.random.default_rng(seed)
    original = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    generated = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return original, generated


def test_change_is_half_at_threshold_and_zero_without_difference():
    latent_in = torch.zeros(1, 4, 2, 3)
    latent_out = torch.zeros(1, 4, 2, 3)
    latent_out[0, :, 0, 0] = 0.5  # RMS over channels = 0.5 = threshold
    latent_out[0, :, 1, 2] = 1.5  # 3 × threshold: (3^2)/(1 + 3^2) = 0.9 with contrast 2
    change = comp.latent_change(latent_in, latent_out, threshold=0.5, contrast=2.0)
    assert change.shape == (1, 2, 3)
    assert change[0, 0, 0] == pytest.approx(0.5)
    assert change[0, 1, 2] == pytest.approx(0.9)
    assert change[0, 0, 1] == 0.0


def test_opacity_is_exactly_zero_where_map_is_zero_whatever_the_change():
    pixel_map = np.zeros((8, 8), np.float32)
    pixel_map[:, 4:] = 1.0
    change = np.ones((8, 8), np.float32)
    opacity = comp.opacity_from(pixel_map, change)
    assert np.all(opacity[:, :4] == 0.0)
    assert np.all(opacity[:, 4:] == 1.0)  # full map, full change: only the generated pixels


def test_opacity_is_monotone_in_the_map():
    strengths = np.linspace(0.0, 1.0, 101, dtype=np.float32)[None, :].repeat(5, axis=0)
    for change_value in (0.0, 0.2, 0.7, 1.0):
        change = np.full_like(strengths, change_value)
        opacity = comp.opacity_from(strengths, change)
        assert np.all(np.diff(opacity, axis=1) >= 0)
        assert opacity[0, 0] == 0.0
        # at map 1 the opacity is the influence-weighted mix of change and 1
        expected = (1 - comp.MASK_INFLUENCE) * change_value + comp.MASK_INFLUENCE
        assert opacity[0, -1] == pytest.approx(expected, abs=1e-6)


def test_composite_keeps_original_bytes_at_zero_opacity_and_takes_generated_at_one():
    original, generated = _images()
    opacity = np.zeros((16, 24), np.float32)
    opacity[:, 12:] = 1.0
    opacity[:8, 6] = 0.5
    out = np.asarray(comp.composite(original, generated, opacity))
    base, top = np.asarray(original), np.asarray(generated)
    assert np.array_equal(out[:, :6], base[:, :6])
    assert np.array_equal(out[:, 12:], top[:, 12:])
    half = np.round((base[:8, 6].astype(float) + top[:8, 6]) / 2)
    assert np.abs(out[:8, 6] - half).max() <= 1


def test_smooth_change_upsamples_to_pixels_within_unit_range():
    change = np.zeros((8, 10), np.float32)
    change[1, 2] = 1.0
    up = comp.smooth_change(change, (64, 80))
    assert up.shape == (64, 80)
    assert 0.0 <= up.min() and up.max() <= 1.0
    # dilation spreads the spot to its neighbours: the centre area is strongly marked, the far corner not
    assert up[12, 20] > 0.5 and up[63, 79] < 0.01


def test_layer_with_alpha_reproduces_composite_when_laid_over_original():
    original, generated = _images(seed=3)
    opacity = np.linspace(0, 1, 24, dtype=np.float32)[None, :].repeat(16, axis=0)
    layer = comp.layer_with_alpha(generated, opacity)
    assert layer.mode == "RGBA"
    laid = Image.alpha_composite(original.convert("RGBA"), layer).convert("RGB")
    expected = comp.composite(original, generated, opacity)
    assert np.abs(np.asarray(laid, int) - np.asarray(expected, int)).max() <= 2


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        comp.opacity_from(np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        comp.latent_change(torch.zeros(1, 4, 2, 2), torch.zeros(1, 4, 3, 2))
