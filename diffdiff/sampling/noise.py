"""Seeded initial noise, bit-identical to ComfyUI's ``prepare_noise`` (and its seed+1 'ddim' inpaint noise).

ComfyUI seeds the global CPU generator with ``torch.manual_seed(seed)`` and draws one ``torch.randn`` of the
latent's shape on the CPU in the latent's dtype. We do the same (so, as in ComfyUI, the global torch RNG is
reseeded as a side effect). A list of seeds draws batch item k alone with seed k, so item k of a batch run
equals the same seed run alone.
"""

from __future__ import annotations

import torch


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int or a list of ints, got {seed!r}")
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"seed must be in [-2**63, 2**64), got {seed}")


def _seed_list(latent: torch.Tensor, seed) -> list[int] | None:
    """The per-item seeds, or None for a single int seed; validates either form."""
    if isinstance(seed, (list, tuple)):
        if len(seed) != latent.shape[0]:
            raise ValueError(
                f"got {len(seed)} seeds for a batch of {latent.shape[0]}; give one seed per item")
        for s in seed:
            _check_seed(s)
        return list(seed)
    _check_seed(seed)
    return None


def _randn(shape, dtype, layout, seed: int) -> torch.Tensor:
    generator = torch.manual_seed(seed)
    return torch.randn(shape, dtype=dtype, layout=layout, generator=generator, device="cpu")


def prepare_noise(latent: torch.Tensor, seed) -> torch.Tensor:
    """Noise of ``latent``'s shape and dtype from ``seed`` (int, or a list of one int per batch item)."""
    seeds = _seed_list(latent, seed)
    if seeds is None:
        noise = _randn(latent.size(), latent.dtype, latent.layout, seed)
    else:
        item_shape = (1,) + tuple(latent.shape[1:])
        noise = torch.cat([_randn(item_shape, latent.dtype, latent.layout, s) for s in seeds])
    return noise.to(latent.device)


def ddim_inpaint_noise(noise: torch.Tensor, seed) -> torch.Tensor:
    """ComfyUI's noise for held (masked-out) pixels with sampler "ddim": float32 randn with seed+1 on the CPU,
    cast to the noise's dtype and device. A list of seeds gives each item its own seed+1."""
    seeds = _seed_list(noise, seed)
    if seeds is None:
        fresh = _randn(noise.shape, torch.float32, torch.strided, seed + 1)
    else:
        item_shape = (1,) + tuple(noise.shape[1:])
        fresh = torch.cat([_randn(item_shape, torch.float32, torch.strided, s + 1) for s in seeds])
    return fresh.to(noise.dtype).to(noise.device)
