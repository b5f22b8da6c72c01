"""The flow network adapters: packing and ids against diffusers' pipelines, each adapter's call against the
pipeline's own convention, a map on one token's block, and tiles on the packed path."""

from types import SimpleNamespace

import pytest
import torch
from diffusers import FluxPipeline

from diffdiff.models.denoiser import ParametrisedNetwork
from diffdiff.models.networks import (
    FluxNetwork,
    SD3Network,
    ZImageNetwork,
    fill_inputs,
    image_ids,
    pack_latents,
    unpack_latents,
)
from diffdiff.models.tiny_flow import build_tiny_flow_components
from diffdiff.pipeline.tiling import plan_tiling
from diffdiff.request import Tiling
from diffdiff.sampling import model_sampling, sample
from diffdiff.tiles import TiledDenoiser, plan_grid


def test_packing_and_ids_match_diffusers_flux_pipeline():
    latent = torch.randn(2, 16, 6, 10)
    packed = pack_latents(latent)
    torch.testing.assert_close(packed, FluxPipeline._pack_latents(latent, 2, 16, 6, 10), rtol=0, atol=0)
    # diffusers unpacks from pixel sizes (latent × VAE factor 8)
    torch.testing.assert_close(unpack_latents(packed, 6, 10), FluxPipeline._unpack_latents(packed, 48, 80, 8),
                               rtol=0, atol=0)
    expected = FluxPipeline._prepare_latent_image_ids(2, 3, 5, "cpu", torch.float32)
    torch.testing.assert_close(image_ids(6, 10, 2, "cpu", torch.float32), expected, rtol=0, atol=0)


def test_fill_inputs_pack_like_diffusers_fill_pipeline():
    """Our [masked latent, mask ×64] on the latent grid, packed, equals the Fill pipeline's packed masked
    latent joined with its packed 8×8 pixel mask (for a mask constant over each latent cell; the mask's
    8×8 rearrangement written as FluxFillPipeline.prepare_mask_latents does it)."""
    height, width = 4, 6
    masked = torch.randn(1, 16, height, width)
    cells = (torch.rand(1, 1, height, width) > 0.5).float()
    pixel_mask = cells.repeat_interleave(8, 2).repeat_interleave(8, 3)
    mask = pixel_mask[:, 0].view(1, height, 8, width, 8).permute(0, 2, 4, 1, 3).reshape(1, 64, height, width)
    expected = torch.cat([FluxPipeline._pack_latents(masked, 1, 16, height, width),
                          FluxPipeline._pack_latents(mask, 1, 64, height, width)], dim=-1)
    ours = pack_latents(fill_inputs(torch.cat([cells, masked], 1), 16))
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)


@pytest.fixture(scope="module")
def networks():
    families = ("sd3", "flux", "z-image")
    return {family: build_tiny_flow_components(family)["transformer"] for family in families}


def test_flux_adapter_calls_the_transformer_as_the_pipeline_does(networks):
    transformer = networks["flux"]
    x = torch.randn(1, 16, 6, 8)
    context, pooled = torch.randn(1, 5, 128), torch.randn(1, 64)
    sigma = torch.tensor([0.7])
    with torch.no_grad():
        ids = FluxPipeline._prepare_latent_image_ids(1, 3, 4, "cpu", torch.float32)
        tokens = transformer(hidden_states=FluxPipeline._pack_latents(x, 1, 16, 6, 8), timestep=sigma,
                             guidance=torch.tensor([4.0]), pooled_projections=pooled,
                             encoder_hidden_states=context, txt_ids=torch.zeros(5, 3), img_ids=ids).sample
        expected = FluxPipeline._unpack_latents(tokens, 48, 64, 8)
        ours = FluxNetwork(transformer, guidance=4.0)(x, sigma, encoder_hidden_states=context,
                                                     pooled_projections=pooled)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)


def test_a_flux_network_that_embeds_guidance_needs_a_scale(networks):
    with pytest.raises(ValueError, match="guidance"):
        FluxNetwork(networks["flux"])
    assert FluxNetwork(TokenwiseFlux()).guidance is None  # one that embeds none (as schnell) needs none


def test_z_image_adapter_reads_time_as_one_minus_sigma_and_negates(networks):
    transformer = networks["z-image"]
    x = torch.randn(2, 16, 4, 6)
    context = torch.randn(2, 7, 32)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 4:] = False
    sigma = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        ours = ZImageNetwork(transformer)(x, sigma, encoder_hidden_states=context, text_mask=mask)
        # ZImagePipeline: t = (1000 - 1000σ) / 1000, inputs as (C, 1, h, w) lists, noise_pred = −output
        outputs = transformer([x[0:1].permute(1, 0, 2, 3), x[1:2].permute(1, 0, 2, 3)], 1 - sigma,
                              [context[0], context[1, :4]]).sample
    expected = -torch.stack([output[:, 0] for output in outputs])
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-6)


