"""Map diffusers state dicts to the single-file A1111/ComfyUI ("ldm") key layout people download.

`diffusers_to_ldm(components, family)` takes the diffusers components of one pipeline (`unet`, `vae`,
`text_encoder`, `text_encoder_2`; name -> state dict) and returns one flat state dict keyed as in the original
Stable Diffusion checkpoints:

- UNet: `model.diffusion_model.*` (input_blocks / middle_block / output_blocks, `label_emb` for SDXL);
- VAE: `first_stage_model.*` (encoder.down.N.block.M ..., attention weights as 1x1 convolutions);
- SD1 CLIP-L: `cond_stage_model.transformer.text_model.*`;
- SD2 OpenCLIP-H: `cond_stage_model.model.*` (resblocks, q/k/v packed into `in_proj_weight`);
- SDXL: `conditioner.embedders.0.transformer.text_model.*` and `conditioner.embedders.1.model.*` (OpenCLIP
  layout with `text_projection` stored transposed).

The block structure (levels, layers per block, where attention is) is read from the keys, so the map works for
the real models and for the tiny ones alike. The tensors are the same objects (no copies) except the few that
change shape (VAE attention: linear -> 1x1 conv) or are packed (OpenCLIP in_proj). Written after diffusers'
scripts/convert_diffusers_to_original_stable_diffusion.py and convert_diffusers_to_original_sdxl.py
(Apache-2.0, The HuggingFace Team), generalised to any block count.
"""

from __future__ import annotations

import re

import torch

from ..errors import DiffdiffError
from .families import UNET_FAMILIES

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIXES = {
    ("sd1", "text_encoder"): ("clip", "cond_stage_model.transformer."),
    ("sd2", "text_encoder"): ("openclip", "cond_stage_model.model."),
    ("sd2-v", "text_encoder"): ("openclip", "cond_stage_model.model."),
    ("sdxl", "text_encoder"): ("clip", "conditioner.embedders.0.transformer."),
    ("sdxl", "text_encoder_2"): ("openclip", "conditioner.embedders.1.model."),
}
V_PRED_KEY = "v_pred"  # ComfyUI's marker of a v-prediction checkpoint: an empty tensor with this name

UNET_RESNET_NAMES = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)
UNET_TOP_LEVEL = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
VAE_TOP_LEVEL = {"conv_norm_out": "norm_out"}
VAE_ATTENTION_NAMES = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
OPENCLIP_LAYER_NAMES = (
    ("layer_norm1", "ln_1"),
    ("layer_norm2", "ln_2"),
    ("mlp.fc1", "mlp.c_fc"),
    ("mlp.fc2", "mlp.c_proj"),
    ("self_attn.out_proj", "attn.out_proj"),
)


def _split(key: str) -> tuple[str, str]:
    """'a.b.c.weight' -> ('a.b.c', 'weight')."""
    module, _, param = key.rpartition(".")
    return module, param


def count_numbered(keys, pattern: str) -> int:
    """Highest N + 1 among the keys that `pattern` (its one group: N) matches at their start; 0 if none."""
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _unet_resnet(rest: str) -> str:
    for diffusers_name, ldm_name in UNET_RESNET_NAMES:
        if rest == diffusers_name or rest.startswith(diffusers_name + "."):
            return ldm_name + rest[len(diffusers_name) :]
    return rest


def _levels(keys, part: str) -> list[int]:
    """Resnets per level of `part` (down_blocks / up_blocks), from the keys."""
    levels = count_numbered(keys, rf"{part}\.(\d+)\.")
    return [count_numbered(keys, rf"{part}\.{level}\.resnets\.(\d+)\.") for level in range(levels)]


