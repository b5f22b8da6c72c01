"""Fine-tune the demo model into a 9-channel inpainting model, as SD1.5-inpainting was made from SD1.5.

The UNet input is `cat([c_in·x_t, m, z_masked])` (4 + 1 + 4 channels, diffusers' StableDiffusionInpaint
convention): `m` the mask on the latent grid (1 = to generate, 0 = known), `z_masked` the model-space latent
of the picture with the hole painted mid grey. Training approximates the latter in latent space,
`z_masked = (1 − m)·z + m·z_grey`, with `z_grey` the mean latent of a uniform grey picture (inference encodes
the grey-filled picture instead; the demo VAE's whole-picture GroupNorm makes that differ near the hole's
edge and somewhat everywhere, which shows as faint frames around a filled hole). `expand_conv_in`
widens the trained UNet's first convolution with zero weights for the new channels, so it starts as the
plain model. The schedule, eps loss, min-SNR weights, offset noise, caption dropout and EMA are
`train_diffusion`'s (docs/design.md §10); the text encoder and VAE stay frozen.

Masks (`random_mask`): 10 % the whole window, 10 % nothing, otherwise either a scene region (house, lake,
trees, sky or ground, from `Scene.masks` reduced to the latent grid and grown by up to two cells) or a mix of
rectangles, ellipses and thick brush strokes covering about 10–60 % of the window.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..sampling.parametrisation import DiscreteSchedule
from .scenes import Scene
from .training import (
    MIN_SNR_GAMMA,
    OFFSET_NOISE,
    _Ema,
    _set_lr,
    encode_captions,
    learning_rate,
    take_step,
)

REGIONS = ("house", "lake", "trees", "sky", "ground")
OBJECT_REGIONS = ("house", "lake", "trees")


def region_grid(scene: Scene, factor: int = 8) -> np.ndarray:
    """The scene's regions (`REGIONS`) on the latent grid, float32 (len(REGIONS), H/factor, W/factor): a
    cell is 1 when any of its pixels belongs to the region (so a hole over it hides all of it)."""
    h, w = scene.pixels.shape[:2]
    grids = np.zeros((len(REGIONS), h // factor, w // factor), np.float32)
    for index, name in enumerate(REGIONS):
        mask = scene.masks.get(name)
        if name == "house" and "roof" in scene.masks:
            mask = mask | scene.masks["roof"]
        if mask is not None:
            grids[index] = mask[: h // factor * factor, : w // factor * factor].reshape(
                h // factor, factor, w // factor, factor).any(axis=(1, 3))
    return grids


def _shape(rng: np.random.Generator, side: int) -> np.ndarray:
    """One rectangle, ellipse or thick brush stroke (uint8 0/1, side × side)."""
    canvas = np.zeros((side, side), np.uint8)
    kind = rng.integers(3)
    if kind == 0:
        w, h = rng.integers(side // 8, side * 3 // 4 + 1, 2)
        x, y = rng.integers(0, side - w + 1), rng.integers(0, side - h + 1)
        cv2.rectangle(canvas, (int(x), int(y)), (int(x + w - 1), int(y + h - 1)), 1, -1)
    elif kind == 1:
        centre = tuple(int(v) for v in rng.integers(0, side, 2))
        axes = tuple(int(v) for v in rng.integers(side // 12 + 1, side * 3 // 8 + 1, 2))
        cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:
        points = np.cumsum(rng.normal(0, side / 4, (int(rng.integers(2, 6)), 2)), axis=0)
        points = np.clip(points + rng.uniform(0, side, 2), 0, side - 1).astype(np.int32)
        cv2.polylines(canvas, [points], False, 1, int(rng.integers(max(2, side // 16), side // 5 + 2)))
    return canvas


def random_mask(rng: np.random.Generator, side: int, regions: np.ndarray | None = None,
                region_share: float = 0.3) -> np.ndarray:
    """A float32 (side, side) hole mask, 1 = to generate. `regions` (len(REGIONS), side, side): the
    window's scene regions; with probability `region_share` one of those present is the hole (objects
    three times as often as sky or ground), grown by 0–2 cells."""
    draw = rng.random()
    if draw < 0.1:
        return np.ones((side, side), np.float32)
    if draw < 0.2:
        return np.zeros((side, side), np.float32)
    if regions is not None and rng.random() < region_share:
        present = [i for i, grid in enumerate(regions) if 0 < grid.mean() < 0.9]
        if present:
            weights = np.array([3.0 if REGIONS[i] in OBJECT_REGIONS else 1.0 for i in present])
            chosen = regions[present[rng.choice(len(present), p=weights / weights.sum())]]
            grow = int(rng.integers(0, 3))
            if grow:
                kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
                chosen = cv2.dilate(chosen.astype(np.uint8), kernel)
            return chosen.astype(np.float32)
    target = rng.uniform(0.1, 0.6)
    mask = np.zeros((side, side), np.uint8)
    for _ in range(8):
        mask |= _shape(rng, side)
        if mask.mean() >= target:
            break
    return mask.astype(np.float32)


class InpaintBatches:
    """(latents (B, 4, s, s), masks (B, 1, s, s), captions) from a `LatentBatches` whose latents carry the
    scenes' `region_grid` as extra channels after the 4 latent ones (so a window crops both alike)."""

    def __init__(self, latent_batches, seed: int, region_share: float = 0.3):
        self.latent_batches = latent_batches
        self.region_share = region_share
        self.rng = np.random.default_rng([seed, 7])

    def next(self) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        windows, captions = self.latent_batches.next()
        latents, regions = windows[:, :4], windows[:, 4:].numpy()
        side = windows.shape[-1]
        masks = [random_mask(self.rng, side, grid, self.region_share) for grid in regions]
        return latents.contiguous(), torch.from_numpy(np.stack(masks))[:, None], captions


