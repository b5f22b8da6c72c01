"""diffdiff.sampling: parametrisations, schedules, seeded noise, samplers, the differential gate, ``sample``.

Imports nothing else of diffdiff; bad arguments raise plain ``ValueError``.
"""

from .gate import GATE_MODES, DifferentialGate, resize_strength_map
from .noise import prepare_noise
from .parametrisation import KINDS, flux_mu, model_sampling
from .sample import sample
from .samplers import SAMPLERS
from .schedules import SCHEDULERS, calculate_sigmas, run_sigmas

__all__ = [
    "GATE_MODES",
    "KINDS",
    "SAMPLERS",
    "SCHEDULERS",
    "DifferentialGate",
    "calculate_sigmas",
    "flux_mu",
    "model_sampling",
    "prepare_noise",
    "resize_strength_map",
    "run_sigmas",
    "sample",
]
