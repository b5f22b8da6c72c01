"""Turn a LoRA file's tensors, in any of the layouts people share, into one neutral form: per network
(`unet`, `text_encoder`, `text_encoder_2`) a map module path → `LowRankPair(down, up)` with alpha / rank
already folded into `up`, plus full-weight differences (ComfyUI's `.diff` / `.diff_b`).

Layouts, and who converts the key names:
- kohya / A1111 (`lora_unet_*`, `lora_te_*`, `lora_te1_*`, `lora_te2_*`; SD1 UNet names in the diffusers
  layout, SDXL ones in the SGM/ldm layout; LoCon conv layers): diffusers'
  `StableDiffusionLoraLoaderMixin.lora_state_dict` (which runs `_maybe_map_sgm_blocks_to_diffusers` with the
  model's UNet config and `_convert_non_diffusers_lora_to_diffusers`), then diffusers'
  `convert_unet_state_dict_to_peft` / `convert_state_dict_to_peft` for the PEFT `lora_A` / `lora_B` names;
- diffusers / PEFT (`unet.*`, `text_encoder.*`, `text_encoder_2.*` with `lora_A` / `lora_B`, or the older
  `processor.to_q_lora.down` and `lora_linear_layer` names): the same two diffusers converters; alpha from
  `<module>.alpha` tensors or the `lora_adapter_metadata` header entry diffusers writes, else alpha = rank;
- ComfyUI's LoRA save node (`diffusion_model.<ldm path>.lora_up.weight` / `lora_down.weight` / `alpha` /
  `diff` / `diff_b`, text encoders under `text_encoders.clip_l|clip_h|clip_g.transformer.<transformers
  path>`): no library covers it; the ldm UNet paths are mapped back with our own `ldm_layout.unet_to_ldm`.

Nothing here checks the names against the model: `resolve.py` does (unknown keys, shapes, family).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch

from ..errors import DiffdiffError
from ..models.ldm_layout import unet_to_ldm

NETWORKS = ("unet", "text_encoder", "text_encoder_2")
KOHYA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")
DIFFUSERS_PREFIXES = {"unet.": "unet", "text_encoder.": "text_encoder", "text_encoder_2.": "text_encoder_2"}
DIFFUSERS_UNET_ROOTS = (
    "down_blocks.",
    "mid_block.",
    "up_blocks.",
    "conv_in.",
    "conv_out.",
    "time_embedding.",
)
COMFY_UNET_PREFIX = "diffusion_model."
COMFY_TEXT_PREFIX = "text_encoders."
# ComfyUI's names of the text encoders -> (families whose first/second encoder it is, our network name)
COMFY_TEXT_ENCODERS = {
    "clip_l": ({"sd1", "sdxl"}, "text_encoder"),
    "clip_h": ({"sd2", "sd2-v"}, "text_encoder"),
    "clip_g": ({"sdxl"}, "text_encoder_2"),
}
COMFY_TEXT_FAMILY_WORDS = {
    "clip_l": "SD1 or SDXL (CLIP-L text-encoder weights)",
    "clip_h": "SD2 (OpenCLIP-H text-encoder weights)",
    "clip_g": "SDXL (second-text-encoder weights)",
}
LOW_RANK_SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha")
PEFT_DOWN, PEFT_UP = ".lora_A.weight", ".lora_B.weight"
SHOWN_KEYS = 4


@dataclass
class LowRankPair:
    """One low-rank update: delta = up @ down (alpha / rank already in `up`); `source` = the file's key."""

    down: torch.Tensor  # (rank, in) or (rank, in, kh, kw)
    up: torch.Tensor  # (out, rank) or (out, rank, 1, 1)
    source: str


@dataclass
class LoraTensors:
    """A LoRA in neutral form, still unchecked against a model."""

    low_rank: dict[str, dict[str, LowRankPair]] = field(default_factory=lambda: {n: {} for n in NETWORKS})
    # network -> parameter path ("...proj_in.weight" / ".bias") -> (full difference, source key)
    full_diffs: dict[str, dict[str, tuple[torch.Tensor, str]]] = field(
        default_factory=lambda: {n: {} for n in NETWORKS}
    )
    unknown: list[str] = field(default_factory=list)  # file keys with no place in the model's layout
    layout: str = ""


def shown(keys: list[str]) -> str:
    """The first few of `keys` and how many there are, for a one-line message."""
    head = ", ".join(keys[:SHOWN_KEYS])
    return (
        f"{len(keys)} key{'s' if len(keys) != 1 else ''}: {head}{', ...' if len(keys) > SHOWN_KEYS else ''}"
    )


