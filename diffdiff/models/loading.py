"""`load_model(source, ...)`: a single checkpoint file, a diffusers folder or a cached hub id → LoadedModel.

Everything is offline: single files use configs from their header or shipped in the package, folders use
`from_pretrained(local_files_only=True)`, hub ids are looked up in the huggingface_hub cache only.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from ..errors import DiffdiffError
from .device import resolve_device
from .families import FAMILY_TABLE, TEXT_COMPONENTS, check_prediction, family_of_folder, resolve_family
from .flow_layout import detect_flow_family
from .flow_loading import flow_family_of_folder, load_flow_file, load_flow_folder, resolve_flow_family
from .folder import load_folder_modules, load_vae_folder
from .hub import cached_snapshot, is_local_path
from .loaded import LoadedModel
from .precision import Precision, choose_precision, device_capabilities
from .single_file import (
    FAMILY_METADATA_KEY,
    ConfigFolder,
    build_text_encoder,
    build_unet,
    build_vae,
    check_text_encoder,
    configs_from_metadata,
    normalise_keys,
    read_checkpoint,
    text_encoder_config,
    write_config_folder,
)

# The checkpoint keys of the UNet and the VAE; the rest (the text encoders) is kept for their lazy load.
NETWORK_PREFIXES = ("model.diffusion_model.", "first_stage_model.")


def load_model(source, *, family=None, prediction=None, vae=None, text_encoders=None, device="auto",
               dtype=None, allow_pickle=False, compile=False) -> LoadedModel:
    """Load a model of any family (SD1.x, SD2.x eps or v, SDXL, SD3/3.5, Flux.1 dev/schnell/Fill, Z-Image)
    from a file, a diffusers folder or a cached hub id.

    `family` / `prediction` ("eps" | "v") override detection (a family must agree with the checkpoint's
    text encoders or network); `vae` is an optional separate VAE file (.safetensors, ldm or diffusers
    layout) or diffusers VAE folder; `text_encoders` the files of text encoders a flow-family checkpoint
    does not hold (each recognised by its tensors: CLIP-L, CLIP-G, T5-XXL, Qwen3); `device`
    "auto|cpu|cuda|mps"; `dtype` fp16|bf16|fp32 overrides the precision the device's capabilities and the
    family choose (`precision.choose_precision`); `compile` runs the network through torch.compile
    (`LoadedModel.compile`).
    """
    check_prediction(prediction)
    torch_device = resolve_device(device)
    capabilities = device_capabilities(torch_device)
    choose_precision(capabilities, dtype)  # an unknown dtype is refused before anything is read

    def precision_for(family: str) -> Precision:
        return choose_precision(capabilities, dtype, FAMILY_TABLE[family].half_precisions)

    source_text = str(source)
    path = Path(source_text).expanduser()
    loading = dict(family=family, prediction=prediction, vae=vae, text_encoders=list(text_encoders or ()),
                   device=torch_device, precision_for=precision_for, allow_pickle=allow_pickle)
    with quiet_libraries():
        model = _load(source_text, path, loading)
    if compile:
        model.compile()
    return model


def _load(source_text, path, loading: dict) -> LoadedModel:
    """A folder, a file, or else a hub id in the offline cache."""
    if path.is_dir():
        return _load_folder(path, path.name, **loading)
    if path.exists() or is_local_path(source_text):
        return _load_file(path, **loading)
    return _load_folder(cached_snapshot(source_text), source_text, **loading)


@contextmanager
def quiet_libraries():
    """Silence diffusers' / transformers' info chatter and progress bars while loading; errors still show.

    (diffusers warns on every `.to(dtype)` of a model whose fp32 module list is empty, and suggests
    installing accelerate; transformers draws a "Loading weights" bar per text encoder.)
    """
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    levels = diffusers_logging.get_verbosity(), transformers_logging.get_verbosity()
    bar = transformers_logging.is_progress_bar_enabled()
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(levels[0])
        transformers_logging.set_verbosity(levels[1])
        if bar:
            transformers_logging.enable_progress_bar()


def _load_file(path, family, prediction, vae, text_encoders, device, precision_for,
               allow_pickle) -> LoadedModel:
    state_dict, metadata = read_checkpoint(path, allow_pickle=allow_pickle)
    family, flow, state_dict = _file_family(state_dict, metadata, family, prediction)
    precision = precision_for(family)
    if flow:
        modules = load_flow_file(state_dict, metadata, family, text_encoders=text_encoders, vae=vae,
                                 precision=precision, allow_pickle=allow_pickle)
        return LoadedModel(**modules, device=device, precision=precision, name=Path(path).stem,
                           hash_file=path)
    _refuse_text_encoders(text_encoders)
    components = TEXT_COMPONENTS[family]
    with ConfigFolder(metadata, family) as configs:
        unet = build_unet(state_dict, configs, precision.network)
        encoder_configs = [text_encoder_config(configs, component) for component in components]
        for config, component in zip(encoder_configs, components):  # built on first use, checked now
            check_text_encoder(state_dict, config, family, component)
        vae_model = load_separate_vae(vae, configs, allow_pickle, precision.vae) if vae else None
        if vae_model is None:
            vae_model = build_vae(state_dict, configs, precision.vae)
    text_weights = {key: value for key, value in state_dict.items() if not key.startswith(NETWORK_PREFIXES)}
    del state_dict

    def load_text_encoders():
        return [build_text_encoder(text_weights, config, family, component, precision.network)
                for config, component in zip(encoder_configs, components)]

    from .tokenizer import FAMILY_TOKENIZERS, load_tokenizer

    tokenizers = [load_tokenizer(kind) for kind in FAMILY_TOKENIZERS[family]]
    return LoadedModel(
        family=family, network=unet, vae=vae_model, text_encoders=load_text_encoders,
        tokenizers=tokenizers, device=device, precision=precision, name=Path(path).stem, hash_file=path,
    )


def load_separate_vae(vae_path, config_folder: Path, allow_pickle: bool, dtype: torch.dtype):
    """A separate VAE in `dtype`: a diffusers folder, or a file built with its own header config (tiny
    files) or else with the model's VAE config (`config_folder`)."""
    path = Path(vae_path).expanduser()
    if not path.exists():
        raise DiffdiffError(f"VAE not found: {path}")
    if path.is_dir():
        return load_vae_folder(path, dtype, allow_pickle)
    state_dict, metadata = read_checkpoint(path, allow_pickle=allow_pickle)
    own_config = (configs_from_metadata(metadata) or {}).get("vae")
    if own_config is None:
        return build_vae(state_dict, config_folder, dtype)
    with tempfile.TemporaryDirectory(prefix="diffdiff-vae-") as temp:
        return build_vae(state_dict, write_config_folder({"vae": own_config}, Path(temp)), dtype)


