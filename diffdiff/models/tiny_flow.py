"""Tiny random models of the flow families (SD3, Flux dev/schnell/Fill, Z-Image), real classes, for tests.

Three forms, each laid out as users have the real models:
- a diffusers folder (`model_index.json` naming the family's pipeline, transformer/, vae/, text_encoder*/,
  tokenizer*/ with the shipped tokenizers);
- a whole-model single file in ComfyUI's layout: the transformer in its original layout under
  `model.diffusion_model.`, the text encoders under
  `text_encoders.<clip_l|clip_g|t5xxl|qwen3_4b>.transformer.`, the VAE in the ldm layout under
  `first_stage_model.`;
- parts (`write_tiny_flow_parts`): a transformer-only file without prefix, one file per text encoder in
  its transformers layout, and a VAE file.
Only the VAE's config travels in a header (`diffdiff.configs`): the transformer's and the text encoders'
geometry is read back from their tensors, so the tiny sizes follow the real models' rules (CLIP head
width 64, Flux and Z-Image head widths from their norms, T5's heads from its relative-position table).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .families import FAMILY_TABLE
from .ldm_layout import vae_to_ldm
from .single_file import CONFIGS_METADATA_KEY, FAMILY_METADATA_KEY
from .tokenizer import FAMILY_TOKENIZERS, write_tokenizer_files

# Text encoders: (transformers class, config). CLIP widths are multiples of 64 (one 64-wide head each).
CLIP_L = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 1, "num_hidden_layers": 2,
          "projection_dim": 64, "hidden_act": "quick_gelu", "vocab_size": 49408,
          "max_position_embeddings": 77}
CLIP_G = {**CLIP_L, "hidden_act": "gelu", "num_hidden_layers": 3}
T5 = {"d_model": 128, "d_kv": 32, "d_ff": 64, "num_layers": 2, "num_heads": 4, "vocab_size": 32128,
      "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32, "is_encoder_decoder": False,
      "use_cache": False, "tie_word_embeddings": False}
QWEN3 = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 2,
         "num_key_value_heads": 1, "head_dim": 16, "vocab_size": 151936, "max_position_embeddings": 1024,
         "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": False}
TEXT_CONFIGS = {"clip-l": CLIP_L, "clip-g": CLIP_G, "t5": T5, "qwen3": QWEN3}
# ComfyUI's names for the text encoders inside a whole-model file, and the standalone files' key prefixes.
COMFY_TEXT_NAMES = {"clip-l": "clip_l", "clip-g": "clip_g", "t5": "t5xxl", "qwen3": "qwen3_4b"}
STANDALONE_PREFIXES = {"clip-l": "text_model.", "clip-g": "text_model.", "t5": "", "qwen3": "model."}

TRANSFORMERS = {
    "sd3": {"sample_size": 32, "patch_size": 2, "in_channels": 16, "num_layers": 2, "attention_head_dim": 64,
            "num_attention_heads": 1, "joint_attention_dim": 128, "caption_projection_dim": 64,
            "pooled_projection_dim": 128, "out_channels": 16, "pos_embed_max_size": 32},
    "flux": {"patch_size": 1, "in_channels": 64, "num_layers": 1, "num_single_layers": 1,
             "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": 128,
             "pooled_projection_dim": 64, "guidance_embeds": True, "axes_dims_rope": [4, 4, 8]},
    "z-image": {"all_patch_size": [2], "all_f_patch_size": [1], "in_channels": 16, "dim": 64, "n_layers": 2,
                "n_refiner_layers": 1, "n_heads": 2, "n_kv_heads": 2, "cap_feat_dim": 32,
                "axes_dims": [8, 12, 12]},
}
VAE = {"block_out_channels": [8, 16, 32, 32], "layers_per_block": 1, "norm_num_groups": 8}
SEED = 11


def transformer_config(family: str) -> dict:
    """The tiny transformer config of `family` (Flux variants differ in guidance and input channels)."""
    config = dict(TRANSFORMERS[FAMILY_TABLE[family].network])
    if family == "flux-schnell":
        config["guidance_embeds"] = False
    if family == "flux-fill":
        config.update(in_channels=384, out_channels=64)
    return config


def vae_config(family: str) -> dict:
    from .flow_loading import vae_config_folder

    config = json.loads((vae_config_folder(family) / "vae" / "config.json").read_text())
    config.update(VAE)
    return config


def _text_encoder(kind: str):
    import transformers

    from .text_encoders import TEXT_MODEL_CLASSES

    model_class = getattr(transformers, TEXT_MODEL_CLASSES[kind])
    return model_class(model_class.config_class(**TEXT_CONFIGS[kind]))


def build_tiny_flow_components(family: str) -> dict:
    """{"transformer", "vae", "text_encoders": {kind: module}} of `family`, seeded (same weights each
    call)."""
    from diffusers import AutoencoderKL

    from .flow_layout import transformer_class
    from .flow_loading import TEXT_KINDS

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        transformer = transformer_class(family).from_config(transformer_config(family)).eval()
        vae = AutoencoderKL.from_config(vae_config(family)).eval()
        encoders = {kind: _text_encoder(kind).eval() for kind in TEXT_KINDS[FAMILY_TABLE[family].network]}
    return {"transformer": transformer, "vae": vae, "text_encoders": encoders}


def _contiguous(state: dict) -> dict:
    return {key: tensor.detach().contiguous() for key, tensor in state.items()}


def text_encoder_file_state(kind: str, module) -> dict:
    """A text encoder's weights as its standalone file has them (transformers layout, ComfyUI's prefixes;
    T5's input embedding once, as `shared.weight`)."""
    prefix = STANDALONE_PREFIXES[kind]
    state = {}
    for key, tensor in module.state_dict().items():
        if key.endswith("position_ids") or key == "encoder.embed_tokens.weight":
            continue
        if key == "text_projection.weight":  # CLIP's projection sits beside `text_model.`
            state[key] = tensor
            continue
        state[key if not prefix or key.startswith(prefix) else prefix + key] = tensor
    return state


