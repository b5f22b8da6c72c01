"""Test doubles the tests share: analytic denoisers, a recording wrapper, a flow model sampling, σ ramps.

The analytic denoiser D(x, σ) = x / (1 + σ²) is the exact posterior mean for data ~ N(0, 1) under
x = x0 + σ·eps; its probability-flow ODE has the solution x(σ) = x(σ0)·sqrt(1 + σ²) / sqrt(1 + σ0²).
The blurred variants couple neighbouring pixels, as a real network does.

A plain module, not a fixture file: pytest's default ("prepend") import mode puts tests/ (which has no
__init__.py) on sys.path, in every xdist worker too, so test files say ``from doubles import ...``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

BOX_RADIUS = 2  # box_denoiser's receptive field: a 5×5 box


def analytic(x, sigma, **kwargs):
    """x0 = x / (1 + σ²), σ of shape (B,)."""
    return x / (1 + sigma.view(-1, *([1] * (x.ndim - 1))) ** 2)


def analytic_then_blur(x, sigma, **kwargs):
    """The analytic x0 followed by a 3×3 mean (edges replicated)."""
    x0 = analytic(x, sigma)
    return F.avg_pool2d(F.pad(x0, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def blur_then_shrink(x, sigma, **kwargs):
    """A 3×3 box blur of x (zero padded, per channel), shrunk by 1 / (1 + σ²)."""
    kernel = torch.full((x.shape[1], 1, 3, 3), 1 / 9, dtype=x.dtype)
    blur = F.conv2d(x, kernel, padding=1, groups=x.shape[1])
    return blur / (1 + sigma.view(-1, 1, 1, 1) ** 2)


def box_denoiser(x, sigma, **kwargs):
    """x0 = zero-padded 5×5 box blur of x / (1 + σ²): a local denoiser with receptive field BOX_RADIUS."""
    return F.avg_pool2d(x, 5, 1, BOX_RADIUS, count_include_pad=True) / (1 + sigma[:, None, None, None] ** 2)


def cfg_probe(x, sigma, encoder_hidden_states=None, **kwargs):
    """x0 = x·σ + mean of the context: tells cond from uncond items in a guided batch."""
    return x * sigma.view(-1, 1, 1, 1) + encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)


class Call(NamedTuple):
    """One recorded denoiser call (copies of x and σ; the keyword arguments as given)."""

    x: torch.Tensor
    sigma: torch.Tensor
    kwargs: dict


class Recorder:
    """A denoiser (`inner`, default `analytic`) that records every call in `calls` and checks that σ has
    shape (B,). `model_sampling` is exposed only when given; `accepts_active_mask` as asked."""

    def __init__(self, inner=analytic, *, accepts_active_mask=False, model_sampling=None):
        self.inner = inner
        self.accepts_active_mask = accepts_active_mask
        if model_sampling is not None:
            self.model_sampling = model_sampling
        self.calls: list[Call] = []

    def __call__(self, x, sigma, **kwargs):
        assert sigma.shape == (x.shape[0],), (sigma.shape, x.shape)
        self.calls.append(Call(x.clone(), sigma.clone(), kwargs))
        return self.inner(x, sigma, **kwargs)

    @property
    def sigmas_seen(self) -> list[float]:
        """The first item's σ of every call."""
        return [float(call.sigma[0]) for call in self.calls]

    @property
    def items(self) -> int:
        """Batch items evaluated over all calls."""
        return sum(call.x.shape[0] for call in self.calls)


class FlowSampling:
    """A minimal rectified-flow model sampling (shift 1): x = (1 - σ) x0 + σ n."""

    prediction = "flow"
    sigma_min = 0.001
    sigma_max = 1.0

    def timestep(self, sigma):
        return torch.as_tensor(sigma) * 1000

    def sigma(self, timestep):
        return torch.as_tensor(timestep) / 1000

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        return sigma * noise + (1 - sigma) * latent_image


def fixed_noise(value):
    """A noise sampler that always returns the same tensor (to write steps out by hand)."""
    return lambda sigma, sigma_next: value


def karras(points, sigma_min, sigma_max, rho=7.0, dtype=torch.float64):
    """`points` σ from sigma_max down to sigma_min, evenly spaced in σ^(1/ρ) (no final 0)."""
    ramp = torch.linspace(0, 1, points, dtype=dtype)
    return (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho


def with_zero(sigmas):
    """`sigmas` with a final 0 appended."""
    return torch.cat([sigmas, sigmas.new_zeros(1)])
