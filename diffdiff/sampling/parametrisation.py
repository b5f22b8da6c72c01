"""Model parametrisations: noise schedules (σ ↔ timestep) and eps / v / flow conversions, ComfyUI-compatible.

A ``ModelSampling`` object answers every question the sampling core asks about a model family: its σ table,
how σ maps to the network timestep, how the network input is scaled, how a network output becomes x0 and how
a clean latent is noised. The numerics follow ComfyUI's ``comfy/model_sampling.py`` (formulas: see
docs/design.md): the discrete table is built in float64 and stored as float32, ``timestep`` is the nearest
table entry in log-σ and ``sigma`` interpolates log-σ linearly. ``sigma_min`` / ``sigma_max`` are 0-dim
float32 tensors, as in ComfyUI.
"""

from __future__ import annotations

import math

import torch

KINDS = ("sd1", "sd2", "sd2-v", "sdxl", "sd3", "flux", "flux-schnell", "flux-fill", "z-image")


def _sigma_like(sigma, ndim: int) -> torch.Tensor:
    """View σ (a float, a 0-dim tensor or a (B,) tensor) so it broadcasts against an ``ndim`` tensor."""
    sigma = torch.as_tensor(sigma)
    return sigma.view(sigma.shape[:1] + (1,) * (ndim - 1))


# --- predictions: what the network output means ---------------------------------------------------------


class EpsPrediction:
    """Network predicts the noise ε (SD1.x, SD2 512, SDXL)."""

    prediction = "eps"
    sigma_data = 1.0

    def calculate_input(self, sigma, x):
        sigma = _sigma_like(sigma, x.ndim)
        return x / (sigma**2 + self.sigma_data**2) ** 0.5

    def calculate_denoised(self, sigma, model_output, model_input):
        sigma = _sigma_like(sigma, model_output.ndim)
        return model_input - model_output * sigma

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        sigma = _sigma_like(sigma, noise.ndim)
        if max_denoise:
            scaled = noise * torch.sqrt(1.0 + sigma**2.0)
        else:
            scaled = noise * sigma
        return scaled + latent_image

    def inverse_noise_scaling(self, sigma, latent):
        return latent


class VPrediction(EpsPrediction):
    """Network predicts v (SD2 768-v)."""

    prediction = "v"

    def calculate_denoised(self, sigma, model_output, model_input):
        sigma = _sigma_like(sigma, model_output.ndim)
        sd2 = self.sigma_data**2
        return (model_input * sd2 / (sigma**2 + sd2)
                - model_output * sigma * self.sigma_data / (sigma**2 + sd2) ** 0.5)


class FlowPrediction:
    """Network predicts the flow velocity; x_σ = σ·n + (1−σ)·x0 (SD3, Flux)."""

    prediction = "flow"

    def calculate_input(self, sigma, x):
        return x

    def calculate_denoised(self, sigma, model_output, model_input):
        sigma = _sigma_like(sigma, model_output.ndim)
        return model_input - model_output * sigma

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        sigma = _sigma_like(sigma, noise.ndim)
        return sigma * noise + (1.0 - sigma) * latent_image

    def inverse_noise_scaling(self, sigma, latent):
        sigma = _sigma_like(sigma, latent.ndim)
        return latent / (1.0 - sigma)


# --- schedules: σ ↔ timestep ------------------------------------------------------------------------------


class _TableBounds:
    """``sigma_min`` / ``sigma_max`` read from the ascending σ table."""

    sigmas: torch.Tensor

    @property
    def sigma_min(self) -> torch.Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> torch.Tensor:
        return self.sigmas[-1]


class DiscreteSchedule(_TableBounds):
    """The 1000-step DDPM 'scaled linear' β schedule of Stable Diffusion, as a σ table."""

    def __init__(self, linear_start: float = 0.00085, linear_end: float = 0.012, timesteps: int = 1000):
        betas = torch.linspace(linear_start**0.5, linear_end**0.5, timesteps, dtype=torch.float64) ** 2
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.sigmas = sigmas.float()
        self.log_sigmas = sigmas.log().float()

    def timestep(self, sigma):
        """Index of the table entry nearest to σ in log-σ (a long tensor of σ's shape)."""
        sigma = torch.as_tensor(sigma)
        dists = sigma.log().to(self.log_sigmas.device) - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape).to(sigma.device)

    def sigma(self, timestep):
        """σ at a (fractional) timestep: linear interpolation of log-σ between table entries."""
        timestep = torch.as_tensor(timestep)
        t = torch.clamp(timestep.float().to(self.log_sigmas.device), min=0, max=len(self.sigmas) - 1)
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        log_sigma = (1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]
        return log_sigma.exp().to(timestep.device)

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return self.sigma(torch.tensor((1.0 - percent) * 999.0)).item()


