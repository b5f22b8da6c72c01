"""Convert flow-matching transformer weights between the original single-file layouts and diffusers.

`transformer_from_original` loads what people download (Stability's MMDiT layout for SD3/SD3.5, Black Forest
Labs' layout for Flux.1, Z-Image's own) through diffusers' converters, strictly: the file must hold exactly
the weights of the model its shapes describe. `transformer_to_original` is the inverse, written here from
those converters, so tiny test models can be written as files that look like the real ones. Recognising a
checkpoint and reading its config are in `flow_geometry` (re-exported here).
"""

from __future__ import annotations

import torch

from ..errors import DiffdiffError
from .flow_geometry import (
    FLOW_FAMILIES,
    FLOW_NETWORK_PREFIX,
    check_flow_family,
    detect_flow_family,
    infer_transformer_config,
    network_of,
    strip_network_prefix,
)

__all__ = ["FLOW_FAMILIES", "FLOW_NETWORK_PREFIX", "detect_flow_family", "infer_transformer_config",
           "strip_network_prefix", "transformer_class",
           "transformer_from_original", "transformer_to_original"]

WB = ("weight", "bias")
W = ("weight",)
FLUX_CONVERTER_WIDTH = 3072  # diffusers' Flux converter splits single blocks' linear1 at Flux.1's width
# Keys of real original files that diffusers' converters drop on purpose (Z-Image's unused final norm).
DROPPED_ORIGINAL_KEYS = {"z-image": ("norm_final.weight",)}


TRANSFORMER_CLASSES = {"sd3": "SD3Transformer2DModel", "flux": "FluxTransformer2DModel",
                       "z-image": "ZImageTransformer2DModel"}  # per network


def transformer_class(family: str):
    """The diffusers class of `family`'s transformer."""
    import diffusers

    return getattr(diffusers, TRANSFORMER_CLASSES[network_of(family)])


def _meta_state(family: str, config: dict) -> dict:
    """The state dict (meta tensors: names and shapes only) of the model `config` builds."""
    try:
        with torch.device("meta"):
            model = transformer_class(family).from_config(config)
    except (TypeError, ValueError, AssertionError) as exc:
        raise DiffdiffError(f"cannot build a {family} transformer from config {config}: {exc}") from exc
    return model.state_dict()


# --- diffusers -> original ---------------------------------------------------------------------------------

def _swap_halves(t: torch.Tensor) -> torch.Tensor:
    """[a; b] -> [b; a] along dim 0: diffusers' final AdaLayerNormContinuous splits (scale, shift) where the
    original layouts split (shift, scale); its own inverse."""
    first, second = t.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


class _Writer:
    """Moves tensors from a diffusers state dict (`source`, consumed) to original-layout keys (`out`)."""

    def __init__(self, source: dict):
        self.source = dict(source)
        self.out: dict[str, torch.Tensor] = {}

    def take(self, key: str) -> torch.Tensor:
        if key not in self.source:
            raise DiffdiffError(f"diffusers transformer state dict lacks {key}")
        return self.source.pop(key)

    def move(self, original: str, diffusers: str, suffixes=WB, to_suffixes=None) -> None:
        for suffix, to_suffix in zip(suffixes, to_suffixes or suffixes):
            self.out[f"{original}.{to_suffix}"] = self.take(f"{diffusers}.{suffix}")

    def fuse(self, original: str, parts: list[str], suffixes=WB) -> None:
        """Concatenate the parts along dim 0 (q, k, v [, mlp]) into one original tensor."""
        for suffix in suffixes:
            self.out[f"{original}.{suffix}"] = torch.cat([self.take(f"{p}.{suffix}") for p in parts], dim=0)

    def swapped(self, original: str, diffusers: str) -> None:
        for suffix in WB:
            self.out[f"{original}.{suffix}"] = _swap_halves(self.take(f"{diffusers}.{suffix}"))

    def done(self) -> dict:
        if self.source:
            extra = sorted(self.source)
            raise DiffdiffError(f"diffusers transformer state dict has {len(extra)} weights the original "
                                f"layout has no place for (e.g. {extra[0]})")
        return self.out


