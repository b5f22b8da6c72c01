"""DifferentialGate: a denoiser wrapper that lets each latent pixel change only as much as its strength says.

At a call with noise level σ the gate picks the active pixels A (the gate rule, see docs/design.md). Held
pixels (A = 0) are fed to the network as the clean latent noised to σ and come back as the clean latent:
``x ← A·x + (1−A)·noise_scaling(σ, n, z)`` before the model, ``x0 ← A·x0 + (1−A)·z`` after it.

Modes:
- ``"exact"`` (default): ComfyUI's threshold rule A = [S ≥ τ(σ)], except strength-0 pixels are never active
  (``sample`` then restores them bit for bit). Held pixels use the run's own noise for every sampler.
- ``"comfy"``: ComfyUI's DifferentialDiffusion node + KSamplerX0Inpaint exactly, including the soft
  ``gate_strength`` s (A ← s·A + (1−s)·S for 0 < s < 1; 0 counts as 1) and the last-call defect.
- ``"mask"``: plain soft-mask inpainting, A = S at every call.

Strength levels (exact mode): with ``levels="steps"`` a pixel is either held or active at a call, so a run of
N steps has about N distinct strengths. With ``"continuous"`` a pixel whose strength lies between this call's
threshold τ(σ) and the next scheduled σ's τ_next enters part-way: A = (S − τ_next) / (τ − τ_next) at the
one call before it becomes fully active (docs/design.md §5). Strength 0 stays held, strength ≥ τ is fully
active as before, and A never decreases as S grows.

τ(σ) = (t(σ) − t(σ_to)) / (t(σ_0) − t(σ_to)), σ_to = max(σ_min, σ_N), in the model's timestep units.
A call with no active pixel skips the network (``skip=True``) and returns the held values, bit-identical
to what the blend would give.

Keyword arguments other than ``seed`` go to the inner denoiser unchanged. When it answers with a multiple
of the latent's channels (the CFG++ samplers' ``with_uncond=True`` gets guided and unconditional x0 stacked,
(B, 2C, h, w)), every C-channel block is blended with the same A and held at the clean latent, so held
pixels see uncond x0 = z too. A skipped call returns z alone (C channels), which those samplers read as
uncond = x0 = z: the same values.

The gate trusts its arguments: the strength map comes already on the latent grid with values in [0, 1]
(``as_gate_map`` only reshapes it), and the mode and ``gate_strength`` are valid; the caller checks them.
"""

from __future__ import annotations

import torch

GATE_MODES = ("exact", "comfy", "mask")
STRENGTH_LEVELS = ("steps", "continuous")