def time_snr_shift(shift: float, t):
    """SD3's shifted flow time: shift·t / (1 + (shift − 1)·t)."""
    if shift == 1.0:
        return t
    return shift * t / (1 + (shift - 1) * t)


class DiscreteFlowSchedule(_TableBounds):
    """SD3's flow schedule: σ(t) = time_snr_shift(shift, t / multiplier), timestep(σ) = σ·multiplier."""

    def __init__(self, shift: float = 3.0, multiplier: float = 1000, timesteps: int = 1000):
        self.shift = shift
        self.multiplier = multiplier
        self.sigmas = self.sigma((torch.arange(1, timesteps + 1, 1) / timesteps) * multiplier)

    def timestep(self, sigma):
        return sigma * self.multiplier

    def sigma(self, timestep):
        return time_snr_shift(self.shift, timestep / self.multiplier)

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return time_snr_shift(self.shift, 1.0 - percent)


def flux_time_shift(mu: float, t, exponent: float = 1.0):
    """Flux's exponential time shift: e^μ / (e^μ + (1/t − 1)^exponent)."""
    return math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** exponent)


class FluxSchedule(_TableBounds):
    """Flux's flow schedule with time shift μ (``shift``); 10000-entry table, timestep(σ) = σ."""

    def __init__(self, shift: float = 1.15, timesteps: int = 10000):
        self.shift = shift
        self.sigmas = self.sigma(torch.arange(1, timesteps + 1, 1) / timesteps)

    def timestep(self, sigma):
        return sigma

    def sigma(self, timestep):
        return flux_time_shift(self.shift, timestep)

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return flux_time_shift(self.shift, 1.0 - percent)


def flux_mu(width: int, height: int, base_shift: float = 0.5, max_shift: float = 1.15) -> float:
    """Flux μ for a width × height pixel image: linear in the token count W·H/256 (256 → base, 4096 → max)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    slope = (max_shift - base_shift) / (4096 - 256)
    return base_shift + slope * (width * height / 256 - 256)


# --- the model families ------------------------------------------------------------------------------------


class DiscreteEps(EpsPrediction, DiscreteSchedule):
    """SD1.x / SD2 (512) / SDXL: discrete schedule, ε prediction."""

    def __init__(self, linear_start: float = 0.00085, linear_end: float = 0.012):
        DiscreteSchedule.__init__(self, linear_start, linear_end)


class DiscreteV(VPrediction, DiscreteSchedule):
    """SD2 768-v: discrete schedule, v prediction."""

    def __init__(self, linear_start: float = 0.00085, linear_end: float = 0.012):
        DiscreteSchedule.__init__(self, linear_start, linear_end)


class DiscreteFlow(FlowPrediction, DiscreteFlowSchedule):
    """SD3: shifted discrete flow."""

    def __init__(self, shift: float = 3.0, multiplier: float = 1000):
        DiscreteFlowSchedule.__init__(self, shift, multiplier)


class Flux(FlowPrediction, FluxSchedule):
    """Flux: flow with exponential time shift μ."""

    def __init__(self, shift: float = 1.15):
        FluxSchedule.__init__(self, shift)


class FluxSchnell(Flux):
    """Flux schnell: Flux's schedule with the fixed μ = 1 ComfyUI gives it."""

    def __init__(self, shift: float = 1.0):
        Flux.__init__(self, shift)


class ZImageFlow(DiscreteFlow):
    """Z-Image: shifted discrete flow, shift 3 and timestep(σ) = σ (multiplier 1)."""

    def __init__(self, shift: float = 3.0, multiplier: float = 1.0):
        DiscreteFlow.__init__(self, shift, multiplier)


_FAMILIES = {
    "sd1": DiscreteEps,
    "sd2": DiscreteEps,
    "sd2-v": DiscreteV,
    "sdxl": DiscreteEps,
    "sd3": DiscreteFlow,
    "flux": Flux,
    "flux-schnell": FluxSchnell,
    "flux-fill": Flux,
    "z-image": ZImageFlow,
}

ModelSampling = DiscreteEps | DiscreteV | DiscreteFlow | Flux  # FluxSchnell, ZImageFlow are subclasses


def model_sampling(kind: str, **params) -> ModelSampling:
    """The ``ModelSampling`` of a model family; params: sd3 ``shift`` (3.0), ``multiplier`` (1000); flux and
    flux-fill ``shift`` (= μ, 1.15), flux-schnell (1.0); z-image ``shift`` (3.0), ``multiplier`` (1);
    discrete kinds ``linear_start`` / ``linear_end``."""
    family = _FAMILIES.get(kind)
    if family is None:
        raise ValueError(f"unknown model kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    try:
        return family(**params)
    except TypeError as error:
        raise ValueError(f"bad parameters for model kind {kind!r}: {error}") from None
