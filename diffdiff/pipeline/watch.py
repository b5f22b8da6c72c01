"""Two links of the denoiser chain that watch the network: `NetworkCalls` counts its (batched) calls, and
`FiniteGuard` stops the run with one line when it returns NaN/inf instead of letting garbage through."""

from __future__ import annotations

import torch

from ..errors import DiffdiffError


class NetworkCalls:
    """Pass-through denoiser that counts the calls reaching the network (one call = one batch of tiles and
    images, with CFG's conditional and unconditional halves together)."""

    def __init__(self, inner):
        self.inner = inner
        self.model_sampling = getattr(inner, "model_sampling", None)
        self.calls = 0

    def __call__(self, x, sigma, **kwargs):
        self.calls += 1
        return self.inner(x, sigma, **kwargs)


class FiniteGuard:
    """Pass-through denoiser that refuses a non-finite x0, naming the noise level where it appeared."""

    def __init__(self, inner):
        self.inner = inner
        self.model_sampling = getattr(inner, "model_sampling", None)

    def __call__(self, x, sigma, **kwargs):
        denoised = self.inner(x, sigma, **kwargs)
        if not bool(torch.isfinite(denoised).all()):
            level = float(torch.as_tensor(sigma).reshape(-1)[0])
            raise DiffdiffError(
                f"the model produced NaN/inf at noise level sigma={level:.4g}; half precision overflows in "
                "some models: try --dtype fp32 (or bf16)")
        return denoised
