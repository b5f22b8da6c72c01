"""Tiny LoRA files in the layouts real tools write (kohya/A1111, diffusers/PEFT, ComfyUI), built from the tiny
models' real module names and shapes, with the expected weight changes computed here from the file's own
tensors (independently of diffdiff.lora), and a shared tiny SDXL model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

RANK = 4
_MODELS: dict[str, object] = {}

# The tiny models (2 levels, 1 layer per block) in the SGM/ldm layout kohya (SDXL) and ComfyUI use,
# written out by hand from the ldm block numbering: input_blocks 1 + level * 2 + index,
# output_blocks level * 2 + index.
LDM_NAMES = {
    "down_blocks.0.resnets.0.conv1": "input_blocks.1.0.in_layers.2",
    "down_blocks.1.resnets.0.conv_shortcut": "input_blocks.3.0.skip_connection",
    "down_blocks.1.attentions.0.proj_in": "input_blocks.3.1.proj_in",
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q":
        "input_blocks.3.1.transformer_blocks.0.attn1.to_q",
    "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k":
        "input_blocks.3.1.transformer_blocks.0.attn2.to_k",
    "mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0":
        "middle_block.1.transformer_blocks.0.attn1.to_out.0",
    "up_blocks.0.attentions.1.transformer_blocks.0.ff.net.2":
        "output_blocks.1.1.transformer_blocks.0.ff.net.2",
    "up_blocks.1.resnets.1.conv2": "output_blocks.3.0.out_layers.3",
}
UNET_TARGETS = tuple(LDM_NAMES)
TEXT_TARGETS = ("encoder.layers.0.self_attn.q_proj", "encoder.layers.1.mlp.fc1")


def tiny_model(tmp_path_factory, family: str):
    """The tiny random model of `family`, built and loaded once per test session."""
    if family not in _MODELS:
        from diffdiff.models import load_model, make_tiny_model

        folder = make_tiny_model(tmp_path_factory.mktemp("lora-tiny") / family, family)
        _MODELS[family] = load_model(folder, device="cpu")
    return _MODELS[family]


def networks(model) -> dict[str, torch.nn.Module]:
    named = {"unet": model.unet, "text_encoder": model.text_encoders[0]}
    if len(model.text_encoders) > 1:
        named["text_encoder_2"] = model.text_encoders[1]
    return named


def layer(model, network: str, path: str) -> torch.nn.Module:
    modules = dict(networks(model)[network].named_modules())
    return modules[path] if path in modules else modules["text_model." + path]


@dataclass
class Target:
    """One layer a test LoRA changes, its tensors as written to the file and the alpha written (or None)."""

    network: str
    path: str
    down: torch.Tensor
    up: torch.Tensor
    alpha: float | None

    def delta(self, shape) -> torch.Tensor:
        """The change of the layer weight at strength 1: (alpha / rank) × up·down in the weight's shape."""
        rank = self.down.shape[0]
        scale = (self.alpha if self.alpha is not None else rank) / rank
        return scale * (self.up.flatten(1) @ self.down.flatten(1)).reshape(shape)


def make_targets(model, seed: int = 0, with_alpha: bool = True, text: bool = True) -> list[Target]:
    """Random low-rank pairs for the UNet layers of UNET_TARGETS and the text layers (both SDXL encoders)."""
    generator = torch.Generator().manual_seed(seed)
    chosen = [("unet", path) for path in UNET_TARGETS]
    if text:
        chosen += [
            (network, path) for network in networks(model) if network != "unet" for path in TEXT_TARGETS
        ]
    targets = []
    for index, (network, path) in enumerate(chosen):
        weight = layer(model, network, path).weight
        out_features, in_features = weight.shape[:2]
        if weight.ndim == 4:
            down = torch.randn(RANK, in_features, *weight.shape[2:], generator=generator)
            up = torch.randn(out_features, RANK, 1, 1, generator=generator)
        else:
            down = torch.randn(RANK, in_features, generator=generator)
            up = torch.randn(out_features, RANK, generator=generator)
        alpha = float(1 + index % 3) if with_alpha and index % 2 == 0 else None
        targets.append(Target(network, path, down * 0.1, up * 0.1, alpha))
    return targets