def _sd3_to_original(w: _Writer, config: dict) -> None:
    """Inverse of diffusers' convert_sd3_transformer_checkpoint_to_diffusers."""
    w.out["pos_embed"] = w.take("pos_embed.pos_embed")
    w.move("x_embedder.proj", "pos_embed.proj")
    w.move("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1")
    w.move("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2")
    w.move("context_embedder", "context_embedder")
    w.move("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1")
    w.move("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2")
    layers, qk_norm = config["num_layers"], config.get("qk_norm") is not None
    for i in range(layers):
        x, c, t, last = f"joint_blocks.{i}.x_block", f"joint_blocks.{i}.context_block", \
            f"transformer_blocks.{i}", i == layers - 1
        w.fuse(f"{x}.attn.qkv", [f"{t}.attn.to_q", f"{t}.attn.to_k", f"{t}.attn.to_v"])
        w.fuse(f"{c}.attn.qkv", [f"{t}.attn.add_q_proj", f"{t}.attn.add_k_proj", f"{t}.attn.add_v_proj"])
        if qk_norm:
            w.move(f"{x}.attn.ln_q", f"{t}.attn.norm_q", W)
            w.move(f"{x}.attn.ln_k", f"{t}.attn.norm_k", W)
            w.move(f"{c}.attn.ln_q", f"{t}.attn.norm_added_q", W)
            w.move(f"{c}.attn.ln_k", f"{t}.attn.norm_added_k", W)
        w.move(f"{x}.attn.proj", f"{t}.attn.to_out.0")
        if i in tuple(config.get("dual_attention_layers") or ()):
            w.fuse(f"{x}.attn2.qkv", [f"{t}.attn2.to_q", f"{t}.attn2.to_k", f"{t}.attn2.to_v"])
            if qk_norm:
                w.move(f"{x}.attn2.ln_q", f"{t}.attn2.norm_q", W)
                w.move(f"{x}.attn2.ln_k", f"{t}.attn2.norm_k", W)
            w.move(f"{x}.attn2.proj", f"{t}.attn2.to_out.0")
        w.move(f"{x}.adaLN_modulation.1", f"{t}.norm1.linear")
        w.move(f"{x}.mlp.fc1", f"{t}.ff.net.0.proj")
        w.move(f"{x}.mlp.fc2", f"{t}.ff.net.2")
        if last:  # context_pre_only: no context output projection or MLP; a final-style (swapped) adaLN
            w.swapped(f"{c}.adaLN_modulation.1", f"{t}.norm1_context.linear")
        else:
            w.move(f"{c}.adaLN_modulation.1", f"{t}.norm1_context.linear")
            w.move(f"{c}.attn.proj", f"{t}.attn.to_add_out")
            w.move(f"{c}.mlp.fc1", f"{t}.ff_context.net.0.proj")
            w.move(f"{c}.mlp.fc2", f"{t}.ff_context.net.2")
    w.move("final_layer.linear", "proj_out")
    w.swapped("final_layer.adaLN_modulation.1", "norm_out.linear")


