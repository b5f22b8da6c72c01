"""Check a LoRA in neutral form against one loaded model and pin each update to a real layer: refuse a LoRA
made for another model family (second-text-encoder weights, cross-attention or text-encoder width), keys that
match no layer, and shapes that do not fit, each with one line, before any weight is touched."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import DiffdiffError
from .layouts import NETWORKS, LoraTensors, LowRankPair, shown

# Cross-attention widths of the real families (the UNet's cross_attention_dim) and their names.
FAMILY_BY_CROSS_WIDTH = {768: "SD1", 1024: "SD2", 2048: "SDXL"}
FAMILY_BY_TEXT_WIDTH = {768: "SD1 (CLIP-L)", 1024: "SD2 (OpenCLIP-H)"}
CROSS_ATTENTION_INPUTS = (".attn2.to_k", ".attn2.to_v")


@dataclass
class LayerUpdate:
    """A low-rank update pinned to a layer; `down` / `up` have the layer's kind of shape (linear / conv)."""

    layer: nn.Module
    down: torch.Tensor
    up: torch.Tensor
    source: str

    def delta(self) -> torch.Tensor:
        """up @ down in the shape of the layer's weight (float32)."""
        weight = self.layer.weight
        return (self.up.flatten(1) @ self.down.flatten(1)).reshape(weight.shape)


@dataclass
class ResolvedLora:
    """A LoRA checked against one model: per network, module path -> LayerUpdate, and full differences."""

    updates: dict[str, dict[str, LayerUpdate]] = field(default_factory=dict)
    full_diffs: dict[str, list[tuple[nn.Parameter, torch.Tensor]]] = field(default_factory=dict)


def model_networks(model) -> dict[str, nn.Module]:
    """The model's networks under the names LoRA files use."""
    networks = {"unet": model.unet}
    for name, encoder in zip(NETWORKS[1:], model.text_encoders):
        networks[name] = encoder
    return networks


def check_family(name: str, lora: LoraTensors, model) -> None:
    """Refuse a LoRA whose second-encoder weights or layer widths say it was made for another family."""
    family = model.family
    has_second = lora.low_rank["text_encoder_2"] or lora.full_diffs["text_encoder_2"]
    if has_second and len(model.text_encoders) < 2:
        raise DiffdiffError(
            f"LoRA {name} is for SDXL (it has second-text-encoder weights); the model is {family}"
        )
    model_width = int(model.unet.config.cross_attention_dim)
    for module, pair in lora.low_rank["unet"].items():
        if (
            module.endswith(CROSS_ATTENTION_INPUTS)
            and pair.down.ndim == 2
            and pair.down.shape[1] != model_width
        ):
            width = int(pair.down.shape[1])
            kind = FAMILY_BY_CROSS_WIDTH.get(width)
            said = f"{kind}" if kind else "another model family"
            raise DiffdiffError(
                f"LoRA {name} is for {said} (it has {width}-wide cross-attention); the model is"
                f" {family} ({model_width}-wide)"
            )
    encoder = model.text_encoders[0]
    text_width = int(encoder.config.hidden_size)
    for module, pair in lora.low_rank["text_encoder"].items():
        if module.endswith("self_attn.q_proj") and pair.down.ndim == 2 and pair.down.shape[1] != text_width:
            width = int(pair.down.shape[1])
            said = FAMILY_BY_TEXT_WIDTH.get(width, "another model family")
            raise DiffdiffError(
                f"LoRA {name} is for {said} (its text encoder is {width} wide); the model is"
                f" {family} ({text_width} wide)"
            )


def _find_module(modules: dict[str, nn.Module], path: str) -> tuple[str, nn.Module | None]:
    """(the network's own path, module) for `path` among a network's `modules`; text-encoder paths match with
    or without transformers' `text_model.` level (transformers 5 flattens CLIPTextModel)."""
    candidates = [path, "text_model." + path]
    if path.startswith("text_model."):
        candidates.append(path[len("text_model.") :])
    return next(((c, modules[c]) for c in candidates if c in modules), (path, None))


def _fit(name: str, pair: LowRankPair, layer: nn.Module) -> LayerUpdate:
    """`pair` reshaped to the layer's kind; DiffdiffError naming the key and both shapes if it won't fit."""
    weight = layer.weight
    down, up = pair.down, pair.up
    rank = down.shape[0]
    fits = up.ndim >= 2 and up.shape[1] == rank and up[0].numel() == rank and up.shape[0] == weight.shape[0]
    if isinstance(layer, nn.Conv2d):
        kernel = tuple(weight.shape[2:])
        fits = fits and down.ndim in (2, 4) and down.shape[1] == weight.shape[1]
        fits = fits and (tuple(down.shape[2:]) == kernel if down.ndim == 4 else kernel == (1, 1))
        if fits:
            down = down.reshape(rank, weight.shape[1], *kernel)
            up = up.reshape(weight.shape[0], rank, 1, 1)
    else:
        fits = fits and down[0].numel() == weight.shape[1] and down.ndim in (2, 4)
        fits = fits and (down.ndim == 2 or tuple(down.shape[2:]) == (1, 1))
        if fits:
            down = down.reshape(rank, weight.shape[1])
            up = up.reshape(weight.shape[0], rank)
    if not fits:
        raise DiffdiffError(
            f"LoRA {name}: {pair.source} does not fit the model: LoRA down {tuple(pair.down.shape)}"
            f" / up {tuple(pair.up.shape)} for a layer weight of {tuple(weight.shape)}"
        )
    return LayerUpdate(layer, down, up, pair.source)


def resolve(name: str, lora: LoraTensors, model) -> ResolvedLora:
    """`lora` pinned to `model`'s layers, after the family, unknown-key and shape checks."""
    check_family(name, lora, model)
    networks = model_networks(model)
    unknown = list(lora.unknown)
    resolved = ResolvedLora()
    for network_name in NETWORKS:
        network = networks.get(network_name)
        modules = dict(network.named_modules()) if network is not None else {}
        updates = {}
        for module, pair in lora.low_rank[network_name].items():
            own_path, layer = _find_module(modules, module)
            if not isinstance(layer, (nn.Linear, nn.Conv2d)):
                unknown.append(pair.source)
                continue
            updates[own_path] = (pair, layer)  # fitted below, once every key is known to exist
        diffs = []
        for path, (diff, source) in lora.full_diffs[network_name].items():
            module_path, _, param_name = path.rpartition(".")
            _, layer = _find_module(modules, module_path)
            param = getattr(layer, param_name, None) if layer is not None else None
            if not isinstance(param, torch.Tensor):
                unknown.append(source)
                continue
            diffs.append((param, diff, source))
        if not unknown:
            resolved.updates[network_name] = {
                module: _fit(name, pair, layer) for module, (pair, layer) in updates.items()
            }
            resolved.full_diffs[network_name] = []
            for param, diff, source in diffs:
                if diff.numel() != param.numel():
                    raise DiffdiffError(
                        f"LoRA {name}: {source} does not fit the model: difference"
                        f" {tuple(diff.shape)} for a parameter of {tuple(param.shape)}"
                    )
                resolved.full_diffs[network_name].append((param, diff.reshape(param.shape)))
    if unknown:
        raise DiffdiffError(
            f"LoRA {name} has keys that match no layer of this {model.family} model"
            f" ({shown(unknown)}); is it for another model?"
        )
    if not any(resolved.updates.values()) and not any(resolved.full_diffs.values()):
        raise DiffdiffError(f"LoRA {name} holds no LoRA weights")
    return resolved