def hash_file_of_folder(folder: Path) -> Path | None:
    """The denoising network's (first) weights file stands for a diffusers folder in `short_hash`: unet/,
    or transformer/ for the flow families."""
    for component in (folder / "unet", folder / "transformer"):
        files = sorted(component.glob("*.safetensors")) or sorted(component.glob("*.bin"))
        if files:
            return files[0]
    return None


def family_of(source, *, family=None, prediction=None, allow_pickle=False) -> str:
    """The family `load_model(source, ...)` gives, read from tensor names and shapes (a .safetensors file is
    memory-mapped, no tensor is read but the one of SD2's v-prediction test) or a folder's configs; nothing
    is built."""
    source_text = str(source)
    path = Path(source_text).expanduser()
    if not path.exists() and not is_local_path(source_text):
        path = cached_snapshot(source_text)
    if path.is_dir():
        return _folder_family(path, family, prediction)[0]
    state_dict, metadata = read_checkpoint(path, allow_pickle=allow_pickle)
    return _file_family(state_dict, metadata, family, prediction)[0]


def _file_family(state_dict: dict, metadata: dict, family, prediction) -> tuple[str, bool, dict]:
    """(family, whether it is a flow family, the state dict as its loader takes it: as read for a flow
    family, key-normalised for the UNet families) of a checkpoint, honouring the overrides."""
    shapes = {key: tuple(tensor.shape) for key, tensor in state_dict.items()}
    flow = detect_flow_family(shapes.keys(), shapes.__getitem__)
    if flow is not None:
        return resolve_flow_family(flow, family, prediction), True, state_dict
    state_dict = normalise_keys(state_dict)
    family = resolve_family(state_dict.keys(), state_dict.__getitem__, family=family, prediction=prediction,
                            header_family=metadata.get(FAMILY_METADATA_KEY))
    return family, False, state_dict


def _folder_family(folder: Path, family, prediction) -> tuple[str, bool]:
    """(family, whether it is a flow family) of a diffusers folder, honouring the overrides."""
    if not (folder / "model_index.json").is_file():
        raise DiffdiffError(f"{folder} is not a diffusers folder (no model_index.json)")
    flow = flow_family_of_folder(folder)
    if flow is not None:
        return resolve_flow_family(flow, family, prediction), True
    return family_of_folder(folder, family=family, prediction=prediction), False


def _refuse_text_encoders(text_encoders) -> None:
    if text_encoders:
        raise DiffdiffError("separate text-encoder files (--text-encoder) are for the SD3, Flux and Z-Image "
                            "families; SD1/SD2/SDXL checkpoints hold their own")


def _load_folder(folder, name, family, prediction, vae, text_encoders, device, precision_for,
                 allow_pickle) -> LoadedModel:
    family, flow = _folder_family(folder, family, prediction)
    _refuse_text_encoders(text_encoders)
    precision = precision_for(family)
    if flow:
        modules = load_flow_folder(folder, family, precision=precision, allow_pickle=allow_pickle)
        if vae:
            modules["vae"] = load_separate_vae(vae, folder, allow_pickle, precision.vae)
        return LoadedModel(**modules, device=device, precision=precision, name=name,
                           hash_file=hash_file_of_folder(folder))
    modules = load_folder_modules(folder, family, precision.network, precision.vae, allow_pickle)
    vae_model = load_separate_vae(vae, folder, allow_pickle, precision.vae) if vae else modules["vae"]
    return LoadedModel(
        family=family, network=modules["unet"], vae=vae_model,
        text_encoders=modules["text_encoders"], tokenizers=modules["tokenizers"], device=device,
        precision=precision, name=name, hash_file=hash_file_of_folder(folder),
    )
