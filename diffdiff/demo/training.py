"""Train the demo model: the VAE on crops, then the UNet and text encoder together as latent diffusion.

- VAE: L1 + squared error on random crops of scenes and photos, a small KL term (SD's 1e-6 weight); Adam
  with a linear warm-up and a cosine decay. Afterwards `scaling_factor` = 1 / std of the scenes' latents,
  so model-space latents have unit variance, as SD1's 0.18215 does for its VAE.
- UNet + text encoder: SD1's noise schedule (the 1000 discrete sigmas of `DiscreteSchedule`), timesteps drawn
  uniformly, x_t = √ᾱ·z + √(1−ᾱ)·ε with offset noise in ε (a per-image, per-channel constant added), squared
  error on ε weighted by min(SNR, 5)/SNR (min-SNR weighting), captions dropped to "" 10 % of the time for
  classifier-free guidance, an exponential moving average of the weights (what is saved).
The text encoder reads captions as inference reads a short plain prompt (the shipped tokenizer, one padded
chunk, last hidden state). Everything is seeded; on a fixed number of CPU threads the same settings give
the same weights.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from ..sampling.parametrisation import DiscreteSchedule
from .data import LatentBatches, VaeBatches

KL_WEIGHT = 1e-6
MIN_SNR_GAMMA = 5.0
OFFSET_NOISE = 0.15


@dataclass(frozen=True)
class TrainingPlan:
    """Sizes and step counts of one training run (the defaults are the shipped model's)."""

    seed: int = 0
    pool_scenes: int = 1600  # scenes (128–256 px) the VAE crops come from
    vae_steps: int = 1800
    vae_batch: int = 3
    vae_crop: int = 128  # GroupNorm statistics of small crops differ from a whole picture's
    vae_lr: float = 1e-3
    # scenes encoded once for the UNet: (count, side in px, share of the batches); the UNet sees windows of
    # `latent_side` latents: whole 256-px scenes (the layout of a picture, and its captions' objects) and
    # quarters of 512-px ones (what a sky or a field looks like at a larger size)
    latent_scenes: tuple = ((1500, 256, 0.65), (300, 512, 0.35))
    latent_side: int = 32
    unet_steps: int = 2000
    unet_batch: int = 16
    unet_lr: float = 1e-3
    ema_decay: float = 0.998


def learning_rate(step: int, total: int, peak: float, warmup: int = 50) -> float:
    """Linear warm-up over `warmup` steps, then a cosine decay to a tenth of `peak`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _set_lr(optimiser, value: float) -> None:
    for group in optimiser.param_groups:
        group["lr"] = value


def take_step(loss, optimiser, parameters, losses: list[float], progress=None) -> None:
    """One optimiser step on `loss` (gradient norm clipped to 1), recorded in `losses` and on the bar."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, 1.0)
    optimiser.step()
    losses.append(loss.item())
    if progress is not None:
        progress.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}", refresh=False)
        progress.update(1)


def train_vae(vae, batches: VaeBatches, plan: TrainingPlan, progress=None) -> list[float]:
    """Train `vae` in place; returns the loss of every step."""
    vae.train()
    optimiser = torch.optim.Adam(vae.parameters(), lr=plan.vae_lr)
    losses = []
    for step in range(plan.vae_steps):
        _set_lr(optimiser, learning_rate(step, plan.vae_steps, plan.vae_lr))
        images = batches.next()
        posterior = vae.encode(images).latent_dist
        decoded = vae.decode(posterior.mode()).sample
        error = decoded - images
        loss = error.abs().mean() + error.pow(2).mean() + KL_WEIGHT * posterior.kl().mean()
        take_step(loss, optimiser, vae.parameters(), losses, progress)
    vae.eval()
    return losses


@torch.no_grad()
def encode_means(vae, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Raw latent means of float images (B, 3, H, W), a batch at a time."""
    chunks = [images[i : i + batch] for i in range(0, len(images), batch)]
    return torch.cat([vae.encode(chunk).latent_dist.mean for chunk in chunks])


def scaling_factor(raw_latents: torch.Tensor) -> float:
    """1 / std of raw latents: the factor that gives model-space latents unit variance."""
    return float(1.0 / raw_latents.float().std())


class _Ema:
    """Exponential moving average of a module's parameters (decay ramps up over the first steps)."""

    def __init__(self, module, decay: float):
        self.average = copy.deepcopy(module).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for mean, live in zip(self.average.parameters(), module.parameters()):
            mean.lerp_(live.detach(), 1 - decay)


def encode_captions(tokenizer, text_encoder, captions: list[str]) -> torch.Tensor:
    """Last hidden states of `captions`, tokenised as inference reads a short plain prompt (one chunk of 77
    tokens, padded)."""
    ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return text_encoder(ids).last_hidden_state


def train_diffusion(unet, text_encoder, tokenizer, batches: LatentBatches, plan: TrainingPlan,
                    progress=None) -> tuple[torch.nn.Module, torch.nn.Module, list[float]]:
    """Train `unet` and `text_encoder` together on EPS prediction; returns their EMA copies and the losses."""
    alphas_cumprod = 1.0 / (1.0 + DiscreteSchedule().sigmas.double() ** 2)
    snr = (alphas_cumprod / (1 - alphas_cumprod)).float()
    weights = torch.clamp(snr, max=MIN_SNR_GAMMA) / snr
    sqrt_ab, sqrt_1mab = alphas_cumprod.sqrt().float(), (1 - alphas_cumprod).sqrt().float()
    parameters = list(unet.parameters()) + list(text_encoder.parameters())
    optimiser = torch.optim.AdamW(parameters, lr=plan.unet_lr, weight_decay=0.01)
    unet.train()
    text_encoder.train()
    ema_unet, ema_text = _Ema(unet, plan.ema_decay), _Ema(text_encoder, plan.ema_decay)
    generator = torch.Generator().manual_seed(plan.seed + 1)
    losses = []
    for step in range(plan.unet_steps):
        _set_lr(optimiser, learning_rate(step, plan.unet_steps, plan.unet_lr, warmup=100))
        latents, captions = batches.next()
        timesteps = torch.randint(0, len(alphas_cumprod), (len(latents),), generator=generator)
        noise = torch.randn(latents.shape, generator=generator)
        # offset noise: a random constant per image and channel, so the mean colour of x_t stops telling the
        # network the colours of z even at the highest noise level, and only the caption can
        noise = noise + OFFSET_NOISE * torch.randn((*latents.shape[:2], 1, 1), generator=generator)
        shape = (-1, 1, 1, 1)
        noisy = sqrt_ab[timesteps].view(shape) * latents + sqrt_1mab[timesteps].view(shape) * noise
        hidden = encode_captions(tokenizer, text_encoder, captions)
        predicted = unet(noisy, timesteps, encoder_hidden_states=hidden).sample
        loss = (weights[timesteps] * (predicted - noise).pow(2).mean(dim=(1, 2, 3))).mean()
        take_step(loss, optimiser, parameters, losses, progress)
        ema_unet.update(unet)
        ema_text.update(text_encoder)
    return ema_unet.average, ema_text.average, losses