@torch.no_grad()
def grey_latent(vae, side: int = 64) -> torch.Tensor:
    """Model-space latent (4,) of a uniform mid-grey picture (0.0 in [-1, 1]): the per-channel mean."""
    mean = vae.encode(torch.zeros(1, 3, side, side)).latent_dist.mean
    return mean.mean(dim=(0, 2, 3)) * vae.config.scaling_factor


def masked_latents(latents: torch.Tensor, masks: torch.Tensor, grey: torch.Tensor) -> torch.Tensor:
    """z_masked = (1 − m)·z + m·z_grey: the latent of the picture with its hole painted grey, approximated."""
    return (1 - masks) * latents + masks * grey.view(1, -1, 1, 1).to(latents)


def inpaint_input(scaled: torch.Tensor, masks: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """The 9-channel UNet input: cat([c_in·x_t, m, z_masked], dim=1)."""
    return torch.cat([scaled, masks.to(scaled), masked.to(scaled)], dim=1)


def expand_conv_in(unet, extra: int = 5):
    """A copy of `unet` whose conv_in takes `extra` more input channels, their weights zero (so the new
    network computes what the old one did until it learns to read them)."""
    from diffusers import UNet2DConditionModel

    config = {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}
    config["in_channels"] = unet.config.in_channels + extra
    wide = UNet2DConditionModel.from_config(config)
    state = unet.state_dict()
    weight = state.pop("conv_in.weight")
    missing, unexpected = wide.load_state_dict(state, strict=False)
    assert missing == ["conv_in.weight"] and not unexpected, (missing, unexpected)
    with torch.no_grad():
        wide.conv_in.weight.zero_()
        wide.conv_in.weight[:, : weight.shape[1]] = weight
    return wide


def train_inpainting(unet, text_encoder, tokenizer, batches: InpaintBatches, grey: torch.Tensor, *,
                     steps: int, lr: float, seed: int, warmup: int = 100, conv_in_lr: float = 1.0,
                     ema_decay: float = 0.998, progress=None) -> tuple[torch.nn.Module, list[float]]:
    """Train the 9-channel `unet` (text encoder frozen) as `train_diffusion` trains the plain one; returns the
    EMA copy and the loss of every step. `conv_in_lr` multiplies the first convolution's learning rate."""
    alphas_cumprod = 1.0 / (1.0 + DiscreteSchedule().sigmas.double() ** 2)
    snr = (alphas_cumprod / (1 - alphas_cumprod)).float()
    weights = torch.clamp(snr, max=MIN_SNR_GAMMA) / snr
    sqrt_ab, sqrt_1mab = alphas_cumprod.sqrt().float(), (1 - alphas_cumprod).sqrt().float()
    first = list(unet.conv_in.parameters())
    rest = [p for name, p in unet.named_parameters() if not name.startswith("conv_in.")]
    groups = [{"params": rest, "scale": 1.0}, {"params": first, "scale": conv_in_lr}]
    optimiser = torch.optim.AdamW(groups, lr=lr, weight_decay=0.01)
    parameters = rest + first
    text_encoder.eval().requires_grad_(False)
    unet.train()
    ema = _Ema(unet, ema_decay)
    generator = torch.Generator().manual_seed(seed + 1)
    hidden_cache: dict[str, torch.Tensor] = {}
    losses = []
    for step in range(steps):
        _set_lr(optimiser, learning_rate(step, steps, lr, warmup=warmup))
        for group in optimiser.param_groups:
            group["lr"] *= group["scale"]
        latents, masks, captions = batches.next()
        timesteps = torch.randint(0, len(alphas_cumprod), (len(latents),), generator=generator)
        noise = torch.randn(latents.shape, generator=generator)
        noise = noise + OFFSET_NOISE * torch.randn((*latents.shape[:2], 1, 1), generator=generator)
        shape = (-1, 1, 1, 1)
        noisy = sqrt_ab[timesteps].view(shape) * latents + sqrt_1mab[timesteps].view(shape) * noise
        # x_t = √ᾱ·z + √(1−ᾱ)·ε is c_in·(z + σ·ε) with c_in = 1/√(σ²+1): already the scaled network input
        model_input = inpaint_input(noisy, masks, masked_latents(latents, masks, grey))
        missing = sorted({c for c in captions if c not in hidden_cache})
        if missing:
            with torch.no_grad():
                hidden_cache.update(zip(missing, encode_captions(tokenizer, text_encoder, missing)))
        hidden = torch.stack([hidden_cache[c] for c in captions])
        predicted = unet(model_input, timesteps, encoder_hidden_states=hidden).sample
        loss = (weights[timesteps] * (predicted - noise).pow(2).mean(dim=(1, 2, 3))).mean()
        take_step(loss, optimiser, parameters, losses, progress)
        ema.update(unet)
    return ema.average, losses
