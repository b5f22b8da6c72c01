"""The sampler registry: `SAMPLERS` maps ComfyUI's sampler names to sampler functions.

Every sampler has k-diffusion's signature
`fn(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, **options)`;
`model(x, sigma * x.new_ones(B), **extra_args)` returns the denoised x0; stochastic samplers take
their seed (an int, or one int per batch item) from `extra_args["seed"]`. Every registered sampler
refuses an option it does not take with a ValueError naming the valid ones.

`SAMPLERS` holds every name of ComfyUI's KSampler list (KSAMPLER_NAMES plus ddim, uni_pc, uni_pc_bh2).

Modules: ode (deterministic single-step), ancestral, sde, stochastic (er_sde, seeds_3, sa_solver),
cfg_pp (the CFG++ family, which asks the model for the unconditional x0 too), dpm_solver (dpm_fast,
dpm_adaptive), multistep (lms, ipndm, ipndm_v, deis), unipc, deis (DEIS's weights), sa_solver (SA-Solver's
weights), noise (noise samplers), common (shared math, callback, option check).
"""

from __future__ import annotations

from .ancestral import (
    sample_ddpm,
    sample_dpm_2_ancestral,
    sample_dpmpp_2s_ancestral,
    sample_euler_ancestral,
    sample_lcm,
    sample_res_multistep,
    sample_res_multistep_ancestral,
)
from .cfg_pp import (
    sample_dpmpp_2m_cfg_pp,
    sample_dpmpp_2s_ancestral_cfg_pp,
    sample_euler_ancestral_cfg_pp,
    sample_euler_cfg_pp,
    sample_gradient_estimation_cfg_pp,
    sample_res_multistep_ancestral_cfg_pp,
    sample_res_multistep_cfg_pp,
)
from .common import refusing_unknown_options
from .dpm_solver import sample_dpm_adaptive, sample_dpm_fast
from .multistep import sample_deis, sample_ipndm, sample_ipndm_v, sample_lms
from .ode import (
    sample_dpm_2,
    sample_dpmpp_2m,
    sample_euler,
    sample_gradient_estimation,
    sample_heun,
    sample_heunpp2,
)
from .sde import (
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
from .stochastic import sample_er_sde, sample_sa_solver, sample_sa_solver_pece, sample_seeds_3
from .unipc import sample_uni_pc, sample_uni_pc_bh2

__all__ = ["MULTISTEP_SAMPLERS", "SAMPLERS", "SINGLE_STEP_SAMPLERS"]

SINGLE_STEP_SAMPLERS: dict = {
    name: refusing_unknown_options(fn)
    for name, fn in {
        "euler": sample_euler,
        "euler_cfg_pp": sample_euler_cfg_pp,
        "euler_ancestral": sample_euler_ancestral,
        "euler_ancestral_cfg_pp": sample_euler_ancestral_cfg_pp,
        "heun": sample_heun,
        "heunpp2": sample_heunpp2,
        "exp_heun_2_x0": sample_exp_heun_2_x0,
        "exp_heun_2_x0_sde": sample_exp_heun_2_x0_sde,
        "dpm_2": sample_dpm_2,
        "dpm_2_ancestral": sample_dpm_2_ancestral,
        "dpm_fast": sample_dpm_fast,
        "dpm_adaptive": sample_dpm_adaptive,
        "dpmpp_2s_ancestral": sample_dpmpp_2s_ancestral,
        "dpmpp_2s_ancestral_cfg_pp": sample_dpmpp_2s_ancestral_cfg_pp,
        "dpmpp_sde": sample_dpmpp_sde,
        "dpmpp_sde_gpu": sample_dpmpp_sde_gpu,
        "dpmpp_2m": sample_dpmpp_2m,
        "dpmpp_2m_cfg_pp": sample_dpmpp_2m_cfg_pp,
        "dpmpp_2m_sde": sample_dpmpp_2m_sde,
        "dpmpp_2m_sde_gpu": sample_dpmpp_2m_sde_gpu,
        "dpmpp_2m_sde_heun": sample_dpmpp_2m_sde_heun,
        "dpmpp_2m_sde_heun_gpu": sample_dpmpp_2m_sde_heun_gpu,
        "dpmpp_3m_sde": sample_dpmpp_3m_sde,
        "dpmpp_3m_sde_gpu": sample_dpmpp_3m_sde_gpu,
        "ddpm": sample_ddpm,
        "lcm": sample_lcm,
        "res_multistep": sample_res_multistep,
        "res_multistep_cfg_pp": sample_res_multistep_cfg_pp,
        "res_multistep_ancestral": sample_res_multistep_ancestral,
        "res_multistep_ancestral_cfg_pp": sample_res_multistep_ancestral_cfg_pp,
        "gradient_estimation": sample_gradient_estimation,
        "gradient_estimation_cfg_pp": sample_gradient_estimation_cfg_pp,
        "er_sde": sample_er_sde,
        "seeds_2": sample_seeds_2,
        "seeds_3": sample_seeds_3,
        "sa_solver": sample_sa_solver,
        "sa_solver_pece": sample_sa_solver_pece,
        # ComfyUI's "ddim" is euler; its different inpaint-noise option is handled by the caller.
        "ddim": sample_euler,
    }.items()
}

# Multistep samplers reuse earlier denoiser outputs: one model call per step.
MULTISTEP_SAMPLERS: dict = {
    name: refusing_unknown_options(fn)
    for name, fn in {
        "lms": sample_lms,
        "ipndm": sample_ipndm,
        "ipndm_v": sample_ipndm_v,
        "deis": sample_deis,
        "uni_pc": sample_uni_pc,
        "uni_pc_bh2": sample_uni_pc_bh2,
    }.items()
}

SAMPLERS: dict = {**SINGLE_STEP_SAMPLERS, **MULTISTEP_SAMPLERS}