def test_odd_latent_sides_are_padded_and_cropped(networks):
    x = torch.randn(1, 16, 5, 7)
    with torch.no_grad():
        out = SD3Network(networks["sd3"])(x, torch.tensor([500.0]), pooled_projections=torch.randn(1, 128),
                                          encoder_hidden_states=torch.randn(1, 3, 128))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_a_map_on_one_token_block_changes_exactly_that_block(networks):
    """A map of 1 on one 16×16-pixel block (2×2 latent cells: one packed token) changes every latent value of
    that block through the packed Flux path, and nothing else."""
    ms = model_sampling("flux-schnell")
    network = ParametrisedNetwork(FluxNetwork(networks["flux"], guidance=3.5), ms)
    context, pooled = torch.randn(1, 5, 128), torch.randn(1, 64)

    def denoiser(x, sigma, **unused):
        return network(x, sigma, encoder_hidden_states=context, pooled_projections=pooled)

    latent = torch.randn(1, 16, 6, 8)
    strength = torch.zeros(6, 8)
    strength[2:4, 4:6] = 1.0
    result = sample(denoiser, latent, model_sampling=ms, sampler="euler", scheduler="simple", steps=3, seed=1,
                    strength_map=strength)
    changed = (result != latent).all(dim=1)[0]
    assert torch.equal(changed, strength.bool())


class TokenwiseFlux(torch.nn.Module):
    """A stand-in for Flux's transformer that acts on each packed token alone (no attention): tiled and
    untiled runs agree exactly when every tile packs the same 2×2 cells into a token as the whole image."""

    config = SimpleNamespace(guidance_embeds=False)

    def __init__(self):
        super().__init__()
        self.mix = torch.nn.Linear(64, 64)

    def forward(self, hidden_states, timestep, **unused):
        return SimpleNamespace(sample=torch.tanh(self.mix(hidden_states)) * (1 + timestep.view(-1, 1, 1)))


def test_tiles_on_the_unpacked_grid_keep_tokens_whole():
    torch.manual_seed(0)
    network = ParametrisedNetwork(FluxNetwork(TokenwiseFlux().eval()), model_sampling("flux"))
    x, sigma = torch.randn(1, 16, 30, 26), torch.tensor([0.5])
    conditioning = {"encoder_hidden_states": torch.zeros(1, 2, 8), "pooled_projections": torch.zeros(1, 4)}
    whole = network(x, sigma, **conditioning)

    def denoiser(x, sigma, **unused):
        return network(x, sigma, **conditioning)

    plan = plan_tiling(Tiling(tile=88, overlap=24), 26 * 8, 30 * 8, native_size=1024, factor=8, patch=2)
    aligned = plan_grid(30, 26, plan.network_tile, plan.network_overlap, plan.network_align)
    assert len(aligned) > 1
    assert all(tile.x % 2 == tile.y % 2 == tile.h % 2 == tile.w % 2 == 0 for tile in aligned)
    torch.testing.assert_close(TiledDenoiser(denoiser, aligned)(x, sigma), whole, rtol=0, atol=1e-6)
    unaligned = plan_grid(30, 26, 11, 3)  # odd tiles and starts split tokens: the check can fail
    assert (TiledDenoiser(denoiser, unaligned)(x, sigma) - whole).abs().max() > 1e-3


def test_a_padded_caption_runs_as_its_real_tokens_alone(networks):
    """Item 1's caption is 3 real tokens padded to 5 (its mask False on the filler): it must come out as
    a call with the 3 tokens, not as one that attends to the zero filler."""
    flux = FluxNetwork(networks["flux"], guidance=3.5)
    x, sigma = torch.randn(2, 16, 4, 4), torch.tensor([0.4, 0.4])
    context, pooled = torch.randn(2, 5, 128), torch.randn(2, 64)
    context[1, 3:] = 0
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    with torch.no_grad():
        batched = flux(x, sigma, encoder_hidden_states=context, pooled_projections=pooled, text_mask=mask)
        alone = flux(x[1:], sigma[1:], encoder_hidden_states=context[1:, :3], pooled_projections=pooled[1:])
        padded = flux(x[1:], sigma[1:], encoder_hidden_states=context[1:], pooled_projections=pooled[1:])
    torch.testing.assert_close(batched[1:], alone, rtol=0, atol=1e-6)
    assert (padded - alone).abs().max() > 1e-4  # attending to the filler would differ