def _flux_to_original(w: _Writer, config: dict) -> None:
    """Inverse of diffusers' convert_flux_transformer_checkpoint_to_diffusers."""
    embedders = (("time_in", "timestep_embedder"), ("vector_in", "text_embedder"))
    if config.get("guidance_embeds"):
        embedders += (("guidance_in", "guidance_embedder"),)
    for original, diffusers in embedders:
        w.move(f"{original}.in_layer", f"time_text_embed.{diffusers}.linear_1")
        w.move(f"{original}.out_layer", f"time_text_embed.{diffusers}.linear_2")
    w.move("txt_in", "context_embedder")
    w.move("img_in", "x_embedder")
    scale = (W, ("scale",))
    for i in range(config["num_layers"]):
        d, t = f"double_blocks.{i}", f"transformer_blocks.{i}"
        w.move(f"{d}.img_mod.lin", f"{t}.norm1.linear")
        w.move(f"{d}.txt_mod.lin", f"{t}.norm1_context.linear")
        w.fuse(f"{d}.img_attn.qkv", [f"{t}.attn.to_q", f"{t}.attn.to_k", f"{t}.attn.to_v"])
        w.fuse(f"{d}.txt_attn.qkv", [f"{t}.attn.add_q_proj", f"{t}.attn.add_k_proj", f"{t}.attn.add_v_proj"])
        w.move(f"{d}.img_attn.norm.query_norm", f"{t}.attn.norm_q", *scale)
        w.move(f"{d}.img_attn.norm.key_norm", f"{t}.attn.norm_k", *scale)
        w.move(f"{d}.txt_attn.norm.query_norm", f"{t}.attn.norm_added_q", *scale)
        w.move(f"{d}.txt_attn.norm.key_norm", f"{t}.attn.norm_added_k", *scale)
        w.move(f"{d}.img_mlp.0", f"{t}.ff.net.0.proj")
        w.move(f"{d}.img_mlp.2", f"{t}.ff.net.2")
        w.move(f"{d}.txt_mlp.0", f"{t}.ff_context.net.0.proj")
        w.move(f"{d}.txt_mlp.2", f"{t}.ff_context.net.2")
        w.move(f"{d}.img_attn.proj", f"{t}.attn.to_out.0")
        w.move(f"{d}.txt_attn.proj", f"{t}.attn.to_add_out")
    for i in range(config["num_single_layers"]):
        s, t = f"single_blocks.{i}", f"single_transformer_blocks.{i}"
        w.move(f"{s}.modulation.lin", f"{t}.norm.linear")
        w.fuse(f"{s}.linear1", [f"{t}.attn.to_q", f"{t}.attn.to_k", f"{t}.attn.to_v", f"{t}.proj_mlp"])
        w.move(f"{s}.norm.query_norm", f"{t}.attn.norm_q", *scale)
        w.move(f"{s}.norm.key_norm", f"{t}.attn.norm_k", *scale)
        w.move(f"{s}.linear2", f"{t}.proj_out")  # inputs [attention out | MLP out]: one tensor in both
    w.move("final_layer.linear", "proj_out")
    w.swapped("final_layer.adaLN_modulation.1", "norm_out.linear")


Z_IMAGE_RENAMES = ((".attention.to_out.0.", ".attention.out."), (".attention.norm_q.", ".attention.q_norm."),
                   (".attention.norm_k.", ".attention.k_norm."))


def _z_image_to_original(w: _Writer, config: dict) -> None:
    """Inverse of diffusers' convert_z_image_transformer_checkpoint_to_diffusers (renames, fused qkv)."""
    patches = (tuple(config.get("all_patch_size", (2,))), tuple(config.get("all_f_patch_size", (1,))))
    if len(patches[0]) != 1:
        raise DiffdiffError(f"the original Z-Image layout holds one patch size, not {patches[0]}")
    patch = f"{patches[0][0]}-{patches[1][0]}"
    for key in sorted(k for k in w.source if k.endswith(".attention.to_q.weight")):
        block = key[: -len(".to_q.weight")]
        w.fuse(f"{block}.qkv", [f"{block}.to_q", f"{block}.to_k", f"{block}.to_v"], W)
    for key in sorted(w.source):
        new = key.replace(f"all_final_layer.{patch}.", "final_layer.").replace(f"all_x_embedder.{patch}.",
                                                                               "x_embedder.")
        for diffusers, original in Z_IMAGE_RENAMES:
            new = new.replace(diffusers, original)
        if not new.startswith(("all_final_layer.", "all_x_embedder.")):  # other patch sizes: done() refuses
            w.out[new] = w.take(key)


TO_ORIGINAL = {"sd3": _sd3_to_original, "flux": _flux_to_original, "z-image": _z_image_to_original}


def transformer_to_original(family: str, diffusers_state_dict: dict, config: dict) -> dict:
    """`family`'s diffusers transformer weights (built with `config`) keyed and packed as in the original
    single files, without the `model.diffusion_model.` prefix. Renamed tensors are the same objects; fused
    ones (qkv, Flux's linear1) and swapped ones (final adaLN) are new. Every diffusers weight must find a
    place, else DiffdiffError."""
    writer = _Writer(diffusers_state_dict)
    TO_ORIGINAL[network_of(family)](writer, config)
    return writer.done()


