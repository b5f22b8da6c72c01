"""Seeded noise equals ComfyUI's convention: torch.manual_seed(seed), one CPU randn of the latent's shape."""

import pytest
import torch

from diffdiff.sampling import prepare_noise
from diffdiff.sampling.noise import ddim_inpaint_noise


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_int_seed_is_a_fresh_manual_seed_randn(dtype):
    latent = torch.zeros(2, 4, 5, 6, dtype=dtype)
    noise = prepare_noise(latent, 1234)
    torch.manual_seed(1234)
    expected = torch.randn(2, 4, 5, 6, dtype=dtype)
    assert noise.dtype == dtype and torch.equal(noise, expected)


def test_large_seed_and_different_seeds():
    latent = torch.zeros(1, 4, 3, 3)
    torch.manual_seed(2**63 + 5)
    expected = torch.randn(1, 4, 3, 3)
    assert torch.equal(prepare_noise(latent, 2**63 + 5), expected)
    assert not torch.equal(prepare_noise(latent, 1), prepare_noise(latent, 2))


def test_list_seeds_draw_each_item_alone():
    latent = torch.zeros(3, 4, 4, 4)
    noise = prepare_noise(latent, [7, 8, 7])
    for k, seed in enumerate([7, 8, 7]):
        torch.manual_seed(seed)
        expected = torch.randn(1, 4, 4, 4)
        assert torch.equal(noise[k:k + 1], expected)
        assert torch.equal(noise[k:k + 1], prepare_noise(latent[:1], seed))
    assert torch.equal(noise[0], noise[2]) and not torch.equal(noise[0], noise[1])


def test_ddim_inpaint_noise_uses_seed_plus_one():
    noise = torch.zeros(1, 4, 3, 3)
    torch.manual_seed(11)
    expected = torch.randn(1, 4, 3, 3)
    assert torch.equal(ddim_inpaint_noise(noise, 10), expected)
    torch.manual_seed(21)
    expected = torch.randn(1, 4, 3, 3)
    assert torch.equal(ddim_inpaint_noise(torch.zeros(2, 4, 3, 3), [3, 20])[1:], expected)


def test_bad_seeds():
    latent = torch.zeros(2, 4, 3, 3)
    with pytest.raises(ValueError, match="one seed per item"):
        prepare_noise(latent, [1, 2, 3])
    for seed in (1.5, "3", None, True):
        with pytest.raises(ValueError, match="seed"):
            prepare_noise(latent, seed)
