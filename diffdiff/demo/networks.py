"""The demo model's three networks: SD1's configs with small sizes, built from a seed.

The geometry is SD1's (VAE ×8 with 4 latent channels, an EPS UNet conditioned by cross-attention on a CLIP
text encoder's last hidden state over the shipped CLIP tokenizer's 77 tokens), so the file the trainer writes
is an ordinary SD1 checkpoint that the ordinary loader reads. The UNet has four levels with few channels
at the fine ones: a 32² latent reaches a 4² bottom, so one network evaluation sees the whole layout of a
256-px scene (sky above, ground below) for about the cost that three levels spend on a 16² window.
Attention sits at the two coarsest levels only, which keeps a 512² edit on a CPU to seconds per step.
"""

from __future__ import annotations

import torch

from ..models.tiny import shipped_config

TEXT_WIDTH = 56


def demo_configs() -> dict[str, dict]:
    """{component: config} of the demo model (unet, vae, text_encoder)."""
    unet = shipped_config("sd1", "unet")
    unet.update(
        block_out_channels=[32, 64, 128, 128],
        layers_per_block=1,
        norm_num_groups=8,  # four or more channels per group (SD1's hold ten)
        down_block_types=["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=4,  # diffusers' name for the number of heads in SD1 configs
        sample_size=32,
    )
    vae = shipped_config("sd1", "vae")
    # few channels per level (CPU training time) and few, wide norm groups: a group of one channel would
    # normalise away each image's colour; no mid-block attention, so tiles decode like the whole image
    vae.update(block_out_channels=[16, 32, 64, 128], layers_per_block=1, norm_num_groups=4, sample_size=256,
               mid_block_add_attention=False)
    text = shipped_config("sd1", "text_encoder")
    text.update(hidden_size=TEXT_WIDTH, intermediate_size=4 * TEXT_WIDTH, num_attention_heads=4,
                num_hidden_layers=3, projection_dim=TEXT_WIDTH)
    return {"unet": unet, "vae": vae, "text_encoder": text}


def build_networks(seed: int) -> dict[str, torch.nn.Module]:
    """The demo networks with weights initialised from `seed` (same seed, same weights)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    configs = demo_configs()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderKL.from_config(configs["vae"])
        _start_residuals_at_identity(vae)
        return {
            "vae": vae,
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_dict(configs["text_encoder"])),
            "unet": UNet2DConditionModel.from_config(configs["unet"]),
        }


def _start_residuals_at_identity(module: torch.nn.Module) -> None:
    """Zero the last convolution of every residual block, so each starts as the identity (SkipInit): the
    deep VAE then trains as a shallow one at first and learns colours and shapes in far fewer steps."""
    from diffusers.models.resnet import ResnetBlock2D

    for block in module.modules():
        if isinstance(block, ResnetBlock2D):
            torch.nn.init.zeros_(block.conv2.weight)
            torch.nn.init.zeros_(block.conv2.bias)
