"""Load the modules of a diffusers folder (model_index.json layout) offline with `from_pretrained`."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DiffdiffError
from .families import TEXT_COMPONENTS, base_family

PICKLED_WEIGHT_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth")


def check_weights_safe(folder: Path, component: str, allow_pickle: bool) -> bool:
    """True when the component has safetensors weights; refuse pickled-only weights without the opt-in."""
    sub = folder / component
    if not sub.is_dir():
        raise DiffdiffError(f"diffusers folder {folder} has no {component}/ subfolder")
    if any(sub.glob("*.safetensors")):
        return True
    if any(p.suffix in PICKLED_WEIGHT_SUFFIXES for p in sub.iterdir()):
        if not allow_pickle:
            raise DiffdiffError(
                f"{sub} holds only pickled weights, which can run code when loaded;"
                " pass allow_pickle=True (--allow-pickle) if you trust its source"
            )
        return False
    raise DiffdiffError(f"no weights found in {sub}")


def from_pretrained_component(model_class, folder: Path, component: str, dtype: torch.dtype,
                              allow_pickle: bool):
    """`model_class` from the folder's `component/` subfolder in `dtype`, offline; one-line errors."""
    safe = check_weights_safe(folder, component, allow_pickle)
    try:
        model = model_class.from_pretrained(
            str(folder), subfolder=component, local_files_only=True, use_safetensors=safe, torch_dtype=dtype
        )
    except PermissionError as error:
        where = error.filename or folder / component
        raise DiffdiffError(f"cannot read {where}: permission denied") from None
    except (OSError, ValueError, RuntimeError) as error:
        reason = " ".join(str(error).split())[:300]
        raise DiffdiffError(f"cannot load {component} from {folder}: {reason}") from None
    return model.to(dtype).eval()


def load_folder_modules(folder: Path, family: str, dtype: torch.dtype, vae_dtype: torch.dtype,
                        allow_pickle: bool = False) -> dict:
    """{"unet", "vae", "text_encoders", "tokenizers"} from a diffusers folder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    encoder_classes = {"text_encoder": CLIPTextModel, "text_encoder_2": CLIPTextModelWithProjection}
    if base_family(family) != "sdxl":
        encoder_classes["text_encoder_2"] = CLIPTextModel
    components = TEXT_COMPONENTS[family]
    return {
        "unet": from_pretrained_component(UNet2DConditionModel, folder, "unet", dtype, allow_pickle),
        "vae": from_pretrained_component(AutoencoderKL, folder, "vae", vae_dtype, allow_pickle),
        "text_encoders": [
            from_pretrained_component(encoder_classes[name], folder, name, dtype, allow_pickle)
            for name in components
        ],
        "tokenizers": load_folder_tokenizers(folder, family),
    }


def load_folder_tokenizers(folder: Path, family: str) -> list:
    """The folder's tokenizer/ (and tokenizer_2/), else the shipped CLIP tokenizer of the family."""
    from transformers import CLIPTokenizer

    from .tokenizer import FAMILY_TOKENIZERS, load_tokenizer

    tokenizers = []
    for index, kind in enumerate(FAMILY_TOKENIZERS[family]):
        name = "tokenizer" if index == 0 else f"tokenizer_{index + 1}"
        if (folder / name / "vocab.json").is_file():
            tokenizer = CLIPTokenizer.from_pretrained(str(folder), subfolder=name, local_files_only=True)
            tokenizers.append(tokenizer)
        else:
            tokenizers.append(load_tokenizer(kind))
    return tokenizers


def load_vae_folder(path: Path, dtype: torch.dtype, allow_pickle: bool = False):
    """An AutoencoderKL from a diffusers VAE folder (config.json + weights) or a model folder's vae/."""
    from diffusers import AutoencoderKL

    if (path / "vae" / "config.json").is_file():
        return from_pretrained_component(AutoencoderKL, path, "vae", dtype, allow_pickle)
    if (path / "config.json").is_file():
        return from_pretrained_component(AutoencoderKL, path.parent, path.name, dtype, allow_pickle)
    raise DiffdiffError(f"VAE folder {path} has neither config.json nor vae/config.json")
