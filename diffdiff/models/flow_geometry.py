"""Recognise a flow-matching transformer checkpoint in its original layout and read its diffusers config
from the tensors' shapes.

Families: "sd3" (Stability's MMDiT, SD3 and SD3.5), "flux" (Flux.1 dev), "flux-schnell", "flux-fill" (Flux.1
Fill dev) and "z-image". The keys handled here are the network's own, with or without the whole-model prefix
`model.diffusion_model.`. Every geometry rule is written next to the code that applies it and summarised in
docs/design.md ("Flow-matching checkpoints"); what no weight records (rotary axes, SD3's default sample size,
Z-Image's patch sizes) follows the released models, scaled where a tiny model needs it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable

from ..errors import DiffdiffError
from .families import FAMILY_TABLE, FLOW_FAMILIES
from .ldm_layout import UNET_PREFIX as FLOW_NETWORK_PREFIX  # whole-model files put every network there

# Flux.1 packs 2x2 patches of its 16 latent channels: 64 inputs; Fill adds the packed masked-image latent (64)
# and the packed 8x8 pixel mask (256).
FLUX_IN_CHANNELS = 64
FLUX_FILL_IN_CHANNELS = 384
SD3_HEAD_DIM = 64  # every SD3 / SD3.5 release; SD3.5's qk norm weight states it too
SD3_SAMPLE_SIZE = 128  # latent pixels per side of diffusers' SD3 / SD3.5 configs (1024 px images)
FLUX_AXES_AT_128 = (16, 56, 56)  # Flux.1's rotary axes at its head width of 128
Z_IMAGE_AXES_AT_128 = (32, 48, 48)  # Z-Image's rotary axes at its head width of 128
Z_IMAGE_PATCH = 2  # Z-Image's only released patching: 2x2 pixels, 1 frame
Z_IMAGE_F_PATCH = 1
# Other components of whole-model files (VAE, text encoders, EMA copies, ComfyUI markers).
NON_NETWORK_PREFIXES = ("first_stage_model.", "vae.", "cond_stage_model.", "conditioner.", "text_encoders.",
                        "text_encoder.", "text_encoder_2.", "text_encoder_3.", "model_ema.", "scaled_fp8")


def strip_network_prefix(state_dict: dict) -> dict:
    """The network's tensors, keyed without `model.diffusion_model.` (same tensor objects).

    When any key carries the prefix, only those keys are kept (the rest of a whole-model file: VAE, text
    encoders); otherwise the file is taken as transformer-only and returned minus the keys of other
    components recognised by their prefixes (`NON_NETWORK_PREFIXES`)."""
    n = len(FLOW_NETWORK_PREFIX)
    if any(key.startswith(FLOW_NETWORK_PREFIX) for key in state_dict):
        return {key[n:]: value for key, value in state_dict.items() if key.startswith(FLOW_NETWORK_PREFIX)}
    return {key: value for key, value in state_dict.items() if not key.startswith(NON_NETWORK_PREFIXES)}


def _network_key(keys: Iterable[str], name: str) -> str | None:
    """The key of network tensor `name` among `keys`, bare or prefixed; None if absent."""
    keys = keys if isinstance(keys, (set, frozenset, dict)) else set(keys)
    for key in (name, FLOW_NETWORK_PREFIX + name):
        if key in keys:
            return key
    return None


def detect_flow_family(keys: Iterable[str], shape_of: Callable[[str], tuple]) -> str | None:
    """The flow family of an original-layout transformer checkpoint, or None.

    `keys` are the file's keys (bare or with `model.diffusion_model.`); `shape_of(key)` gives one tensor's
    shape for a key as it appears in `keys`. Rules: "sd3" has `joint_blocks` and `x_embedder.proj`; Flux has
    `double_blocks.N.img_attn.qkv`, `img_in`, `vector_in` and per-block `img_mod` (Chroma and HunyuanVideo,
    which share some names, lack them or add `txt_in.individual_token_refiner`), and is "flux" with
    `guidance_in`, "flux-schnell" without it, "flux-fill" when `img_in` takes 384 inputs; another input width
    (Flux Depth/Canny's 128) is no family of ours. "z-image" has `layers.N.adaLN_modulation.0` (a bare
    Linear: Lumina 2 has SiLU first), fused `attention.qkv`, `cap_embedder` and `x_pad_token`.
    """
    keys = set(keys)

    def has(name: str) -> bool:
        return _network_key(keys, name) is not None

    if has("joint_blocks.0.x_block.attn.qkv.weight") and has("x_embedder.proj.weight"):
        return "sd3"
    flux_keys = ("double_blocks.0.img_attn.qkv.weight", "double_blocks.0.img_mod.lin.weight",
                 "img_in.weight", "vector_in.in_layer.weight")
    if all(has(name) for name in flux_keys) and not any("individual_token_refiner" in k for k in keys):
        in_channels = shape_of(_network_key(keys, "img_in.weight"))[1]
        if not has("guidance_in.in_layer.weight"):
            return "flux-schnell" if in_channels == FLUX_IN_CHANNELS else None
        return {FLUX_IN_CHANNELS: "flux", FLUX_FILL_IN_CHANNELS: "flux-fill"}.get(in_channels)
    z_keys = ("layers.0.adaLN_modulation.0.weight", "layers.0.attention.qkv.weight", "cap_embedder.1.weight",
              "x_pad_token")
    if all(has(name) for name in z_keys):
        return "z-image"
    return None


def check_flow_family(family: str) -> str:
    if family not in FLOW_FAMILIES:
        raise DiffdiffError(f"unknown flow model family {family!r}; choose one of {', '.join(FLOW_FAMILIES)}")
    return family


def network_of(family: str) -> str:
    """The network kind ("sd3", "flux", "z-image") of a flow family, as the family table names it: Flux dev,
    schnell and Fill share one."""
    return FAMILY_TABLE[check_flow_family(family)].network


def _block_indices(state: dict, block: str) -> list[int]:
    """Sorted distinct N of the keys `<block>.N.*`."""
    pattern = re.compile(rf"{re.escape(block)}\.(\d+)\.")
    return sorted({int(m.group(1)) for key in state if (m := pattern.match(key))})


def _count_blocks(state: dict, block: str) -> int:
    """How many `<block>.N` there are; numbered 0..n-1 without gaps, else DiffdiffError."""
    indices = _block_indices(state, block)
    if indices != list(range(len(indices))):
        missing = sorted(set(range(max(indices, default=-1) + 1)) - set(indices))
        raise DiffdiffError(f"transformer checkpoint lacks {block}.{missing[0]} (its blocks are not numbered "
                            "0, 1, 2, ...)")
    return len(indices)


def _shape(state: dict, name: str) -> tuple[int, ...]:
    if name not in state:
        raise DiffdiffError(f"transformer checkpoint lacks {name}; not a complete checkpoint of its family")
    return tuple(state[name].shape)


def _heads(hidden: int, head_dim: int) -> int:
    if head_dim <= 0 or hidden % head_dim:
        raise DiffdiffError(f"transformer width {hidden} is not a multiple of its head width {head_dim}")
    return hidden // head_dim


def scaled_rope_axes(at_128: tuple[int, ...], head_dim: int) -> tuple[int, ...]:
    """How a head of width `head_dim` is shared among the 3 rotary axes (time, row, column).

    No weight records it, so: the released split `at_128` (a real model's, at head width 128) scaled by
    head_dim / 128 when every axis stays an even integer (rotary pairs): Flux 128 -> (16, 56, 56), 32 ->
    (4, 14, 14); Z-Image 128 -> (32, 48, 48), 16 -> (4, 6, 6). Otherwise, for a head width that is a multiple
    of 8, diffusers' tiny-test split (h/4, h/4, h/2): Flux 16 -> (4, 4, 8). Any other width: DiffdiffError.
    """
    axes = tuple(a * head_dim / 128 for a in at_128)
    if all(a == int(a) and int(a) % 2 == 0 for a in axes):
        return tuple(int(a) for a in axes)
    if head_dim > 0 and head_dim % 8 == 0:
        return (head_dim // 4, head_dim // 4, head_dim // 2)
    raise DiffdiffError(f"head width {head_dim} cannot be shared among the rotary axes (it must be a "
                        "multiple of 8)")


def _sd3_config(state: dict) -> dict:
    """SD3 / SD3.5 (SD3Transformer2DModel).

    num_layers = number of `joint_blocks`; x_embedder.proj (hidden, in_channels, p, p) gives the width, the
    input channels and patch_size; the head width is the length of `attn.ln_q` when there is qk norm (SD3.5,
    qk_norm "rms_norm"), else 64 (every SD3), and num_attention_heads = width / head width; pos_embed_max_size
    = sqrt(pos_embed tokens) (192 for SD3 medium and 3.5 large, 384 for 3.5 medium); joint_attention_dim and
    caption_projection_dim = context_embedder (out, in); pooled_projection_dim = y_embedder.mlp.0's inputs;
    out_channels = final_layer.linear outputs / p^2; dual_attention_layers = the blocks with x_block.attn2;
    sample_size = 128 as in all of diffusers' SD3 configs, capped at pos_embed_max_size (tiny models).
    """
    hidden, in_channels, patch, _ = _shape(state, "x_embedder.proj.weight")
    ln_q = "joint_blocks.0.x_block.attn.ln_q.weight"
    head_dim = _shape(state, ln_q)[0] if ln_q in state else SD3_HEAD_DIM
    tokens = _shape(state, "pos_embed")[1]
    max_size = math.isqrt(tokens)
    if max_size * max_size != tokens:
        raise DiffdiffError(f"SD3 pos_embed has {tokens} positions, not a square grid")
    caption_out, joint_in = _shape(state, "context_embedder.weight")
    dual = tuple(i for i in _block_indices(state, "joint_blocks")
                 if f"joint_blocks.{i}.x_block.attn2.qkv.weight" in state)
    return {
        "sample_size": min(SD3_SAMPLE_SIZE, max_size),
        "patch_size": patch,
        "in_channels": in_channels,
        "num_layers": _count_blocks(state, "joint_blocks"),
        "attention_head_dim": head_dim,
        "num_attention_heads": _heads(hidden, head_dim),
        "joint_attention_dim": joint_in,
        "caption_projection_dim": caption_out,
        "pooled_projection_dim": _shape(state, "y_embedder.mlp.0.weight")[1],
        "out_channels": _shape(state, "final_layer.linear.weight")[0] // (patch * patch),
        "pos_embed_max_size": max_size,
        "dual_attention_layers": dual,
        "qk_norm": "rms_norm" if ln_q in state else None,
    }


def _flux_config(state: dict) -> dict:
    """Flux.1 dev / schnell / Fill (FluxTransformer2DModel).

    num_layers / num_single_layers = number of `double_blocks` / `single_blocks`; img_in (hidden, in) gives
    the width and in_channels (patch_size 1: the pipeline packs 2x2 patches); the head width is the length of
    the qk norm scale and num_attention_heads = width / head width; joint_attention_dim = txt_in's inputs,
    pooled_projection_dim = vector_in's inputs; guidance_embeds = guidance_in present; out_channels =
    final_layer.linear's outputs, None when equal to in_channels (as diffusers' Flux configs); axes_dims_rope
    = (16, 56, 56) at head width 128, else by `scaled_rope_axes`.
    """
    hidden, in_channels = _shape(state, "img_in.weight")
    head_dim = _shape(state, "double_blocks.0.img_attn.norm.query_norm.scale")[0]
    out_channels = _shape(state, "final_layer.linear.weight")[0]
    return {
        "patch_size": 1,
        "in_channels": in_channels,
        "out_channels": None if out_channels == in_channels else out_channels,
        "num_layers": _count_blocks(state, "double_blocks"),
        "num_single_layers": _count_blocks(state, "single_blocks"),
        "attention_head_dim": head_dim,
        "num_attention_heads": _heads(hidden, head_dim),
        "joint_attention_dim": _shape(state, "txt_in.weight")[1],
        "pooled_projection_dim": _shape(state, "vector_in.in_layer.weight")[1],
        "guidance_embeds": "guidance_in.in_layer.weight" in state,
        "axes_dims_rope": scaled_rope_axes(FLUX_AXES_AT_128, head_dim),
    }


def _z_image_config(state: dict) -> dict:
    """Z-Image (ZImageTransformer2DModel).

    dim = x_embedder's outputs; patch 2x2, 1 frame (the only released patching; the original layout has one
    x_embedder and does not name it), so in_channels = x_embedder's inputs / 4; n_layers = number of `layers`,
    n_refiner_layers = number of `noise_refiner` blocks (context_refiner has as many); the head width is the
    length of `attention.q_norm` (qk_norm True when present, else 128 and no qk norm) and n_heads = n_kv_heads
    = dim / head width (diffusers' attention has no separate key/value heads); cap_feat_dim =
    cap_embedder.1's inputs; axes_dims = (32, 48, 48) at head width 128, else by `scaled_rope_axes`.
    norm_eps, rope_theta, t_scale and axes_lens keep diffusers' defaults (1e-5, 256, 1000, (1024, 512, 512)).
    """
    dim, patch_inputs = _shape(state, "x_embedder.weight")
    per_patch = Z_IMAGE_PATCH * Z_IMAGE_PATCH * Z_IMAGE_F_PATCH
    if patch_inputs % per_patch:
        raise DiffdiffError(f"Z-Image x_embedder takes {patch_inputs} inputs, not a multiple of {per_patch}")
    q_norm = "layers.0.attention.q_norm.weight"
    head_dim = _shape(state, q_norm)[0] if q_norm in state else 128
    heads = _heads(dim, head_dim)
    return {
        "all_patch_size": (Z_IMAGE_PATCH,),
        "all_f_patch_size": (Z_IMAGE_F_PATCH,),
        "in_channels": patch_inputs // per_patch,
        "dim": dim,
        "n_layers": _count_blocks(state, "layers"),
        "n_refiner_layers": _count_blocks(state, "noise_refiner"),
        "n_heads": heads,
        "n_kv_heads": heads,
        "qk_norm": q_norm in state,
        "cap_feat_dim": _shape(state, "cap_embedder.1.weight")[1],
        "axes_dims": list(scaled_rope_axes(Z_IMAGE_AXES_AT_128, head_dim)),
    }


CONFIG_READERS = {"sd3": _sd3_config, "flux": _flux_config, "z-image": _z_image_config}  # per network


def infer_transformer_config(family: str, state_dict: dict) -> dict:
    """The diffusers transformer config (constructor arguments) of an original-layout checkpoint of `family`,
    read from its tensors' shapes (keys bare or prefixed). The rules are in each family's reader
    (`_sd3_config`, `_flux_config`, `_z_image_config`)."""
    return CONFIG_READERS[network_of(family)](strip_network_prefix(state_dict))
