"""Load the flow families (SD3/3.5, Flux.1 dev/schnell/Fill, Z-Image) from single files or diffusers folders.

Single files come as ComfyUI/A1111 users have them: a whole-model file (the transformer under
`model.diffusion_model.`, text encoders under `text_encoders.<name>.transformer.`, the VAE under
`first_stage_model.` or `vae.`), or a transformer-only file with the text encoders and the VAE given as
their own files (`text_encoders=[...]`, `vae=...`). Each network's geometry is read from its tensors
(`flow_layout.infer_transformer_config`, `text_encoders.text_encoder_config`); a file written by diffdiff
may carry the configs in its header instead. fp8-stored weights are upcast on load (`fp8.upcast_fp8`).
Every load is strict: a missing tensor is refused with one line that names it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from ..errors import DiffdiffError
from .families import FAMILY_TABLE, FLOW_FAMILIES
from .flow_geometry import network_of
from .single_file import (
    SHIPPED_CONFIGS,
    _build_strict,
    build_vae,
    configs_from_metadata,
    read_checkpoint,
    write_config_folder,
)

# The text encoders each flow network reads, in the order the prompt encoders take them.
TEXT_KINDS = {"sd3": ("clip-l", "clip-g", "t5"), "flux": ("clip-l", "t5"), "z-image": ("qwen3",)}
OPTIONAL_TEXT_KINDS = {"sd3": ("t5",)}  # SD3 runs without T5 (its part of the context is then zeros)
VAE_PREFIXES = ("first_stage_model.", "vae.")


def vae_config_folder(family: str) -> Path:
    """The shipped config folder of a flow family's VAE (Z-Image and every Flux use Flux's)."""
    return SHIPPED_CONFIGS / ("sd3-vae" if family == "sd3" else "flux-vae")


def resolve_flow_family(detected: str, family: str | None, prediction: str | None = None) -> str:
    """The detected family, or the `family=` override when it names the same network with the same inputs
    (flux ↔ flux-schnell; Fill's inputs are its own). A `prediction=` override does not apply: every flow
    family predicts the flow velocity."""
    if prediction is not None:
        raise DiffdiffError(f"--prediction applies to SD2 checkpoints; this one is {detected} (flow)")
    if family is None:
        return detected
    fill_mismatch = (family == "flux-fill") != (detected == "flux-fill")
    if family not in FLOW_FAMILIES or network_of(family) != network_of(detected) or fill_mismatch:
        raise DiffdiffError(f"family {family!r} does not match the checkpoint, whose network is {detected}'s;"
                            " leave the family to detection")
    return family


def build_transformer(family: str, weights: dict, config: dict, dtype: torch.dtype):
    """The family's diffusers transformer from original-layout `weights` (prefix stripped), strictly."""
    from .flow_layout import transformer_class, transformer_from_original

    model_class = transformer_class(family)
    def convert(skeleton):  # checked against the meta skeleton _build_strict builds anyway
        return transformer_from_original(family, weights, config, skeleton.state_dict())

    return _build_strict(lambda: model_class.from_config(config), convert, "transformer", dtype)


def read_text_encoder_files(paths, allow_pickle: bool) -> dict:
    """{kind: state dict} of separately given text-encoder files, each identified by its tensors; of two
    CLIP files the larger (width, then depth) is CLIP-G whatever their widths say alone."""
    from .text_encoders import identify_text_encoder

    found, clips = {}, []
    for path in paths or ():
        state, _ = read_checkpoint(Path(path).expanduser(), allow_pickle=allow_pickle)
        kind = identify_text_encoder(state)
        if kind.startswith("clip"):
            clips.append((_clip_size(state), Path(path).name, state))
            continue
        if kind in found:
            raise DiffdiffError(f"two {kind} text encoders given ({Path(path).name} is the second)")
        found[kind] = state
    if len(clips) > 2:
        raise DiffdiffError(f"three CLIP text encoders given ({clips[2][1]} is the third); give CLIP-L and "
                            "CLIP-G once each")
    if len(clips) == 2:
        (_, _, smaller), (_, _, larger) = sorted(clips, key=lambda clip: clip[0])
        found.update({"clip-l": smaller, "clip-g": larger})
    elif clips:
        found[identify_text_encoder(clips[0][2])] = clips[0][2]
    return found


def _clip_size(state: dict) -> tuple[int, int]:
    """(width, layers) of a CLIP text encoder's tensors."""
    width = next(int(tensor.shape[-1]) for key, tensor in state.items()
                 if key.endswith("token_embedding.weight"))
    layers = {key.split("layers.")[1].split(".")[0] for key in state if "encoder.layers." in key}
    return width, len(layers)


def text_encoders_for(family: str, encoders: dict, configs: dict, dtype: torch.dtype) -> list:
    """The family's text encoders in order, built strictly from `encoders` ({kind: state dict}); None for an
    optional one that is absent. A required one that is absent is refused naming the flag to give it."""
    from .text_encoders import build_text_encoder_from_weights

    kinds = TEXT_KINDS[network_of(family)]
    optional = OPTIONAL_TEXT_KINDS.get(network_of(family), ())
    missing = [kind for kind in kinds if kind not in encoders and kind not in optional]
    if missing:
        raise DiffdiffError(f"{family} needs the text encoder(s) {', '.join(missing)}, which the checkpoint "
                            "does not hold; give each file with --text-encoder (text_encoders=[...])")
    return [build_text_encoder_from_weights(kind, encoders[kind], dtype, config=configs.get(f"text_{kind}"))
            if kind in encoders else None for kind in kinds]


def flow_vae(state: dict, vae_path, family: str, configs: dict, allow_pickle: bool, dtype: torch.dtype):
    """The VAE: the separate `vae_path` when given, else the checkpoint's own; its config from the header,
    else the family's shipped one."""
    from .loading import load_separate_vae

    if vae_path:
        return load_separate_vae(vae_path, vae_config_folder(family), allow_pickle, dtype)
    weights = {key: value for key, value in state.items() if key.startswith(VAE_PREFIXES)}
    if not weights:
        raise DiffdiffError(f"the checkpoint holds no VAE; give the {family} VAE file with --vae")
    if "vae" not in configs:
        return build_vae(weights, vae_config_folder(family), dtype)
    with tempfile.TemporaryDirectory(prefix="diffdiff-vae-") as temp:
        return build_vae(weights, write_config_folder({"vae": configs["vae"]}, Path(temp)), dtype)


def load_flow_file(state: dict, metadata: dict, family: str, *, text_encoders, vae, precision,
                   allow_pickle: bool) -> dict:
    """{"family", "network", "vae", "text_encoders", "tokenizers"} of a single file of the flow `family`
    (as `resolve_flow_family` gives it)."""
    from .flow_layout import infer_transformer_config, strip_network_prefix
    from .fp8 import upcast_fp8
    from .text_encoders import split_text_encoders
    from .tokenizer import FAMILY_TOKENIZERS, load_tokenizer

    configs = configs_from_metadata(metadata) or {}
    state = upcast_fp8(state, precision.network)
    weights = strip_network_prefix(state)
    config = configs.get("transformer") or infer_transformer_config(family, weights)
    network = build_transformer(family, weights, config, precision.network)
    encoders = split_text_encoders(state)
    for kind, encoder_state in read_text_encoder_files(text_encoders, allow_pickle).items():
        encoders[kind] = upcast_fp8(encoder_state, precision.network)
    return {
        "family": family, "network": network,
        "text_encoders": text_encoders_for(family, encoders, configs, precision.network),
        "vae": flow_vae(state, vae, family, configs, allow_pickle, precision.vae),
        "tokenizers": [load_tokenizer(kind) for kind in FAMILY_TOKENIZERS[family]],
    }


def flow_family_of_folder(folder: Path) -> str | None:
    """The flow family of a diffusers folder from its pipeline class (Flux dev or schnell by whether the
    transformer embeds guidance), or None for the UNet families."""
    index = json.loads((folder / "model_index.json").read_text())
    name = str(index.get("_class_name", ""))
    matches = [family for family in FLOW_FAMILIES if FAMILY_TABLE[family].pipeline == name]
    if not matches:
        return None
    if name == "FluxPipeline":
        config = json.loads((folder / "transformer" / "config.json").read_text())
        return "flux" if config.get("guidance_embeds") else "flux-schnell"
    return matches[0]


def load_flow_folder(folder: Path, family: str, *, precision, allow_pickle: bool) -> dict:
    """{"family", "network", "vae", "text_encoders", "tokenizers"} of a diffusers folder of the flow
    `family` (as `resolve_flow_family` gives it); its own tokenizers when it has them, else the shipped
    ones."""
    import transformers
    from diffusers import AutoencoderKL

    from .flow_layout import transformer_class
    from .folder import from_pretrained_component
    from .text_encoders import TEXT_MODEL_CLASSES
    from .tokenizer import FAMILY_TOKENIZERS, load_tokenizer

    kinds = TEXT_KINDS[network_of(family)]
    optional = OPTIONAL_TEXT_KINDS.get(network_of(family), ())
    components = FAMILY_TABLE[family].text_encoders
    encoders = [from_pretrained_component(getattr(transformers, TEXT_MODEL_CLASSES[kind]), folder, component,
                                          precision.network, allow_pickle)
                if (folder / component).is_dir() or kind not in optional else None
                for kind, component in zip(kinds, components)]
    tokenizers = []
    for index, kind in enumerate(FAMILY_TOKENIZERS[family]):
        name = "tokenizer" if index == 0 else f"tokenizer_{index + 1}"
        if (folder / name).is_dir():
            tokenizers.append(transformers.AutoTokenizer.from_pretrained(str(folder / name),
                                                                         local_files_only=True))
        else:
            tokenizers.append(load_tokenizer(kind))
    return {
        "family": family,
        "network": from_pretrained_component(transformer_class(family), folder, "transformer",
                                             precision.network, allow_pickle),
        "vae": from_pretrained_component(AutoencoderKL, folder, "vae", precision.vae, allow_pickle),
        "text_encoders": encoders, "tokenizers": tokenizers,
    }
