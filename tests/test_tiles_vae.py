"""Tiled VAE: shared GroupNorm statistics leave no colour step at tile borders; per-tile GroupNorm does."""

from functools import partial

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from diffdiff.errors import DiffdiffError
from diffdiff.models.vae import pixels_to_tensor, tensor_to_pixels
from diffdiff.tiles import tiled_vae_decode, tiled_vae_encode

FACTOR = 8  # the tiny VAEs below halve three times


def tiny_vae(attention: bool) -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(
        block_out_channels=(8, 16, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=4, layers_per_block=1,
        latent_channels=4, mid_block_add_attention=attention,
    ).eval()


def gradient_image(size: int = 256) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    return torch.stack([0.8 * xx, 0.8 * yy, 0.25 * (xx + yy)])[None]


def border_jump(image: torch.Tensor, p: int) -> float:
    """Largest step between pixel rows/columns p-1 and p (a tile border at p)."""
    across_columns = (image[..., :, p] - image[..., :, p - 1]).abs().max()
    across_rows = (image[..., p, :] - image[..., p - 1, :]).abs().max()
    return max(across_columns.item(), across_rows.item())


@pytest.fixture(scope="module")
def decoded():
    results = {}
    with torch.no_grad():
        for attention in (False, True):
            vae = tiny_vae(attention)
            latents = vae.encode(gradient_image()).latent_dist.mean  # 32×32 latent px
            results[attention] = (vae, latents, vae.decode(latents).sample)
    return results


def test_decode_without_attention_matches_untiled_and_has_no_border_step(decoded):
    vae, latents, untiled = decoded[False]
    # tile 16 latent px → cores 0..16, 16..32; border at 128 image px. Padding 12 covers the conv
    # receptive field, so with shared statistics the only remaining difference is round-off.
    tiled = tiled_vae_decode(vae, latents, tile=16, overlap=12, stats_size=32,
                             factor=FACTOR)  # exact statistics
    naive = tiled_vae_decode(vae, latents, tile=16, overlap=12, stats="tile", factor=FACTOR)
    assert (tiled - untiled).abs().max() < 2e-3
    # statistics from a 2× downscale
    estimated = tiled_vae_decode(vae, latents, tile=16, overlap=12, factor=FACTOR)
    assert border_jump(estimated, 128) <= 1.25 * border_jump(untiled, 128)
    assert border_jump(estimated, 128) < 0.5 * border_jump(naive, 128)
    assert border_jump(tiled, 128) <= border_jump(untiled, 128) + 0.01
    assert border_jump(naive, 128) > 2 * border_jump(untiled, 128)


def test_decode_with_attention_has_no_more_border_step_than_untiled(decoded):
    vae, latents, untiled = decoded[True]
    tiled = tiled_vae_decode(vae, latents, tile=16, overlap=12, stats_size=32, factor=FACTOR)
    naive = tiled_vae_decode(vae, latents, tile=16, overlap=12, stats="tile", factor=FACTOR)
    reference = border_jump(untiled, 128)
    assert border_jump(tiled, 128) <= 1.25 * reference
    assert border_jump(naive, 128) > 3 * reference
    assert (tiled - untiled).abs().mean() < 0.5 * (naive - untiled).abs().mean()


def test_decode_that_fits_one_tile_is_the_plain_decode(decoded):
    vae, latents, untiled = decoded[True]
    assert torch.equal(tiled_vae_decode(vae, latents, tile=32, overlap=4, factor=FACTOR), untiled)


def test_encode_tiled_is_closer_to_untiled_than_naive(decoded):
    vae, latents, _ = decoded[False]
    image = gradient_image()
    tiled = tiled_vae_encode(vae, image, tile=128, overlap=64, stats_size=256, factor=FACTOR)
    naive = tiled_vae_encode(vae, image, tile=128, overlap=64, stats="tile", factor=FACTOR)
    assert tiled.shape == latents.shape
    assert (tiled - latents).abs().max() < 5e-3
    assert (naive - latents).abs().max() > 10 * (tiled - latents).abs().max()


def test_bad_input_is_refused(decoded):
    vae, latents, _ = decoded[False]
    with pytest.raises(DiffdiffError, match="multiple of 8"):
        tiled_vae_encode(vae, torch.zeros(1, 3, 100, 100), factor=FACTOR)
    with pytest.raises(DiffdiffError, match="global, tile"):
        tiled_vae_decode(vae, latents, tile=8, stats="bogus", factor=FACTOR)


def test_decode_to_pixels_equals_quantising_the_float_decode(decoded):
    vae, latents, _ = decoded[True]
    floats = tiled_vae_decode(vae, latents, tile=16, overlap=12, factor=FACTOR)
    pixels = tiled_vae_decode(vae, latents, tile=16, overlap=12, factor=FACTOR, quantise=tensor_to_pixels)
    expected = ((floats.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert pixels.dtype == np.uint8 and pixels.shape == (1, 256, 256, 3)
    assert np.array_equal(pixels, expected)


def test_encode_from_uint8_pixels_matches_encoding_their_float_tensor(decoded):
    vae, _, _ = decoded[False]
    pixels = ((gradient_image()[0].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    as_tensor = (torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1.0)
    encode_pixels = partial(tiled_vae_encode, vae, pixels, factor=FACTOR, to_tensor=pixels_to_tensor)
    exact = encode_pixels(tile=128, overlap=64, stats_size=256)  # full-size statistics
    same = tiled_vae_encode(vae, as_tensor, tile=128, overlap=64, stats_size=256, factor=FACTOR)
    assert (exact - same).abs().max() < 1e-5  # round-off only (contiguous tiles vs strided slices)
    estimated = encode_pixels(tile=128, overlap=64)  # statistics from a 2× downscale
    reference = tiled_vae_encode(vae, as_tensor, tile=128, overlap=64, factor=FACTOR)
    assert (estimated - reference).abs().max() < 1e-4
    with pytest.raises(DiffdiffError, match="uint8"):
        tiled_vae_encode(vae, pixels.astype(np.float32), factor=FACTOR, to_tensor=pixels_to_tensor)


def test_encode_copies_read_only_pixels_instead_of_handing_them_to_torch(decoded, monkeypatch):
    # np.asarray(PIL image) is read-only; torch.from_numpy on it printed a UserWarning during `upscale`
    vae, _, _ = decoded[False]
    pixels = ((gradient_image(64)[0].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    pixels.setflags(write=False)
    writable, from_numpy = [], torch.from_numpy
    monkeypatch.setattr(torch, "from_numpy", lambda a: writable.append(a.flags.writeable) or from_numpy(a))
    # one tile: the whole, contiguous array
    tiled_vae_encode(vae, pixels, tile=64, overlap=0, factor=FACTOR, to_tensor=pixels_to_tensor)
    tiled_vae_encode(vae, pixels, tile=32, overlap=16, factor=FACTOR, to_tensor=pixels_to_tensor)
    assert writable and all(writable)
