"""Model families: the family table, and recognising SD1.x / SD2.x (eps or v) / SDXL from checkpoint keys or
a diffusers folder (the flow families SD3, Flux and Z-Image are recognised by `flow_layout` / `flow_loading`).

A family name is also the `diffdiff.sampling.model_sampling` kind; the UNet families' shipped configs live
in `diffdiff/models/configs/<family>/`. Single-file checkpoints in the
A1111/ComfyUI ("ldm") layout are told apart by their text-encoder keys; SD2's V-prediction by ComfyUI's
empty `v_pred` marker key, else by ComfyUI's weight heuristic (SD20.model_type in comfy/supported_models.py:
the population std of one late UNet norm bias is above 0.09 for the 768-v models).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DiffdiffError


@dataclass(frozen=True)
class Family:
    """What differs between the families: the size they were trained at, their text encoders (diffusers
    folder components), the text layer they read by default (CLIP skip, A1111's numbering: 1 = the last
    layer), what the network predicts, which network it is (`network`: "unet", or the flow transformer
    "sd3" | "flux" | "z-image", which `flow_networks` calls), the sampler settings a run uses unless told
    otherwise (`defaults`), the distilled guidance its network embeds (`guidance`, None = none), the
    diffusers pipeline class of its folders and the half precisions its network runs in, preferred first
    (`half_precisions`: Flux overflows fp16 where bf16 is there, Z-Image runs in bf16 only)."""

    name: str
    native_size: int  # pixels per side of the training images
    text_encoders: tuple[str, ...]
    prediction: str  # "eps" | "v" | "flow"
    clip_skip: int = 1
    network: str = "unet"
    defaults: dict = field(default_factory=lambda: dict(UNET_DEFAULTS))
    guidance: float | None = None
    pipeline: str = ""
    half_precisions: tuple[str, ...] = ("fp16", "bf16")


UNET_DEFAULTS = {"sampler": "euler", "scheduler": "normal", "steps": 20, "cfg": 7.0}
FLOW_ENCODERS = ("text_encoder", "text_encoder_2")
FLUX_HALF = ("bf16", "fp16")  # ComfyUI's order for Flux: bf16 first

FAMILY_TABLE = {family.name: family for family in (
    Family("sd1", 512, ("text_encoder",), "eps", pipeline="StableDiffusionPipeline"),
    Family("sd2", 512, ("text_encoder",), "eps", pipeline="StableDiffusionPipeline"),
    Family("sd2-v", 768, ("text_encoder",), "v", pipeline="StableDiffusionPipeline"),
    Family("sdxl", 1024, ("text_encoder", "text_encoder_2"), "eps", clip_skip=2,
           pipeline="StableDiffusionXLPipeline"),
    Family("sd3", 1024, FLOW_ENCODERS + ("text_encoder_3",), "flow", clip_skip=2, network="sd3",
           defaults={"sampler": "dpmpp_2m", "scheduler": "sgm_uniform", "steps": 28, "cfg": 4.5},
           pipeline="StableDiffusion3Pipeline"),
    Family("flux", 1024, FLOW_ENCODERS, "flow", network="flux", guidance=3.5,
           defaults={"sampler": "euler", "scheduler": "simple", "steps": 20, "cfg": 1.0},
           pipeline="FluxPipeline", half_precisions=FLUX_HALF),
    Family("flux-schnell", 1024, FLOW_ENCODERS, "flow", network="flux",
           defaults={"sampler": "euler", "scheduler": "simple", "steps": 4, "cfg": 1.0},
           pipeline="FluxPipeline", half_precisions=FLUX_HALF),
    Family("flux-fill", 1024, FLOW_ENCODERS, "flow", network="flux", guidance=30.0,
           defaults={"sampler": "euler", "scheduler": "simple", "steps": 20, "cfg": 1.0},
           pipeline="FluxFillPipeline", half_precisions=FLUX_HALF),
    Family("z-image", 1024, ("text_encoder",), "flow", network="z-image",
           defaults={"sampler": "res_multistep", "scheduler": "simple", "steps": 9, "cfg": 1.0},
           pipeline="ZImagePipeline", half_precisions=("bf16",)),
)}
FAMILIES = tuple(FAMILY_TABLE)
UNET_FAMILIES = tuple(name for name, family in FAMILY_TABLE.items() if family.network == "unet")
FLOW_FAMILIES = tuple(name for name, family in FAMILY_TABLE.items() if family.network != "unet")
PREDICTIONS = ("eps", "v")

# Key prefixes that identify each base family in the ldm layout (first match wins: SDXL before SD2/SD1).
FAMILY_KEY_PREFIXES = (
    ("sdxl", "conditioner.embedders.1."),
    ("sd2", "cond_stage_model.model."),
    ("sd1", "cond_stage_model.transformer."),
)
UNET_PREFIX = "model.diffusion_model."
V_PRED_MARKER = "v_pred"
# ComfyUI's SD2 V heuristic: this bias's population std > 0.09 means V (4-channel, non-inpaint UNets).
V_HEURISTIC_KEY = UNET_PREFIX + "output_blocks.11.1.transformer_blocks.0.norm1.bias"
V_HEURISTIC_STD = 0.09
UNET_INPUT_KEY = UNET_PREFIX + "input_blocks.0.0.weight"

# What each family's diffusers folder holds besides the UNet and VAE.
TEXT_COMPONENTS = {name: family.text_encoders for name, family in FAMILY_TABLE.items()}


def base_family(family: str) -> str:
    """"sd2-v" → "sd2"; others unchanged."""
    return "sd2" if family == "sd2-v" else family


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise DiffdiffError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    return family


def check_prediction(prediction: str | None) -> str | None:
    if prediction is not None and prediction not in PREDICTIONS:
        raise DiffdiffError(f"unknown prediction {prediction!r}; choose one of {', '.join(PREDICTIONS)}")
    return prediction


def detect_base_family(keys: Iterable[str]) -> str:
    """"sd1" | "sd2" | "sdxl" from the keys of an ldm-layout checkpoint; DiffdiffError if none matches."""
    keys = list(keys)
    for family, prefix in FAMILY_KEY_PREFIXES:
        if any(key.startswith(prefix) for key in keys):
            return family
    expected = ", ".join(f"{prefix}* ({family})" for family, prefix in FAMILY_KEY_PREFIXES)
    raise DiffdiffError(
        f"unrecognised checkpoint layout (no text-encoder keys of a known family); expected one of {expected}"
    )


def detect_v_prediction(keys: Iterable[str], get_tensor: Callable[[str], object]) -> bool:
    """V-prediction of an SD2 checkpoint: ComfyUI's `v_pred` marker key, else ComfyUI's std heuristic."""
    keys = set(keys)
    if V_PRED_MARKER in keys:
        return True
    if V_HEURISTIC_KEY not in keys:
        return False
    if UNET_INPUT_KEY in keys and get_tensor(UNET_INPUT_KEY).shape[1] != 4:
        return False  # SD2 inpainting UNets are eps
    bias = get_tensor(V_HEURISTIC_KEY).float()
    return bool(bias.std(unbiased=False) > V_HEURISTIC_STD)


def resolve_family(
    keys: Iterable[str],
    get_tensor: Callable[[str], object],
    *,
    family: str | None = None,
    prediction: str | None = None,
    header_family: str | None = None,
) -> str:
    """The family of an ldm-layout checkpoint, honouring the `family=` / `prediction=` overrides.

    `header_family` (a tiny file's `diffdiff.family` metadata) decides an sd2 file's eps / v when the file
    has no `v_pred` marker (before the weight heuristic).
    A `family=` override must agree with the keys on the base family (sd1 / sd2 / sdxl): the keys decide
    which text encoders exist, so an sdxl file read as sd1 would load and then fail at the first step.
    """
    check_prediction(prediction)
    keys = list(keys)
    detected = detect_base_family(keys) if family is None or _has_family_keys(keys) else None
    if family is not None:
        family = check_family(family)
        if detected is not None and base_family(family) != detected:
            raise DiffdiffError(
                f"family {family!r} does not match the checkpoint, whose text-encoder keys are {detected}'s;"
                " leave the family to detection"
            )
        return apply_prediction(family, prediction)
    family = detected
    if family == "sd2" and prediction is None and _sd2_is_v(keys, get_tensor, header_family):
        family = "sd2-v"
    return apply_prediction(family, prediction)


def _sd2_is_v(keys: list[str], get_tensor: Callable[[str], object], header_family: str | None) -> bool:
    """ComfyUI's `v_pred` marker, else the tiny file's header family, else ComfyUI's weight heuristic."""
    if V_PRED_MARKER in keys:
        return True
    if header_family in ("sd2", "sd2-v"):
        return header_family == "sd2-v"
    return detect_v_prediction(keys, get_tensor)


def _has_family_keys(keys: list[str]) -> bool:
    return any(key.startswith(prefix) for _, prefix in FAMILY_KEY_PREFIXES for key in keys)


def apply_prediction(family: str, prediction: str | None) -> str:
    """Apply a `prediction=` override: only SD2 has a V variant in our families."""
    if prediction is None:
        return family
    if base_family(family) == "sd2":
        return "sd2-v" if prediction == "v" else "sd2"
    if prediction == "v":
        raise DiffdiffError(f"prediction 'v' is not supported for {family!r}; only sd2 has a V variant")
    return family


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DiffdiffError(f"cannot read {path}: {error}") from None


def _scheduler_prediction(folder: Path) -> str:
    scheduler_path = folder / "scheduler" / "scheduler_config.json"
    scheduler = _read_json(scheduler_path) if scheduler_path.exists() else {}
    return "v" if scheduler.get("prediction_type") == "v_prediction" else "eps"


def detect_folder_family(folder: Path) -> tuple[str, bool]:
    """(family, certain) of a diffusers folder from model_index.json, the UNet and scheduler configs.

    Certain when the pipeline class / second encoder (SDXL) or the real context width (768 SD1, 1024 SD2)
    says so; uncertain for tiny or unusual folders, told apart by the text encoder's activation.
    """
    index = _read_json(folder / "model_index.json")
    if "XL" in str(index.get("_class_name", "")) or "text_encoder_2" in index:
        return "sdxl", True
    context = _read_json(folder / "unet" / "config.json").get("cross_attention_dim")
    if context in (768, 1024):
        base, certain = ("sd1" if context == 768 else "sd2"), True
    else:  # OpenCLIP (SD2) uses gelu, OpenAI CLIP-L quick_gelu
        encoder = _read_json(folder / "text_encoder" / "config.json")
        base, certain = ("sd2" if encoder.get("hidden_act") == "gelu" else "sd1"), False
    if base == "sd2" and _scheduler_prediction(folder) == "v":
        return "sd2-v", certain
    return base, certain


def family_of_folder(folder: Path, *, family: str | None = None, prediction: str | None = None) -> str:
    """The family of a diffusers folder, honouring the `family=` / `prediction=` overrides.

    An override must keep the detected base family where detection is certain (always for SDXL versus
    the others: the folder's text encoders decide it).
    """
    check_prediction(prediction)
    detected, certain = detect_folder_family(folder)
    if family is None:
        return apply_prediction(detected, prediction)
    family = check_family(family)
    sdxl_mismatch = (base_family(family) == "sdxl") != (detected == "sdxl")
    if sdxl_mismatch or (certain and base_family(family) != base_family(detected)):
        raise DiffdiffError(
            f"family {family!r} does not match {folder.name}, which is {base_family(detected)} by its"
            " configs; leave the family to detection"
        )
    return apply_prediction(family, prediction)
