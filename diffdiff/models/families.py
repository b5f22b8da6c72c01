"""Model families: recognise SD1.x / SD2.x (eps or v) / SDXL from checkpoint keys or a diffusers folder.

A family name ("sd1", "sd2", "sd2-v", "sdxl") is also the `diffdiff.sampling.model_sampling` kind and the
name of the shipped config folder `diffdiff/models/configs/<family>/`. Single-file checkpoints in the
A1111/ComfyUI ("ldm") layout are told apart by their text-encoder keys; SD2's V-prediction by ComfyUI's
empty `v_pred` marker key, else by ComfyUI's weight heuristic (SD20.model_type in comfy/supported_models.py:
the population std of one late UNet norm bias is above 0.09 for the 768-v models).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import DiffdiffError

FAMILIES = ("sd1", "sd2", "sd2-v", "sdxl")
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
TEXT_COMPONENTS = {
    "sd1": ("text_encoder",),
    "sd2": ("text_encoder",),
    "sd2-v": ("text_encoder",),
    "sdxl": ("text_encoder", "text_encoder_2"),
}


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
) -> str:
    """The family of an ldm-layout checkpoint, honouring the `family=` / `prediction=` overrides."""
    check_prediction(prediction)
    keys = list(keys)
    if family is not None:
        family = check_family(family)
    else:
        family = detect_base_family(keys)
        if family == "sd2" and prediction is None and detect_v_prediction(keys, get_tensor):
            family = "sd2-v"
    return apply_prediction(family, prediction)


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


def family_of_folder(folder: Path, *, family: str | None = None, prediction: str | None = None) -> str:
    """The family of a diffusers folder from model_index.json, the UNet config and the scheduler config."""
    check_prediction(prediction)
    if family is not None:
        return apply_prediction(check_family(family), prediction)
    index = _read_json(folder / "model_index.json")
    pipeline = str(index.get("_class_name", ""))
    if "XL" in pipeline or "text_encoder_2" in index:
        return apply_prediction("sdxl", prediction)
    unet = _read_json(folder / "unet" / "config.json")
    context = unet.get("cross_attention_dim")
    if context == 768:
        return apply_prediction("sd1", prediction)
    if context == 1024:
        if prediction is None:
            scheduler_path = folder / "scheduler" / "scheduler_config.json"
            scheduler = _read_json(scheduler_path) if scheduler_path.exists() else {}
            prediction = "v" if scheduler.get("prediction_type") == "v_prediction" else "eps"
        return apply_prediction("sd2", prediction)
    # Tiny or unusual folders: fall back on the text encoder's width and the scheduler.
    encoder = _read_json(folder / "text_encoder" / "config.json")
    if encoder.get("hidden_act") == "gelu":  # OpenCLIP (SD2) uses gelu, OpenAI CLIP-L quick_gelu
        scheduler_path = folder / "scheduler" / "scheduler_config.json"
        scheduler = _read_json(scheduler_path) if scheduler_path.exists() else {}
        if prediction is None:
            prediction = "v" if scheduler.get("prediction_type") == "v_prediction" else "eps"
        return apply_prediction("sd2", prediction)
    return apply_prediction("sd1", prediction)