def _text_path(path: str) -> str:
    return path if path.startswith("text_model.") else "text_model." + path


KOHYA_TEXT = {"text_encoder": "lora_te_", "text_encoder_2": "lora_te2_"}
KOHYA_SDXL_TEXT = {"text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}


def _add_pair(state: dict, stem: str, target: Target, down: str, up: str, alpha: bool = True) -> None:
    """The target's down / up matrices under `stem` + the format's suffixes, and its alpha if it has one."""
    state[f"{stem}.{down}"] = target.down
    state[f"{stem}.{up}"] = target.up
    if alpha and target.alpha is not None:
        state[stem + ".alpha"] = torch.tensor(target.alpha)


def kohya_state(targets: list[Target], sgm: bool, sdxl: bool = False) -> dict[str, torch.Tensor]:
    """kohya-ss sd-scripts names: `lora_unet_<path with _>`; SD1 in diffusers names, SDXL (sgm) in ldm."""
    state = {}
    for target in targets:
        if target.network == "unet":
            stem = "lora_unet_" + (LDM_NAMES[target.path] if sgm else target.path).replace(".", "_")
        else:
            prefix = (KOHYA_SDXL_TEXT if sdxl else KOHYA_TEXT)[target.network]
            stem = prefix + _text_path(target.path).replace(".", "_")
        _add_pair(state, stem, target, "lora_down.weight", "lora_up.weight")
    return state


def peft_state(targets: list[Target]) -> dict[str, torch.Tensor]:
    """diffusers' current names: `unet.<module>.lora_A.weight` / `lora_B.weight`, `text_encoder[_2].…`; alpha
    as `<module>.alpha` where a target has one."""
    state = {}
    for target in targets:
        path = target.path if target.network == "unet" else _text_path(target.path)
        _add_pair(state, f"{target.network}.{path}", target, "lora_A.weight", "lora_B.weight")
    return state


def old_diffusers_state(targets: list[Target]) -> dict[str, torch.Tensor]:
    """diffusers' first LoRA names (attention processors):
    `unet.<block>.attn1.processor.to_q_lora.down.weight`; only the attention projections (that format had
    no other layers)."""
    state = {}
    for target in targets:
        block, _, projection = target.path.rpartition(".")
        if target.network != "unet" or projection not in ("to_q", "to_k", "to_v", "0"):
            continue
        if projection == "0":
            block, projection = block.rpartition(".")[0], "to_out"
        _add_pair(state, f"unet.{block}.processor.{projection}_lora", target, "down.weight", "up.weight",
                  alpha=False)
    return state


COMFY_TEXT = {
    ("sd1", "text_encoder"): "clip_l",
    ("sdxl", "text_encoder"): "clip_l",
    ("sdxl", "text_encoder_2"): "clip_g",
}


def comfy_state(targets: list[Target], family: str) -> dict[str, torch.Tensor]:
    """ComfyUI's LoRA save node names: `diffusion_model.<ldm path>.lora_up.weight`, text encoders under
    `text_encoders.clip_l|clip_g.transformer.text_model.…`."""
    state = {}
    for target in targets:
        if target.network == "unet":
            stem = "diffusion_model." + LDM_NAMES[target.path]
        else:
            stem = (
                f"text_encoders.{COMFY_TEXT[(family, target.network)]}.transformer.{_text_path(target.path)}"
            )
        _add_pair(state, stem, target, "lora_down.weight", "lora_up.weight")
    return state


def write(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """`state` as a .safetensors file at `path` (fp16 tensors stay fp16, as trainers often save them)."""
    save_file({key: value.contiguous() for key, value in state.items()}, str(path), metadata=metadata)
    return path


def parameters(model) -> dict[str, torch.Tensor]:
    """Copies of every parameter and buffer of the model's networks, keyed `<network>.<name>`."""
    return {
        f"{name}.{key}": value.detach().clone()
        for name, network in networks(model).items()
        for key, value in network.state_dict().items()
    }


def weight_key(model, target: Target) -> str:
    network = networks(model)[target.network]
    path = target.path if target.path in dict(network.named_modules()) else "text_model." + target.path
    return f"{target.network}.{path}.weight"