def _original_transformer(family: str, transformer) -> dict:
    from .flow_layout import transformer_to_original

    return transformer_to_original(family, transformer.state_dict(), dict(transformer.config))


def _vae_metadata(family: str, vae) -> dict:
    config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
    return {FAMILY_METADATA_KEY: family, CONFIGS_METADATA_KEY: json.dumps({"vae": config}, default=list),
            "format": "pt"}


def tiny_flow_file_state(family: str) -> tuple[dict, dict]:
    """(state dict, header metadata) of the whole-model single file of `family` in ComfyUI's layout."""
    parts = build_tiny_flow_components(family)
    network = _original_transformer(family, parts["transformer"])
    state = {"model.diffusion_model." + k: v for k, v in network.items()}
    for kind, module in parts["text_encoders"].items():
        prefix = f"text_encoders.{COMFY_TEXT_NAMES[kind]}.transformer."
        state.update({prefix + k: v for k, v in text_encoder_file_state(kind, module).items()})
    state.update({"first_stage_model." + k: v for k, v in vae_to_ldm(parts["vae"].state_dict()).items()})
    return _contiguous(state), _vae_metadata(family, parts["vae"])


def write_tiny_flow_parts(folder: str | Path, family: str) -> dict:
    """Write `family`'s tiny model as separate files in `folder`: {"transformer": path, "vae": path,
    "text_encoders": [paths]} (the transformer without prefix, each encoder in its own layout)."""
    from .tiny import write_checkpoint

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parts = build_tiny_flow_components(family)
    paths = {"transformer": write_checkpoint(folder / f"{family}-transformer.safetensors",
                                             _contiguous(_original_transformer(family, parts["transformer"])),
                                             {"format": "pt"}),
             "vae": write_checkpoint(folder / f"{family}-vae.safetensors",
                                     _contiguous(vae_to_ldm(parts["vae"].state_dict())),
                                     _vae_metadata(family, parts["vae"])),
             "text_encoders": []}
    for kind, module in parts["text_encoders"].items():
        path = folder / f"{COMFY_TEXT_NAMES[kind]}.safetensors"
        state = _contiguous(text_encoder_file_state(kind, module))
        paths["text_encoders"].append(write_checkpoint(path, state, {"format": "pt"}))
    return paths


def write_tiny_flow_folder(folder: Path, family: str) -> None:
    """The diffusers folder of `family`'s tiny model (written into an existing, empty `folder`)."""
    table = FAMILY_TABLE[family]
    parts = build_tiny_flow_components(family)
    parts["transformer"].save_pretrained(str(folder / "transformer"), safe_serialization=True)
    parts["vae"].save_pretrained(str(folder / "vae"), safe_serialization=True)
    index = {"_class_name": table.pipeline, "_diffusers_version": "0.42.1",
             "transformer": ["diffusers", type(parts["transformer"]).__name__],
             "vae": ["diffusers", "AutoencoderKL"]}
    for component, module in zip(table.text_encoders, parts["text_encoders"].values()):
        module.save_pretrained(str(folder / component), safe_serialization=True)
        index[component] = ["transformers", type(module).__name__]
    for position, kind in enumerate(FAMILY_TOKENIZERS[family]):
        name = "tokenizer" if position == 0 else f"tokenizer_{position + 1}"
        write_tokenizer_files(folder / name, kind)
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