# --- original -> diffusers ---------------------------------------------------------------------------------

def _first(keys) -> str:
    return sorted(keys)[0]


def _check_original(family: str, state: dict, config: dict, model_state: dict) -> None:
    """Refuse an original-layout state dict that lacks a weight of the model `config` describes, has one it
    does not know, or has one of another shape; the expected names and shapes are that model's (meta)
    weights `model_state` written in the original layout."""
    expected = transformer_to_original(family, model_state, config)
    present = set(state) - set(DROPPED_ORIGINAL_KEYS.get(family, ()))
    missing, extra = set(expected) - present, present - set(expected)
    if missing:
        raise DiffdiffError(f"transformer checkpoint lacks {len(missing)} weights (e.g. {_first(missing)})")
    if extra:
        raise DiffdiffError(f"transformer checkpoint has {len(extra)} unknown weights (e.g. {_first(extra)})")
    for key in sorted(expected):
        if tuple(state[key].shape) != tuple(expected[key].shape):
            raise DiffdiffError(f"transformer checkpoint weight {key} has shape {tuple(state[key].shape)}; "
                                f"the model expects {tuple(expected[key].shape)}")


def _convert_flux(checkpoint: dict, config: dict) -> dict:
    """diffusers' Flux converter, with single blocks' linear1 split at this checkpoint's width: the
    converter splits it at Flux.1's 3072 (q, k, v, 4x MLP), so it gets a meta placeholder of that shape and
    its split is replaced by ours."""
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    hidden = config["num_attention_heads"] * config["attention_head_dim"]
    ours = {}
    for i in range(config["num_single_layers"]):
        t = f"single_transformer_blocks.{i}"
        for suffix in WB:
            fused = checkpoint[f"single_blocks.{i}.linear1.{suffix}"]
            parts = torch.split(fused, [hidden, hidden, hidden, fused.shape[0] - 3 * hidden], dim=0)
            for name, part in zip(("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), parts):
                ours[f"{t}.{name}.{suffix}"] = part.clone()
            checkpoint[f"single_blocks.{i}.linear1.{suffix}"] = torch.empty(
                (7 * FLUX_CONVERTER_WIDTH, *fused.shape[1:]), device="meta")
    converted = convert_flux_transformer_checkpoint_to_diffusers(checkpoint)
    converted.update(ours)
    return converted


def _convert(family: str, checkpoint: dict, config: dict) -> dict:
    from diffusers.loaders import single_file_utils as converters

    network = network_of(family)
    if network == "flux":
        return _convert_flux(checkpoint, config)
    if network == "sd3":
        return converters.convert_sd3_transformer_checkpoint_to_diffusers(checkpoint)
    return converters.convert_z_image_transformer_checkpoint_to_diffusers(checkpoint)


def transformer_from_original(family: str, state_dict: dict, config: dict,
                              model_state: dict | None = None) -> dict:
    """The diffusers state dict of an original-layout `family` checkpoint (keys bare or prefixed; other
    components of a whole-model file are ignored), converted by diffusers' converters and checked strictly
    against the model `config` builds (`model_state`: that model's state dict when the caller has built it,
    e.g. on the meta device; else it is built here): a missing, unknown or misshapen weight is a
    DiffdiffError naming it. `state_dict` is not modified."""
    family = check_flow_family(family)
    checkpoint = dict(strip_network_prefix(state_dict))  # the converters pop from the dict they get
    expected = model_state if model_state is not None else _meta_state(family, config)
    _check_original(family, checkpoint, config, expected)
    converted = _convert(family, checkpoint, config)
    leftover = set(checkpoint) - set(DROPPED_ORIGINAL_KEYS.get(family, ()))
    missing, extra = set(expected) - set(converted), (set(converted) - set(expected)) | leftover
    if missing:
        raise DiffdiffError(f"transformer checkpoint lacks {len(missing)} weights (e.g. {_first(missing)})")
    if extra:
        raise DiffdiffError(f"transformer checkpoint has {len(extra)} unconverted weights "
                            f"(e.g. {_first(extra)})")
    return converted