def unet_key_map(keys) -> dict[str, str]:
    """diffusers UNet2DConditionModel key -> ldm input_blocks/middle_block/output_blocks key (no prefix).

    Any geometry the diffusers class builds: resnets per level may differ (input block numbers then run on
    per level: 1 + the previous levels' resnets and downsamplers), the mid block may be absent or a lone
    resnet, each attention keeps its own transformer_blocks.N.
    """
    keys = list(keys)
    down, up = _levels(keys, "down_blocks"), _levels(keys, "up_blocks")
    if not down or down[0] == 0:
        raise DiffdiffError("UNet state dict has no down_blocks.0.resnets: not a diffusers UNet")
    down_start = [1 + sum(n + 1 for n in down[:level]) for level in range(len(down))]
    up_start = [sum(up[:level]) for level in range(len(up))]
    attending = {int(m[1]) for k in keys if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", k))}
    out: dict[str, str] = {}
    for key in keys:
        module, param = _split(key)
        if module in UNET_TOP_LEVEL:
            out[key] = f"{UNET_TOP_LEVEL[module]}.{param}"
        elif m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            block = down_start[int(m[1])] + int(m[3])
            rest = f"0.{_unet_resnet(m[4])}" if m[2] == "resnets" else f"1.{m[4]}"
            out[key] = f"input_blocks.{block}.{rest}"
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            level = int(m[1])
            out[key] = f"input_blocks.{down_start[level] + down[level]}.0.op.{m[2]}"
        elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
            out[key] = f"middle_block.{2 * int(m[1])}.{_unet_resnet(m[2])}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
            out[key] = f"middle_block.1.{m[1]}"
        elif m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            block = up_start[int(m[1])] + int(m[3])
            rest = f"0.{_unet_resnet(m[4])}" if m[2] == "resnets" else f"1.{m[4]}"
            out[key] = f"output_blocks.{block}.{rest}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            level = int(m[1])
            block = up_start[level] + up[level] - 1
            out[key] = f"output_blocks.{block}.{2 if level in attending else 1}.conv.{m[2]}"
        else:
            raise DiffdiffError(f"UNet key {key!r} has no place in the ldm layout")
    return out


def unet_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers UNet2DConditionModel keys -> ldm input_blocks/middle_block/output_blocks keys (no prefix)."""
    names = unet_key_map(state)
    return {names[key]: tensor for key, tensor in state.items()}


def unet_from_ldm(checkpoint: dict, keys, prefix: str = UNET_PREFIX) -> dict:
    """The diffusers UNet weights named `keys` (a model's state-dict keys) taken from an ldm checkpoint
    (`prefix` + ldm key), by the inverse of `unet_key_map`; keys the file lacks are left out (the loader's
    strict check names them). Used where diffusers' converter cannot go: resnets per level that differ."""
    names = unet_key_map(keys)
    return {key: checkpoint[prefix + ldm] for key, ldm in names.items() if prefix + ldm in checkpoint}


def _vae_resnet(name: str) -> str:
    return name.replace("conv_shortcut", "nin_shortcut")


def vae_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers AutoencoderKL keys -> ldm `encoder.down.N.block.M`... keys (no prefix); attention as 1x1."""
    levels = count_numbered(state, r"decoder\.up_blocks\.(\d+)\.")
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        module, param = _split(key)
        part, _, rest = module.partition(".")
        if part in ("quant_conv", "post_quant_conv"):
            out[key] = tensor
            continue
        if rest in VAE_TOP_LEVEL or rest in ("conv_in", "conv_out"):
            out[f"{part}.{VAE_TOP_LEVEL.get(rest, rest)}.{param}"] = tensor
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest):
            out[f"{part}.down.{m[1]}.block.{m[2]}.{_vae_resnet(m[3])}.{param}"] = tensor
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv", rest):
            out[f"{part}.down.{m[1]}.downsample.conv.{param}"] = tensor
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest):
            level = levels - 1 - int(m[1])
            out[f"{part}.up.{level}.block.{m[2]}.{_vae_resnet(m[3])}.{param}"] = tensor
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv", rest):
            out[f"{part}.up.{levels - 1 - int(m[1])}.upsample.conv.{param}"] = tensor
        elif m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.*)", rest):
            out[f"{part}.mid.block_{int(m[1]) + 1}.{_vae_resnet(m[2])}.{param}"] = tensor
        elif m := re.fullmatch(r"mid_block\.attentions\.0\.(.*)", rest):
            name = VAE_ATTENTION_NAMES.get(m[1])
            if name is None:
                raise DiffdiffError(f"VAE key {key!r} has no place in the ldm layout")
            if param == "weight" and tensor.ndim == 2 and name != "norm":
                tensor = tensor.reshape(*tensor.shape, 1, 1)
            out[f"{part}.mid.attn_1.{name}.{param}"] = tensor
        else:
            raise DiffdiffError(f"VAE key {key!r} has no place in the ldm layout")
    return out


def _text_model_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers >= 5.6 flattens CLIPTextModel (no `text_model.` prefix); the ldm layout keeps it."""
    out = {}
    for key, tensor in state.items():
        if key == "text_projection.weight" or key.startswith("text_model."):
            out[key] = tensor
        else:
            out["text_model." + key] = tensor
    return out


def clip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CLIPTextModel keys -> HF-transformers layout as in SD1 checkpoints (`text_model.*`, no prefix)."""
    state = _text_model_keys(state)
    dropped = ("text_projection.weight",)
    return {k: v for k, v in state.items() if k not in dropped and not k.endswith("position_ids")}


def openclip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CLIPTextModel(WithProjection) keys -> OpenCLIP keys (`transformer.resblocks.N.*`, no prefix)."""
    state = _text_model_keys(state)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.endswith("position_ids"):
            continue
        if key == "text_projection.weight":
            out["text_projection"] = tensor.T.contiguous()
        elif key == "text_model.embeddings.token_embedding.weight":
            out["token_embedding.weight"] = tensor
        elif key == "text_model.embeddings.position_embedding.weight":
            out["positional_embedding"] = tensor
        elif key.startswith("text_model.final_layer_norm."):
            out["ln_final." + key.rpartition(".")[2]] = tensor
        elif m := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.(.*)\.(weight|bias)", key):
            layer, module, param = m[1], m[2], m[3]
            if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                if module == "self_attn.q_proj":  # pack q, k, v as OpenCLIP's nn.MultiheadAttention does
                    attention = f"text_model.encoder.layers.{layer}.self_attn"
                    parts = [state[f"{attention}.{n}_proj.{param}"] for n in "qkv"]
                    out[f"transformer.resblocks.{layer}.attn.in_proj_{param}"] = torch.cat(parts, dim=0)
                continue
            for diffusers_name, ldm_name in OPENCLIP_LAYER_NAMES:
                if module == diffusers_name:
                    out[f"transformer.resblocks.{layer}.{ldm_name}.{param}"] = tensor
                    break
            else:
                raise DiffdiffError(f"text encoder key {key!r} has no place in the OpenCLIP layout")
        else:
            raise DiffdiffError(f"text encoder key {key!r} has no place in the OpenCLIP layout")
    return out


def diffusers_to_ldm(components: dict[str, dict[str, torch.Tensor]], family: str) -> dict[str, torch.Tensor]:
    """One A1111/ComfyUI-layout state dict from the diffusers components of a `family` pipeline.

    `components` maps `unet`, `vae`, `text_encoder` (and `text_encoder_2` for sdxl) to state dicts; any may
    be left out. A v-prediction family ("sd2-v") also gets ComfyUI's empty `v_pred` marker tensor.
    """
    if family not in UNET_FAMILIES:
        raise DiffdiffError(f"no ldm layout for model family {family!r}; "
                            f"choose one of {', '.join(UNET_FAMILIES)}")
    out: dict[str, torch.Tensor] = {}
    for name, state in components.items():
        if name == "unet":
            out.update({UNET_PREFIX + k: v for k, v in unet_to_ldm(state).items()})
        elif name == "vae":
            out.update({VAE_PREFIX + k: v for k, v in vae_to_ldm(state).items()})
        elif (family, name) in TEXT_PREFIXES:
            layout, prefix = TEXT_PREFIXES[(family, name)]
            converted = clip_to_ldm(state) if layout == "clip" else openclip_to_ldm(state)
            out.update({prefix + k: v for k, v in converted.items()})
        else:
            choices = ["unet", "vae"] + sorted(n for f, n in TEXT_PREFIXES if f == family)
            raise DiffdiffError(f"unknown component {name!r} for {family}; choose from {', '.join(choices)}")
    if family == "sd2-v":
        out[V_PRED_KEY] = torch.empty(0)
    return out