def convert_lora(name: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str], model) -> LoraTensors:
    """The neutral form of the file `name`'s `tensors` for `model` (a LoadedModel)."""
    layouts = {_layout_of(key) for key in tensors}
    if None in layouts:
        strange = [key for key in tensors if _layout_of(key) is None]
        raise DiffdiffError(f"LoRA {name} has keys of no known LoRA layout ({shown(strange)})")
    if len(layouts) > 1:
        raise DiffdiffError(f"LoRA {name} mixes key layouts ({', '.join(sorted(layouts))}); not loading it")
    layout = layouts.pop()
    if layout == "kohya":
        converted = _from_kohya(name, tensors, model)
    elif layout == "diffusers":
        converted = _from_diffusers(name, tensors, metadata)
    else:
        converted = _from_comfy(name, tensors, model)
    converted.layout = layout
    return converted


def _layout_of(key: str) -> str | None:
    if key.startswith(KOHYA_PREFIXES):
        return "kohya"
    if key.startswith(tuple(DIFFUSERS_PREFIXES)) or key.startswith(DIFFUSERS_UNET_ROOTS):
        return "diffusers"
    if key.startswith((COMFY_UNET_PREFIX, COMFY_TEXT_PREFIX)):
        return "comfyui"
    return None


def _fold_kohya_alphas(name: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`X.lora_down.weight` / `X.lora_up.weight` / `X.alpha` -> the pairs with up scaled by alpha / rank."""
    strange = [key for key in tensors if not key.endswith(LOW_RANK_SUFFIXES)]
    if strange:
        raise DiffdiffError(
            f"LoRA {name} has keys this loader does not support (LoHa/LoKr/DoRA/mid weights?):"
            f" {shown(strange)}"
        )
    out = {}
    for key, down in tensors.items():
        if not key.endswith(".lora_down.weight"):
            continue
        stem = key[: -len(".lora_down.weight")]
        up = tensors.get(stem + ".lora_up.weight")
        if up is None:
            raise DiffdiffError(f"LoRA {name}: {key!r} has no matching {stem + '.lora_up.weight'!r}")
        alpha = tensors.get(stem + ".alpha")
        out[key] = down
        out[stem + ".lora_up.weight"] = up if alpha is None else up * (float(alpha) / down.shape[0])
    orphans = [key for key in tensors if key.endswith(".lora_up.weight") and key not in out]
    orphans += [
        key for key in tensors if key.endswith(".alpha") and key[:-6] + ".lora_down.weight" not in out
    ]
    if orphans:
        raise DiffdiffError(f"LoRA {name} has keys without their lora_down partner: {shown(orphans)}")
    return out


def _to_peft_names(network: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers' own converters from its older LoRA names to PEFT's `lora_A` / `lora_B` names."""
    from diffusers.utils.state_dict_utils import (
        StateDictType,
        convert_state_dict_to_peft,
        convert_unet_state_dict_to_peft,
    )

    if network == "unet":
        return convert_unet_state_dict_to_peft(state)
    return convert_state_dict_to_peft(state, original_type=StateDictType.DIFFUSERS_OLD)


def _split_networks(name: str, state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    split: dict[str, dict[str, torch.Tensor]] = {network: {} for network in NETWORKS}
    for key, tensor in state.items():
        network = next((n for p, n in DIFFUSERS_PREFIXES.items() if key.startswith(p)), None)
        if network is None:  # the oldest diffusers files: UNet attention processors without a prefix
            split["unet"][key] = tensor
        else:
            split[network][key[len(network) + 1 :]] = tensor
    return split


def _pairs_from_peft(
    network: str,
    state: dict[str, torch.Tensor],
    origin: dict[int, str],
    result: LoraTensors,
    scales: dict[str, float] | None = None,
) -> None:
    """PEFT-named `state` of one network -> LowRankPairs in `result` (scaled by `scales[module]` if given)."""
    state = {
        key.replace(".lora.down.weight", PEFT_DOWN).replace(".lora.up.weight", PEFT_UP): value
        for key, value in state.items()
    }  # text_projection keeps diffusers' `.lora.` spelling
    for key, down in state.items():
        if key.endswith(PEFT_UP):
            continue
        if not key.endswith(PEFT_DOWN):
            result.unknown.append(origin.get(id(down), key))
            continue
        module = key[: -len(PEFT_DOWN)]
        up = state.get(module + PEFT_UP)
        if up is None:
            raise DiffdiffError(f"LoRA key {origin.get(id(down), key)!r} has no matching up weight")
        scale = (scales or {}).get(module)
        source = origin.get(id(down), f"{network}.{key}")
        result.low_rank[network][module] = LowRankPair(down, up if scale is None else up * scale, source)
    for key, up in state.items():
        if key.endswith(PEFT_UP) and key[: -len(PEFT_UP)] + PEFT_DOWN not in state:
            raise DiffdiffError(f"LoRA key {origin.get(id(up), key)!r} has no matching down weight")


def _from_kohya(name: str, tensors: dict[str, torch.Tensor], model) -> LoraTensors:
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    folded = _fold_kohya_alphas(name, tensors)
    origin = {
        id(tensor): key[: -len(".lora_down.weight")]
        for key, tensor in folded.items()
        if key.endswith(".lora_down.weight")
    }
    try:
        state, _ = StableDiffusionLoraLoaderMixin.lora_state_dict(dict(folded), unet_config=model.unet.config)
    except (ValueError, KeyError, IndexError) as error:
        reason = " ".join(str(error).split())[:200]
        raise DiffdiffError(f"LoRA {name}: diffusers cannot convert its kohya keys: {reason}") from None
    result = LoraTensors()
    for network, part in _split_networks(name, state).items():
        _pairs_from_peft(network, _to_peft_names(network, part), origin, result)
    return result


def _metadata_scales(
    metadata: dict[str, str], network: str, state: dict[str, torch.Tensor]
) -> dict[str, float]:
    """alpha / rank per module from diffusers' `lora_adapter_metadata` header entry (LoraConfig fields)."""
    text = metadata.get("lora_adapter_metadata")
    if not text:
        return {}
    try:
        config = json.loads(text)
    except ValueError:
        return {}
    prefix = f"{network}."
    fields = {key[len(prefix) :]: value for key, value in config.items() if key.startswith(prefix)}
    alpha = fields.get("lora_alpha")
    alpha_pattern = fields.get("alpha_pattern") or {}
    scales = {}
    for key, down in state.items():
        if key.endswith(PEFT_DOWN):
            module = key[: -len(PEFT_DOWN)]
            module_alpha = next(
                (v for k, v in alpha_pattern.items() if module == k or module.endswith("." + k)), alpha
            )
            if module_alpha is not None:
                scales[module] = float(module_alpha) / down.shape[0]
    return scales


def _from_diffusers(name: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> LoraTensors:
    origin = {id(tensor): key for key, tensor in tensors.items()}
    result = LoraTensors()
    for network, part in _split_networks(name, tensors).items():
        alphas = {
            key[: -len(".alpha")]: float(value) for key, value in part.items() if key.endswith(".alpha")
        }
        part = {key: value for key, value in part.items() if not key.endswith(".alpha")}
        state = _to_peft_names(network, part) if part else {}
        scales = _metadata_scales(metadata, network, state)
        for module, alpha in alphas.items():
            down = state.get(module + PEFT_DOWN)
            if down is None:
                result.unknown.append(f"{network}.{module}.alpha")
            else:
                scales[module] = alpha / down.shape[0]
        _pairs_from_peft(network, state, origin, result, scales)
    return result


def _ldm_to_diffusers_unet(model) -> dict[str, str]:
    """ldm UNet parameter path -> diffusers parameter path, from our own diffusers -> ldm map."""
    keys = list(model.unet.state_dict().keys())
    return {ldm: diffusers for ldm, diffusers in unet_to_ldm({k: k for k in keys}).items()}


def _comfy_target(key: str, family: str, name: str, unet_map: dict[str, str]) -> tuple[str, str] | None:
    """(network, diffusers/transformers module path) of a ComfyUI key's stem, None if it has no place."""
    if key.startswith(COMFY_UNET_PREFIX):
        mapped = unet_map.get(key[len(COMFY_UNET_PREFIX) :] + ".weight")
        return ("unet", mapped[: -len(".weight")]) if mapped else None
    encoder, _, rest = key[len(COMFY_TEXT_PREFIX) :].partition(".")
    if encoder not in COMFY_TEXT_ENCODERS or not rest.startswith("transformer."):
        return None
    families, network = COMFY_TEXT_ENCODERS[encoder]
    if family not in families:
        raise DiffdiffError(f"LoRA {name} is for {COMFY_TEXT_FAMILY_WORDS[encoder]}; the model is {family}")
    return network, rest[len("transformer.") :]


def _from_comfy(name: str, tensors: dict[str, torch.Tensor], model) -> LoraTensors:
    full = {key: value for key, value in tensors.items() if key.endswith((".diff", ".diff_b"))}
    folded = _fold_kohya_alphas(name, {k: v for k, v in tensors.items() if k not in full})
    unet_map = _ldm_to_diffusers_unet(model)
    result = LoraTensors()
    for key, down in folded.items():
        if not key.endswith(".lora_down.weight"):
            continue
        stem = key[: -len(".lora_down.weight")]
        target = _comfy_target(stem, model.family, name, unet_map)
        if target is None:
            result.unknown.append(key)
            continue
        network, module = target
        result.low_rank[network][module] = LowRankPair(down, folded[stem + ".lora_up.weight"], key)
    for key, diff in full.items():
        stem, _, kind = key.rpartition(".")
        target = _comfy_target(stem, model.family, name, unet_map)
        if target is None:
            result.unknown.append(key)
            continue
        network, module = target
        result.full_diffs[network][f"{module}.{'weight' if kind == 'diff' else 'bias'}"] = (diff, key)
    return result
