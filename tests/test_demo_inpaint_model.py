"""The demo inpainting model's training pieces, and the shipped file."""

import numpy as np
import torch
from safetensors import safe_open

from diffdiff.demo import DEMO_INPAINT_MODEL, DEMO_MODEL
from diffdiff.demo.inpaint_training import expand_conv_in, masked_latents, random_mask
from diffdiff.models import load_model
from diffdiff.models.tiny import build_tiny_components


def test_a_widened_conv_in_computes_what_the_plain_unet_did():
    unet = build_tiny_components("sd1")["unet"]
    wide = expand_conv_in(unet)
    assert wide.config.in_channels == 9
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 16, 16, generator=generator)
    extra = torch.randn(1, 5, 16, 16, generator=generator)
    context = torch.randn(1, 77, unet.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        plain = unet(x, 500, encoder_hidden_states=context).sample
        widened = wide(torch.cat([x, extra], 1), 500, encoder_hidden_states=context).sample
    torch.testing.assert_close(widened, plain, rtol=1e-5, atol=1e-5)


def test_random_masks_are_binary_seeded_and_varied():
    masks = [random_mask(np.random.default_rng([5, k]), 32) for k in range(40)]
    assert all(mask.shape == (32, 32) and set(np.unique(mask)) <= {0.0, 1.0} for mask in masks)
    assert np.array_equal(masks[3], random_mask(np.random.default_rng([5, 3]), 32))
    shares = {round(float(mask.mean()), 1) for mask in masks}
    assert 0.0 in shares and 1.0 in shares and len(shares) >= 4


def test_the_masked_latent_is_the_grey_latent_inside_the_hole():
    latents = torch.randn(2, 4, 3, 3)
    masks = torch.zeros(2, 1, 3, 3)
    masks[:, :, 1] = 1
    grey = torch.tensor([0.1, -0.2, 0.3, 0.0])
    masked = masked_latents(latents, masks, grey)
    assert torch.equal(masked[:, :, 0], latents[:, :, 0])
    assert torch.equal(masked[:, :, 1], grey.view(1, 4, 1).expand(2, 4, 3))


def test_the_shipped_inpainting_model_loads_as_one_and_shares_the_demo_vae_and_text_encoder():
    model = load_model(DEMO_INPAINT_MODEL, device="cpu")
    assert model.inpainting and model.unet.config.in_channels == 9
    with safe_open(str(DEMO_MODEL), "pt") as plain, safe_open(str(DEMO_INPAINT_MODEL), "pt") as inpainting:
        shared = [key for key in plain.keys() if not key.startswith("model.diffusion_model.")]
        assert shared
        assert all(torch.equal(plain.get_tensor(key), inpainting.get_tensor(key)) for key in shared)
