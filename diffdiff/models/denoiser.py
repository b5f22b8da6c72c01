"""The model end of the denoiser chain: classifier-free guidance over a parametrised diffusers UNet.

`ParametrisedNetwork` turns the UNet's eps / v output into an x0 estimate with a `ModelSampling`
(k-diffusion convention: `denoiser(x, sigma, **kw) -> x0`). `CFGDenoiser` runs cond and uncond in one
batched call and mixes them as uncond + cfg·(cond − uncond); at cfg = 1 it runs cond only.

Conditioning tensors of batch c are expanded to x's batch n (n a multiple of c) by repeating the whole
block, so batch item b uses conditioning item b mod c: batches stacked as [tile0 of images 0..c-1, tile1
of images 0..c-1, ...] (or any stacking when c = 1) get the right prompt.
"""

from __future__ import annotations

import torch


def expand_to_batch(tensor: torch.Tensor | None, batch: int) -> torch.Tensor | None:
    """Repeat a (c, ...) tensor to (batch, ...) when batch is a multiple of c; item b gets item b mod c."""
    if tensor is None:
        return None
    count = tensor.shape[0]
    if count == batch:
        return tensor
    if count == 0 or batch % count:
        raise ValueError(f"conditioning batch {count} does not divide the latent batch {batch}")
    return tensor.repeat(batch // count, *([1] * (tensor.ndim - 1)))


def _network_dtype(network) -> torch.dtype:
    dtype = getattr(network, "dtype", None)
    if isinstance(dtype, torch.dtype):
        return dtype
    for parameter in network.parameters():
        return parameter.dtype
    return torch.float32


class ParametrisedNetwork:
    """x0 = calculate_denoised(σ, unet(calculate_input(σ, x), timestep(σ), context).sample, x).

    `concat` (B, C', h, w), when given, is appended to the scaled input on the channel axis (inpainting
    UNets' mask and masked-image latent). `added_cond` (SDXL: {"text_embeds", "time_ids"}) is the default
    for calls that give none. The network runs in its own dtype; x0 comes back in x's dtype.
    """

    def __init__(self, unet, model_sampling, added_cond: dict | None = None):
        self.unet = unet
        self.model_sampling = model_sampling
        self.added_cond = added_cond

    @torch.no_grad()
    def __call__(self, x, sigma, encoder_hidden_states=None, added_cond_kwargs=None, concat=None, **unused):
        if encoder_hidden_states is None:
            raise ValueError("ParametrisedNetwork needs encoder_hidden_states (the prompt conditioning)")
        sigma = torch.as_tensor(sigma, device=x.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(x.shape[0])
        batch = x.shape[0]
        dtype = _network_dtype(self.unet)
        model_input = self.model_sampling.calculate_input(sigma, x).to(dtype)
        if concat is not None:  # an inpainting UNet's extra input channels, unscaled (docs/design.md §14)
            model_input = torch.cat([model_input, concat.to(device=x.device, dtype=dtype)], dim=1)
        timestep = torch.as_tensor(self.model_sampling.timestep(sigma), device=x.device)
        context = expand_to_batch(encoder_hidden_states, batch).to(device=x.device, dtype=dtype)
        added = added_cond_kwargs if added_cond_kwargs is not None else self.added_cond
        kwargs = {}
        if added is not None:
            kwargs["added_cond_kwargs"] = {
                name: expand_to_batch(value, batch).to(device=x.device, dtype=dtype)
                for name, value in added.items()
            }
        output = self.unet(model_input, timestep, encoder_hidden_states=context, **kwargs).sample
        return self.model_sampling.calculate_denoised(sigma, output.to(x.dtype), x)


class CFGDenoiser:
    """uncond + cfg·(cond − uncond) in one batched inner call; cond only at cfg = 1.

    `cond` / `uncond` are dicts of keyword tensors for the inner network (`encoder_hidden_states` and,
    for SDXL, `added_cond_kwargs`). A call's `concat` (inpainting inputs, one per item of x) goes to both
    halves. Counts inner calls in `inner_calls`.
    """

    def __init__(self, inner, cond: dict, uncond: dict | None, cfg: float):
        if cfg != 1.0 and uncond is None:
            raise ValueError("cfg != 1 needs an unconditional (negative) conditioning")
        self.inner = inner
        self.cond = cond
        self.uncond = uncond
        self.cfg = float(cfg)
        self.model_sampling = getattr(inner, "model_sampling", None)
        self.inner_calls = 0

    def __call__(self, x, sigma, concat=None, **unused):
        batch = x.shape[0]
        sigma = torch.as_tensor(sigma, device=x.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(batch)
        self.inner_calls += 1
        extra = {} if concat is None else {"concat": concat}
        if self.cfg == 1.0:
            return self.inner(x, sigma, **_expand_kwargs(self.cond, batch), **extra)
        cond = _expand_kwargs({**self.cond, **extra}, batch)
        uncond = _expand_kwargs({**self.uncond, **extra}, batch)
        both = _concat_kwargs(cond, uncond)
        x0 = self.inner(torch.cat([x, x]), torch.cat([sigma, sigma]), **both)
        x0_cond, x0_uncond = x0.chunk(2)
        return x0_uncond + self.cfg * (x0_cond - x0_uncond)


def _expand_kwargs(kwargs: dict, batch: int) -> dict:
    expanded = {}
    for name, value in kwargs.items():
        if isinstance(value, dict):
            expanded[name] = _expand_kwargs(value, batch)
        elif isinstance(value, torch.Tensor):
            expanded[name] = expand_to_batch(value, batch)
        else:
            expanded[name] = value
    return expanded


def _concat_kwargs(first: dict, second: dict) -> dict:
    if first.keys() != second.keys():
        raise ValueError("cond and uncond conditioning must have the same entries")
    joined = {}
    for name, value in first.items():
        if isinstance(value, dict):
            joined[name] = _concat_kwargs(value, second[name])
        elif isinstance(value, torch.Tensor):
            joined[name] = torch.cat([value, second[name]])
        else:
            joined[name] = value
    return joined
