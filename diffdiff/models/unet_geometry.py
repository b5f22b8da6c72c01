"""Infer the diffusers `UNet2DConditionModel` config of an ldm-layout UNet from its tensors.

One job: `infer_unet_config(state_dict, defaults)` reads the keys and shapes under `model.diffusion_model.`
(input_blocks / middle_block / output_blocks, as A1111 and ComfyUI write them) and returns the config that
builds a network with exactly those weights: levels and their widths, resnets per level, which levels
attend, the transformer depth of every attention block (down, middle and up, which distilled models such as
BK-SDM, small-sd, SSD-1B and Segmind Vega change), the context width, linear or 1x1-conv projections, the
input/output channels and SDXL's label embedding. What tensors cannot tell (head counts, group norms,
sample size, time-embedding details) comes from `defaults`, the family's shipped or header config. Only
shapes are read, so meta tensors or any object with a `.shape` will do. The rules are in docs/design.md §18.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import DiffdiffError
from .ldm_layout import UNET_PREFIX as PREFIX

POOLED_KEY = "conditioner.embedders.1.model.text_projection"  # SDXL's OpenCLIP-G projection (width, pooled)
TIME_IDS = 6  # SDXL's size / crop conditioning numbers, each embedded to addition_time_embed_dim
RESNET_WIDTH_KEYS = ("out_layers.3.weight", "out_layers.3.bias", "in_layers.2.weight", "in_layers.2.bias",
                     "emb_layers.1.weight", "emb_layers.1.bias")
PLACEHOLDER_DEPTH = 1  # transformer depth written for levels without attention (diffusers ignores it there)


@dataclass
class _Attention:
    depth: int
    context: int | None
    linear: bool


@dataclass
class _Level:
    width: int = 0
    blocks: list = field(default_factory=list)  # per resnet block: its _Attention or None


def _shape(tensor) -> tuple[int, ...]:
    return tuple(int(n) for n in tensor.shape)


def _blocks(unet: dict, part: str) -> dict[int, dict[int, dict]]:
    """{block index: {sub-module index: {rest of key: tensor}}} of `part` (input_blocks, output_blocks)."""
    found: dict[int, dict[int, dict]] = {}
    for key, tensor in unet.items():
        if m := re.match(rf"{part}\.(\d+)\.(\d+)\.(.+)", key):
            found.setdefault(int(m[1]), {}).setdefault(int(m[2]), {})[m[3]] = tensor
    return found


def _attention(sub: dict | None, where: str) -> _Attention | None:
    """The spatial transformer in `sub` (None: no attention here); its depth is the highest block index + 1,
    so a gap in the numbering leaves a block the strict weight check will report missing."""
    if not sub or all(key.startswith("conv.") for key in sub):  # nothing, or an output block's upsampler
        return None
    indices = {int(m[1]) for key in sub if (m := re.match(r"transformer_blocks\.(\d+)\.", key))}
    if not indices:
        raise DiffdiffError(f"UNet block {where} has attention but no transformer_blocks; unsupported")
    keys = [k for k in sub if re.fullmatch(r"transformer_blocks\.\d+\.attn2\.to_k\.weight", k)]
    context = _shape(sub[keys[0]])[1] if keys else None
    projection = sub.get("proj_in.weight", sub.get("proj_out.weight"))
    linear = projection is not None and len(_shape(projection)) == 2
    return _Attention(max(indices) + 1, context, linear)


def _resnet_width(sub: dict, where: str) -> int:
    for key in RESNET_WIDTH_KEYS:
        if key in sub:
            return _shape(sub[key])[0]
    raise DiffdiffError(f"checkpoint lacks the unet weights of {where}'s resnet; an incomplete file?")


def _down_levels(unet: dict) -> list[_Level]:
    """The input blocks, split into levels at each downsampler (`N.0.op`)."""
    blocks = _blocks(unet, "input_blocks")
    levels, level = [], _Level()
    for index in range(1, max(blocks, default=0) + 1):
        where = f"input_blocks.{index}"
        subs = blocks.get(index, {})
        if any(key.startswith("op.") for key in subs.get(0, {})):
            if not level.blocks:
                raise DiffdiffError(f"UNet {where} downsamples a level without resnets; unsupported geometry")
            levels.append(level)
            level = _Level()
            continue
        if not subs.get(0):
            raise DiffdiffError(f"checkpoint lacks the unet weights of {where}; an incomplete file?")
        width = _resnet_width(subs[0], where)
        if level.blocks and width != level.width:
            raise DiffdiffError(f"UNet {where} changes width inside a level; unsupported geometry")
        level.width = width
        level.blocks.append(_attention(subs.get(1), where))
    if not level.blocks:
        raise DiffdiffError("checkpoint lacks the unet's input blocks; an incomplete file or wrong family?")
    return levels + [level]


def _up_levels(unet: dict, down: list[_Level]) -> list[list]:
    """Per up level (coarsest first): the _Attention or None of each output block. Level u mirrors down
    level L-1-u with one block more (the block that takes the level's input as its skip)."""
    blocks = _blocks(unet, "output_blocks")
    sizes = [len(level.blocks) + 1 for level in reversed(down)]
    if max(blocks, default=-1) + 1 != sum(sizes):
        raise DiffdiffError(f"UNet has {max(blocks, default=-1) + 1} output blocks; its input blocks imply"
                            f" {sum(sizes)}; unsupported geometry or an incomplete file")
    up, index = [], 0
    for size in sizes:
        level = []
        for _ in range(size):
            if not blocks.get(index, {}).get(0):
                raise DiffdiffError(f"checkpoint lacks the unet weights of output_blocks.{index}")
            level.append(_attention(blocks[index].get(1), f"output_blocks.{index}"))
            index += 1
        up.append(level)
    return up


def _middle(unet: dict) -> tuple[str | None, _Attention | None]:
    """(mid_block_type, its attention): none at all (BK-SDM small/tiny), one resnet (SSD-1B, Vega) or
    resnet-attention-resnet."""
    if not any(key.startswith("middle_block.") for key in unet):
        return None, None
    middle = {key[len("middle_block.1."):]: t for key, t in unet.items() if key.startswith("middle_block.1.")}
    attention = _attention(middle, "middle_block")
    if attention is None:
        return "UNetMidBlock2D", None
    return "UNetMidBlock2DCrossAttn", attention


def _uniform(kinds: list, where: str) -> bool:
    """Whether a level's blocks attend; all of them or none (diffusers has no mixed block)."""
    attends = {kind is not None for kind in kinds}
    if len(attends) > 1:
        raise DiffdiffError(f"UNet {where} mixes blocks with and without attention; unsupported geometry")
    return attends == {True}


def _depths(down: list[_Level], up: list[list], mid: _Attention | None) -> dict:
    """transformer_layers_per_block (per level: an int, or per block when they differ) and, when the up
    blocks are not the mirror of that, reverse_transformer_layers_per_block (per up level, per block)."""
    per_level = []
    for index, level in enumerate(down):
        depths = [a.depth for a in level.blocks if a is not None]
        if not depths:
            last = index == len(down) - 1
            per_level.append(mid.depth if last and mid is not None else PLACEHOLDER_DEPTH)
        else:
            per_level.append(depths[0] if len(set(depths)) == 1 else depths)
    if mid is not None:
        first = per_level[-1] if isinstance(per_level[-1], int) else per_level[-1][0]
        if first != mid.depth:  # diffusers gives the mid block the last level's (first) depth
            raise DiffdiffError(f"UNet middle block has {mid.depth} transformer blocks but the last level"
                                f" {first}; diffusers cannot build that geometry")
    mirrored = [[d] * len(blocks) if isinstance(d, int) else None
                for d, blocks in zip(reversed(per_level), up)]
    actual = [[a.depth if a is not None else PLACEHOLDER_DEPTH for a in blocks] for blocks in up]
    attending = [any(a is not None for a in blocks) for blocks in up]
    symmetric = all(m is not None and (m == a or not att) for m, a, att in zip(mirrored, actual, attending))
    result: dict = {"transformer_layers_per_block": per_level}
    if all(isinstance(d, int) for d in per_level) and len(set(per_level)) == 1:
        result["transformer_layers_per_block"] = per_level[0]
    result["reverse_transformer_layers_per_block"] = None if symmetric else actual
    return result


def _heads(widths: list[int], defaults: dict) -> int | list[int]:
    """diffusers' `attention_head_dim` (a head count): SD1-style defaults give a fixed number of heads (an
    int); SD2/SDXL-style defaults give a fixed head width (their width / count, 64), so count = width / 64."""
    heads = defaults.get("attention_head_dim", 8)
    if isinstance(heads, int):
        return heads
    base = defaults.get("block_out_channels") or widths
    head_width = max(1, base[0] // max(1, heads[0]))
    return [w // head_width if w >= head_width and w % head_width == 0 else 1 for w in widths]


def infer_unet_config(state_dict: dict, defaults: dict) -> dict:
    """The diffusers UNet2DConditionModel config of the ldm UNet in `state_dict` (keys under
    `model.diffusion_model.`), `defaults` filling what the tensors cannot tell; DiffdiffError (one line)
    for a file without a UNet or with a geometry diffusers cannot build."""
    unet = {k[len(PREFIX):]: v for k, v in state_dict.items() if k.startswith(PREFIX)}
    if "input_blocks.0.0.weight" not in unet:
        raise DiffdiffError(f"checkpoint lacks the unet weights ({PREFIX}input_blocks.0.0.weight);"
                            " wrong family or an incomplete file?")
    conv_in = _shape(unet["input_blocks.0.0.weight"])
    down = _down_levels(unet)
    up = _up_levels(unet, down)
    mid_type, mid = _middle(unet)
    down_attends = [_uniform(level.blocks, f"input level {i}") for i, level in enumerate(down)]
    up_attends = [_uniform(blocks, f"output level {i}") for i, blocks in enumerate(up)]
    attentions = [a for level in down for a in level.blocks if a] + [a for b in up for a in b if a]
    attentions += [mid] if mid else []
    widths = [level.width for level in down]
    layers = [len(level.blocks) for level in down]
    config = dict(defaults)
    config.update(
        in_channels=conv_in[1],
        conv_in_kernel=conv_in[2],
        block_out_channels=widths,
        layers_per_block=layers[0] if len(set(layers)) == 1 else layers,
        down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in down_attends],
        up_block_types=["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in up_attends],
        mid_block_type=mid_type,
        attention_head_dim=_heads(widths, defaults),
        **_depths(down, up, mid),
    )
    if "out.2.weight" in unet:
        out = _shape(unet["out.2.weight"])
        config.update(out_channels=out[0], conv_out_kernel=out[2])
    if attentions:
        contexts = [a.context for a in attentions if a.context is not None]
        if contexts:
            config["cross_attention_dim"] = contexts[0]
        config["use_linear_projection"] = attentions[0].linear
    if "time_embed.0.weight" in unet:
        time_width = _shape(unet["time_embed.0.weight"])[0]
        config["time_embedding_dim"] = None if time_width == 4 * widths[0] else time_width
    config.update(_label_embedding(unet, state_dict, defaults))
    return config


def _label_embedding(unet: dict, state_dict: dict, defaults: dict) -> dict:
    """SDXL's `label_emb` (pooled text + embedded time ids) → addition_embed_type "text_time" and its input
    width; the per-id width is (input width − pooled width) / 6 when the file holds the pooled projection."""
    if "label_emb.0.0.weight" not in unet:
        return {"addition_embed_type": None} if defaults.get("addition_embed_type") == "text_time" else {}
    width = _shape(unet["label_emb.0.0.weight"])[1]
    result = {"addition_embed_type": "text_time", "projection_class_embeddings_input_dim": width}
    if POOLED_KEY in state_dict:
        rest = width - _shape(state_dict[POOLED_KEY])[-1]
        if rest > 0 and rest % TIME_IDS == 0:
            result["addition_time_embed_dim"] = rest // TIME_IDS
    return result
