"""diffdiff.sampling: parametrisations, schedules, seeded noise, samplers, the differential gate, ``sample``.

Imports nothing else of diffdiff. Callers validate: ``SAMPLERS``, ``SCHEDULERS`` and ``GATE_MODES`` are the
name lists a request is checked against, and strength maps arrive on the latent grid with values in [0, 1]
(``as_gate_map``); this package does not re-check them.
"""

from .gate import GATE_MODES, STRENGTH_LEVELS, DifferentialGate, as_gate_map
from .noise import prepare_noise
from .parametrisation import KINDS, flux_mu, model_sampling
from .sample import sample
from .samplers import SAMPLERS
from .schedules import SCHEDULERS, calculate_sigmas, run_sigmas

__all__ = [
    "GATE_MODES",
    "STRENGTH_LEVELS",
    "KINDS",
    "SAMPLERS",
    "SCHEDULERS",
    "DifferentialGate",
    "as_gate_map",
    "calculate_sigmas",
    "flux_mu",
    "model_sampling",
    "prepare_noise",
    "run_sigmas",
    "sample",
]
