"""The sampler registry: `SAMPLERS` maps ComfyUI's sampler names to sampler functions.

Every sampler has k-diffusion's signature
`fn(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, **options)`;
`model(x, sigma * x.new_ones(B), **extra_args)` returns the denoised x0; stochastic samplers take
their seed (an int, or one int per batch item) from `extra_args["seed"]`.

The single-step, ancestral and SDE samplers live in samplers_ode / samplers_ancestral / samplers_sde;
the multistep ones (lms, ipndm, deis, uni_pc, ...) in multistep.py.
"""

from __future__ import annotations

import functools
import inspect

from diffdiff.sampling.multistep import MULTISTEP_SAMPLERS
from diffdiff.sampling.samplers_ancestral import (
    sample_ddpm,
    sample_dpm_2_ancestral,
    sample_dpmpp_2s_ancestral,
    sample_euler_ancestral,
    sample_lcm,
    sample_res_multistep,
    sample_res_multistep_ancestral,
)
from diffdiff.sampling.samplers_math import get_ancestral_step, to_d
from diffdiff.sampling.samplers_ode import (
    sample_dpm_2,
    sample_dpmpp_2m,
    sample_euler,
    sample_gradient_estimation,
    sample_heun,
    sample_heunpp2,
)
from diffdiff.sampling.samplers_sde import (
    sample_dpmpp_2m_sde,
    sample_dpmpp_2m_sde_gpu,
    sample_dpmpp_2m_sde_heun,
    sample_dpmpp_2m_sde_heun_gpu,
    sample_dpmpp_3m_sde,
    sample_dpmpp_3m_sde_gpu,
    sample_dpmpp_sde,
    sample_dpmpp_sde_gpu,
    sample_exp_heun_2_x0,
    sample_exp_heun_2_x0_sde,
    sample_seeds_2,
)

__all__ = ["SAMPLERS", "SINGLE_STEP_SAMPLERS", "get_ancestral_step", "to_d"]

_FIXED_ARGUMENTS = ("model", "x", "sigmas", "extra_args", "callback", "disable", "noise_sampler")


@functools.cache
def refusing_unknown_options(sampler):
    """`sampler`, raising ValueError (naming the valid options) for an option it does not take."""
    parameters = inspect.signature(sampler).parameters
    valid = sorted(set(parameters) - set(_FIXED_ARGUMENTS) - {"options"})
    if sampler.__name__.endswith("_gpu"):
        valid.remove("cpu_tree")
    name = sampler.__name__.removeprefix("sample_")

    @functools.wraps(sampler)
    def checked(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                **options):
        unknown = sorted(set(options) - set(valid))
        if unknown:
            choices = ", ".join(valid) or "none"
            raise ValueError(f"sampler {name} has no option {', '.join(unknown)}; valid options: {choices}")
        return sampler(model, x, sigmas, extra_args, callback, disable, noise_sampler, **options)

    return checked


SINGLE_STEP_SAMPLERS: dict = {
    "euler": sample_euler,
    "euler_ancestral": sample_euler_ancestral,
    "heun": sample_heun,
    "heunpp2": sample_heunpp2,
    "exp_heun_2_x0": sample_exp_heun_2_x0,
    "exp_heun_2_x0_sde": sample_exp_heun_2_x0_sde,
    "dpm_2": sample_dpm_2,
    "dpm_2_ancestral": sample_dpm_2_ancestral,
    "dpmpp_2s_ancestral": sample_dpmpp_2s_ancestral,
    "dpmpp_sde": sample_dpmpp_sde,
    "dpmpp_sde_gpu": sample_dpmpp_sde_gpu,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_2m_sde": sample_dpmpp_2m_sde,
    "dpmpp_2m_sde_gpu": sample_dpmpp_2m_sde_gpu,
    "dpmpp_2m_sde_heun": sample_dpmpp_2m_sde_heun,
    "dpmpp_2m_sde_heun_gpu": sample_dpmpp_2m_sde_heun_gpu,
    "dpmpp_3m_sde": sample_dpmpp_3m_sde,
    "dpmpp_3m_sde_gpu": sample_dpmpp_3m_sde_gpu,
    "ddpm": sample_ddpm,
    "lcm": sample_lcm,
    "res_multistep": sample_res_multistep,
    "res_multistep_ancestral": sample_res_multistep_ancestral,
    "gradient_estimation": sample_gradient_estimation,
    "seeds_2": sample_seeds_2,
    # ComfyUI's "ddim" is euler; its different inpaint-noise option is handled by the caller.
    "ddim": sample_euler,
}

SINGLE_STEP_SAMPLERS = {name: refusing_unknown_options(fn) for name, fn in SINGLE_STEP_SAMPLERS.items()}

SAMPLERS: dict = {**SINGLE_STEP_SAMPLERS, **MULTISTEP_SAMPLERS}
