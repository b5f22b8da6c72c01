"""The model end of the denoiser chain: classifier-free guidance over a parametrised network.

`ParametrisedNetwork` turns the network's eps / v / flow output into an x0 estimate with a `ModelSampling`
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
    """x0 = calculate_denoised(σ, network(calculate_input(σ, x), timestep(σ), conditioning), x).

    `network` is a network adapter (`diffdiff.models.networks`: one call for the UNet and each flow
    transformer), or a diffusers UNet, which is wrapped in one. `concat` (B, C', h, w), when given, goes to
    the adapter (an inpainting network's mask and masked-image latent). `added_cond` (SDXL:
    {"text_embeds", "time_ids"}) is the default for calls that give none. Conditioning tensors are expanded
    to x's batch and cast to the network's dtype (boolean masks keep theirs); the network runs in its own
    dtype and x0 comes back in x's dtype.
    """

    def __init__(self, network, model_sampling, added_cond: dict | None = None):
        from .networks import UNetNetwork

        self.network = network if hasattr(network, "module") else UNetNetwork(network)
        self.model_sampling = model_sampling
        self.added_cond = added_cond

    @property
    def unet(self):
        """The diffusers module the adapter calls."""
        return self.network.module

    @torch.no_grad()
    def __call__(self, x, sigma, encoder_hidden_states=None, concat=None, seed=None, **conditioning):
        if encoder_hidden_states is None:
            raise ValueError("ParametrisedNetwork needs encoder_hidden_states (the prompt conditioning)")
        sigma = torch.as_tensor(sigma, device=x.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(x.shape[0])
        batch = x.shape[0]
        dtype = _network_dtype(self.network.module)
        model_input = self.model_sampling.calculate_input(sigma, x).to(dtype)
        if concat is not None:  # an inpainting network's extra inputs, unscaled (docs/design.md §14)
            concat = concat.to(device=x.device, dtype=dtype)
        timestep = torch.as_tensor(self.model_sampling.timestep(sigma), device=x.device)
        if conditioning.get("added_cond_kwargs") is None and self.added_cond is not None:
            conditioning["added_cond_kwargs"] = self.added_cond
        conditioning["encoder_hidden_states"] = encoder_hidden_states
        output = self.network(model_input, timestep, concat,
                              **_on_network(conditioning, batch, x.device, dtype))
        return self.model_sampling.calculate_denoised(sigma, output.to(x.dtype), x)


def _on_network(conditioning: dict, batch: int, device, dtype) -> dict:
    """Conditioning tensors (nested dicts too) expanded to `batch` and moved to the network's device and
    dtype; boolean tensors keep their dtype; None entries are dropped."""
    moved = {}
    for name, value in conditioning.items():
        if isinstance(value, dict):
            moved[name] = _on_network(value, batch, device, dtype)
        elif isinstance(value, torch.Tensor):
            value = expand_to_batch(value, batch)
            moved[name] = value.to(device) if value.dtype == torch.bool else value.to(device, dtype)
        elif value is not None:
            moved[name] = value
    return moved


class CFGDenoiser:
    """uncond + cfg·(cond − uncond) in one batched inner call; cond only at cfg = 1.

    `cond` / `uncond` are dicts of keyword tensors for the inner network (`encoder_hidden_states` and,
    for SDXL, `added_cond_kwargs`). A call's `concat` (inpainting inputs, one per item of x) goes to both
    halves. Counts inner calls in `inner_calls`.

    `post_cfg(guided, x0_cond, sigma, run_cond)`, when given, adjusts the guided x0 after CFG (skip-layer
    guidance); `run_cond(**network_keywords)` runs the conditional branch again with extra keywords.

    `with_uncond=True` (asked by the CFG++ samplers) returns cat([guided x0, uncond x0], dim=1),
    (B, 2C, h, w), from the same one batched call, also at cfg = 1 (ComfyUI's disable_cfg1_optimization;
    the guided x0 is then uncond + 1·(cond − uncond), as ComfyUI computes it). Without an uncond
    conditioning it returns x0 alone (C channels), which the samplers read as uncond = x0.
    """

    def __init__(self, inner, cond: dict, uncond: dict | None, cfg: float, post_cfg=None):
        if cfg != 1.0 and uncond is None:
            raise ValueError("cfg != 1 needs an unconditional (negative) conditioning")
        self.inner = inner
        self.cond = cond
        self.uncond = uncond
        self.cfg = float(cfg)
        self.post_cfg = post_cfg
        self.model_sampling = getattr(inner, "model_sampling", None)
        self.inner_calls = 0

    def __call__(self, x, sigma, concat=None, with_uncond=False, **unused):
        batch = x.shape[0]
        sigma = torch.as_tensor(sigma, device=x.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(batch)
        self.inner_calls += 1
        extra = {} if concat is None else {"concat": concat}
        cond = _expand_kwargs({**self.cond, **extra}, batch)
        if self.uncond is None or (self.cfg == 1.0 and not with_uncond):
            x0_cond = self.inner(x, sigma, **cond)
            return self._post(x0_cond, x0_cond, x, sigma, cond)
        uncond = _expand_kwargs({**self.uncond, **extra}, batch)
        both = _concat_kwargs(cond, uncond)
        x0 = self.inner(torch.cat([x, x]), torch.cat([sigma, sigma]), **both)
        x0_cond, x0_uncond = x0.chunk(2)
        guided = self._post(x0_uncond + self.cfg * (x0_cond - x0_uncond), x0_cond, x, sigma, cond)
        return torch.cat([guided, x0_uncond], dim=1) if with_uncond else guided

    def _post(self, guided, x0_cond, x, sigma, cond):
        """`post_cfg(guided, x0_cond, sigma, run_cond)` when given (skip-layer guidance), else `guided`."""
        if self.post_cfg is None:
            return guided
        def run_cond(**network):
            return self.inner(x, sigma, **cond, **network)

        return self.post_cfg(guided, x0_cond, sigma, run_cond)


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
