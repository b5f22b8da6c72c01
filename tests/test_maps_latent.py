"""The latent-grid functions: 8×8 area averaging keeps the mean, full blocks and thin strokes; the comfy
gate's bilinear sampling is the mean of pixels 8i+3 and 8i+4."""

import numpy as np
import pytest
import torch

from diffdiff.errors import DiffdiffError
from diffdiff.maps import to_latent_grid
from diffdiff.maps.latent import bilinear_grid, block_means

RNG = np.random.default_rng(3)


def test_mean_is_preserved_and_blocks_are_their_averages():
    m = RNG.random((48, 64)).astype(np.float32)
    grid = to_latent_grid(m, (6, 8), 8)
    assert isinstance(grid, torch.Tensor) and grid.dtype == torch.float32 and grid.shape == (6, 8)
    assert abs(float(grid.mean()) - float(m.mean())) < 1e-6
    assert np.isclose(float(grid[2, 3]), m[16:24, 24:32].mean(), atol=1e-6)


def test_fully_white_block_stays_exactly_one_and_thin_stroke_survives():
    m = np.zeros((32, 32), np.float32)
    m[8:16, 16:24] = 1.0  # one whole latent block
    m[:, 2] = 1.0  # a one-pixel stroke
    grid = to_latent_grid(m, (4, 4), 8)
    assert float(grid[1, 2]) == 1.0
    assert float(grid.max()) == 1.0
    assert np.allclose(grid[:, 0].numpy(), 1 / 8)  # the stroke keeps 1/8 strength, not lost


def test_torch_input_and_other_scale_same_aspect():
    m = torch.rand(32, 48)
    grid = to_latent_grid(m, (4, 6), 8)
    assert torch.allclose(grid, torch.nn.functional.avg_pool2d(m[None, None], 8)[0, 0], atol=1e-6)
    big = np.kron(RNG.random((4, 6)), np.ones((16, 16))).astype(np.float32)  # twice the pixel size
    grid2 = to_latent_grid(big, (4, 6), 8)
    assert np.allclose(grid2.numpy(), big[::16, ::16], atol=1e-6)


def test_aspect_mismatch_and_nan_are_errors():
    with pytest.raises(DiffdiffError, match="aspect"):
        to_latent_grid(np.zeros((32, 32)), (4, 8), 8)
    with pytest.raises(DiffdiffError, match="NaN"):
        to_latent_grid(np.full((8, 8), np.nan), (1, 1), 8)


def test_block_means_in_strips_equal_the_whole_map_average(monkeypatch):
    import diffdiff.maps.latent as latent

    strength = RNG.random((8 * 13, 8 * 9)).astype(np.float32)
    whole = block_means(strength, 8)
    monkeypatch.setattr(latent, "STRIP_PIXELS", 64 * 9 * 4)  # 4 latent rows per strip: 4 strips
    assert torch.equal(latent.block_means(strength, 8), whole)
    expected = strength.reshape(13, 8, 9, 8).astype(np.float64).mean(axis=(1, 3))
    assert np.allclose(whole.numpy(), expected, atol=1e-6)


def test_bilinear_grid_is_the_mean_of_the_two_middle_pixels_of_each_block():
    ramp = (np.round(np.linspace(0, 0.5, 64) * 255) / 255).astype(np.float32)  # a 0→0.5 ramp saved as 8-bit
    strength = np.tile(ramp, (16, 1))
    grid = bilinear_grid(strength, (2, 8)).numpy()
    middle = (strength[:, 3::8] + strength[:, 4::8]) / 2
    assert np.allclose(grid, middle[:2], atol=1e-7)
    area = block_means(strength, 8).numpy()
    assert np.abs(grid - area).max() > 1e-4  # the two rules differ on an 8-bit ramp (that is why both exist)