def as_gate_map(strength_map: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """A latent-grid strength map as the gate uses it: float32 (1 or B, 1, h, w) on the latent's device.

    `strength_map`: a tensor (h, w), (B, h, w) or (1 or B, 1, h, w) with the latent's h, w and values that
    the caller has checked to lie in [0, 1]. It is only reshaped and moved: not scanned, not resized.
    """
    smap = strength_map
    if smap.ndim == 2:
        smap = smap[None, None]
    elif smap.ndim == 3:
        smap = smap[:, None]
    assert smap.ndim == 4 and smap.shape[1] == 1 and smap.shape[0] in (1, latent.shape[0]), smap.shape
    assert smap.shape[-2:] == latent.shape[-2:], (smap.shape, latent.shape)
    return smap.to(device=latent.device, dtype=torch.float32)


def blend(weight: torch.Tensor, active: torch.Tensor, held: torch.Tensor, exact: bool = True) -> torch.Tensor:
    """active·w + held·(1−w) (ComfyUI's order); with ``exact`` the result is exactly ``held`` where w = 0 and
    exactly ``active`` where w = 1."""
    mixed = active * weight + held * (1.0 - weight)
    if not exact:
        return mixed
    return torch.where(weight == 1, active, torch.where(weight == 0, held, mixed))


def held_like(latent: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """`latent` repeated on the channel axis to `out`'s channel count (a multiple of the latent's)."""
    blocks = out.shape[1] // latent.shape[1]
    return latent if blocks == 1 else latent.repeat(1, blocks, 1, 1)


class DifferentialGate:
    """Denoiser wrapper ``(x, sigma, **kw) -> x0`` applying a per-pixel strength map; see the module doc."""

    def __init__(self, inner, strength_map, latent, noise, sigmas, model_sampling, mode: str = "exact",
                 gate_strength: float = 1.0, skip: bool = True, levels: str = "steps"):
        assert mode in GATE_MODES and 0.0 <= gate_strength <= 1.0, (mode, gate_strength)
        assert levels in STRENGTH_LEVELS and (levels == "steps" or mode == "exact"), (levels, mode)
        assert noise.shape == latent.shape, (noise.shape, latent.shape)
        self.inner = inner
        self.model_sampling = model_sampling
        self.mode = mode
        self.levels = levels
        self.gate_strength = float(gate_strength)
        self.skip = skip
        self.latent = latent
        self.noise = noise
        self.strength = as_gate_map(strength_map, latent)
        self.keep_mask = self.strength == 0
        self.sigmas = sigmas
        self._passes_mask = getattr(inner, "accepts_active_mask", False) is True
        self.calls = 0
        self.network_calls = 0
        sigma_to = model_sampling.sigma_min
        if sigmas[-1] > sigma_to:
            sigma_to = sigmas[-1]
        self._ts_to = model_sampling.timestep(torch.as_tensor(sigma_to))
        self._ts_from = model_sampling.timestep(torch.as_tensor(sigmas[0]))
        self._sigma_to = float(sigma_to)
        self._schedule = [float(value) for value in sigmas]

    def _next_threshold(self, sigma) -> torch.Tensor:
        """τ of the first scheduled σ below `sigma` (0 when that lies under the run's last positive σ)."""
        current = float(torch.as_tensor(sigma).reshape(-1)[0])
        below = [value for value in self._schedule if value < current]
        if not below or max(below) < self._sigma_to:
            return torch.zeros((), dtype=torch.float32)
        return self.threshold(max(below)).clamp(min=0)

    def threshold(self, sigma) -> torch.Tensor:
        """τ at noise level σ (1 at the run's first σ, 0 at its last positive one)."""
        sigma = torch.as_tensor(sigma)
        current = self.model_sampling.timestep(sigma.reshape(-1)[0])
        span = self._ts_from - self._ts_to
        if self.mode != "comfy" and span == 0:
            return torch.zeros((), dtype=torch.float32)
        return (current - self._ts_to) / span

    def active_mask(self, sigma) -> torch.Tensor:
        """A at noise level σ: float32 (1 or B, 1, h, w), 1 = active (let the model change the pixel)."""
        s = self.strength
        if self.mode == "mask":
            return s
        threshold = self.threshold(sigma).to(s.device)
        active = (s >= threshold).to(s.dtype)
        if self.mode == "exact":
            if self.levels == "continuous":
                active = self._entering(s, sigma, threshold, active)
            active = active * (s > 0).to(s.dtype)
            if self.gate_strength < 1:
                return self.gate_strength * active + (1 - self.gate_strength) * s
            return active
        if self.gate_strength and self.gate_strength < 1:
            return self.gate_strength * active + (1 - self.gate_strength) * s
        return active

    def _entering(self, s: torch.Tensor, sigma, threshold: torch.Tensor, binary: torch.Tensor):
        """The continuous levels' A: 1 where S ≥ τ, (S − τ_next) / (τ − τ_next) in [0, 1) below it."""
        lower = self._next_threshold(sigma).to(s.device)
        span = threshold - lower
        if float(span) <= 0:
            return binary
        part = ((s - lower) / span).clamp(0.0, 1.0)
        return torch.where(binary == 1, binary, part)

    def __call__(self, x, sigma, **kwargs):
        self.calls += 1
        exact = self.mode != "comfy"
        weight = self.active_mask(sigma).to(x.dtype)
        if self.skip and not bool((weight != 0).any()):
            return self.latent.to(x.dtype).expand_as(x).clone()
        sigma_t = torch.as_tensor(sigma, device=x.device)
        if sigma_t.ndim == 0:
            sigma_t = sigma_t.expand(x.shape[0])
        noised = self.model_sampling.noise_scaling(sigma_t, self.noise, self.latent)
        x_in = blend(weight, x, noised, exact)
        kwargs.pop("seed", None)
        if self._passes_mask:
            kwargs["active_mask"] = weight.expand(x.shape[0], 1, *weight.shape[-2:])
        self.network_calls += 1
        out = self.inner(x_in, sigma, **kwargs)
        return blend(weight, out, held_like(self.latent, out), exact)
