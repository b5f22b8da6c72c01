"""Read one A1111/ComfyUI-layout checkpoint file and build the diffusers modules from it, offline.

The file is read once (safetensors; pickled formats only on opt-in, through `pickled.read_pickled`).
Component configs come from the header metadata `diffdiff.configs` (JSON {component: config}) when
present, else from the family's shipped folder `diffdiff/models/configs/<family>/`; the UNet's geometry is
inferred from its tensors (`unet_geometry`), that config filling in the rest. Weights are converted
with diffusers' ldm → diffusers converters (`diffusers.loaders.single_file_utils`) and loaded strictly,
so a checkpoint that lacks weights of a component is reported instead of silently left random.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from ..errors import DiffdiffError
from .families import base_family

PICKLE_SUFFIXES = (".ckpt", ".pt", ".bin", ".pth")
SHIPPED_CONFIGS = Path(__file__).resolve().parent / "configs"
CONFIGS_METADATA_KEY = "diffdiff.configs"
FAMILY_METADATA_KEY = "diffdiff.family"
SD1_CLIP_PREFIX = "cond_stage_model.transformer."
OPEN_CLIP_PREFIXES = {"sd2": "cond_stage_model.model.", "sdxl": "conditioner.embedders.1.model."}
SD2_SGM_PREFIX = "conditioner.embedders.0.model."


def read_checkpoint(path: Path, *, allow_pickle: bool = False) -> tuple[dict, dict]:
    """(state dict, header metadata) of a checkpoint; DiffdiffError for missing, corrupt or pickled files."""
    path = Path(path)
    if not path.is_file():
        raise DiffdiffError(f"checkpoint not found: {path}")
    _check_readable(path)
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return _read_pickled(path, allow_pickle), {}
    if suffix != ".safetensors":
        raise DiffdiffError(
            f"unsupported checkpoint type {suffix or '(none)'!r} for {path.name}; use .safetensors"
            f" (or {', '.join(PICKLE_SUFFIXES)} with allow_pickle)"
        )
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # safetensors raises its own error types and OSError for bad files
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DiffdiffError(f"cannot read {path.name} (corrupt or truncated?): {reason}") from None
    return state_dict, metadata


def _check_readable(path: Path) -> None:
    """Fail with the true reason when the file cannot be opened (safetensors says 'No such file' instead)."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except PermissionError:
        raise DiffdiffError(f"cannot read {path}: permission denied") from None
    except OSError as error:
        reason = (error.strerror or str(error) or type(error).__name__).lower()
        raise DiffdiffError(f"cannot read {path}: {reason}") from None


def _read_pickled(path: Path, allow_pickle: bool) -> dict:
    if not allow_pickle:
        raise DiffdiffError(
            f"{path.name} is a pickled checkpoint, which can run code when loaded; convert it to .safetensors"
            " or pass allow_pickle=True (--allow-pickle) if you trust its source"
        )
    from .pickled import read_pickled

    return read_pickled(path)


def normalise_keys(state_dict: dict) -> dict:
    """Older layouts → the ones diffusers' converters expect (SD1 CLIP without `text_model.`, SD2 in sgm)."""
    keys = list(state_dict)
    if any(k.startswith(SD1_CLIP_PREFIX) and not k.startswith(SD1_CLIP_PREFIX + "text_model.") for k in keys):
        state_dict = {
            (SD1_CLIP_PREFIX + "text_model." + k[len(SD1_CLIP_PREFIX):])
            if k.startswith(SD1_CLIP_PREFIX) and not k.startswith(SD1_CLIP_PREFIX + "text_model.") else k: v
            for k, v in state_dict.items()
        }
    if not any(k.startswith("conditioner.embedders.1.") for k in keys) and any(
        k.startswith(SD2_SGM_PREFIX) for k in keys
    ):
        state_dict = {
            (OPEN_CLIP_PREFIXES["sd2"] + k[len(SD2_SGM_PREFIX):]) if k.startswith(SD2_SGM_PREFIX) else k: v
            for k, v in state_dict.items()
        }
    return state_dict


def configs_from_metadata(metadata: dict) -> dict | None:
    """{component: config dict} from the `diffdiff.configs` header entry, or None."""
    text = metadata.get(CONFIGS_METADATA_KEY)
    if not text:
        return None
    try:
        configs = json.loads(text)
    except ValueError:
        raise DiffdiffError(f"checkpoint metadata {CONFIGS_METADATA_KEY!r} is not valid JSON") from None
    if not isinstance(configs, dict):
        raise DiffdiffError(f"checkpoint metadata {CONFIGS_METADATA_KEY!r} must be a JSON object")
    return configs


def write_config_folder(configs: dict, folder: Path) -> Path:
    """Lay out {component: config} as a diffusers repo (`<component>/config.json`) in `folder`."""
    for component, config in configs.items():
        name = "scheduler_config.json" if component == "scheduler" else "config.json"
        target = Path(folder) / component
        target.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(json.dumps(config, indent=2))
    return Path(folder)


def shipped_config_folder(family: str) -> Path:
    folder = SHIPPED_CONFIGS / family
    if not (folder / "unet" / "config.json").is_file():
        raise DiffdiffError(f"no shipped configs for family {family!r} (looked in {folder})")
    return folder


class ConfigFolder:
    """Context manager: the config folder for a checkpoint (temp folder from metadata, or the shipped one);
    a header without a `unet` entry gets the family's shipped UNet config (the defaults of `build_unet`)."""

    def __init__(self, metadata: dict, family: str):
        self.configs = configs_from_metadata(metadata)
        self.family = family
        self._temp = None

    def __enter__(self) -> Path:
        if self.configs is None:
            return shipped_config_folder(self.family)
        configs = dict(self.configs)
        shipped_unet = SHIPPED_CONFIGS / self.family / "unet" / "config.json"
        if "unet" not in configs and shipped_unet.is_file():
            # the UNet's geometry comes from its tensors; the shipped config only gives the defaults
            configs["unet"] = json.loads(shipped_unet.read_text())
        self._temp = tempfile.TemporaryDirectory(prefix="diffdiff-configs-")
        return write_config_folder(configs, Path(self._temp.name))

    def __exit__(self, *exc):
        if self._temp is not None:
            self._temp.cleanup()


def _check_weights(model, weights: dict, component: str) -> None:
    """Strict loading: every weight of `model` (but position ids) present, with the config's shape."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights and not k.endswith("position_ids")]
    if missing:
        raise DiffdiffError(
            f"checkpoint lacks {len(missing)} {component} weights (e.g. {missing[0]}); wrong family?"
        )
    mismatched = [k for k in expected if k in weights and weights[k].shape != expected[k].shape]
    if mismatched:
        key = mismatched[0]
        raise DiffdiffError(
            f"{component} weight {key} has shape {tuple(weights[key].shape)}, config expects"
            f" {tuple(expected[key].shape)}; wrong family or config"
        )


def _build_strict(factory, convert, component: str, dtype: torch.dtype):
    """`factory()` holding the weights `convert(model)` gives, cast to `dtype` (floating tensors), checked by
    `_check_weights`.

    The checks run on a meta-device skeleton, so a file that does not fit fails before a full-size network
    is allocated. The weights are then assigned, not copied: each tensor is cast once (a view of the
    memory-mapped file when its dtype already fits) and no random initialisation runs. When the weights
    cover every parameter and buffer the skeleton takes them; otherwise (non-persistent buffers such as
    CLIP's position ids, which the constructor computes) the network is constructed with its weight
    initialisation switched off and then takes them.
    """
    skeleton, weights = _checked(factory, convert, component)
    expected = skeleton.state_dict()
    selected = {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items() if k in expected}
    tensors = [name for name, _ in skeleton.named_parameters()]
    tensors += [name for name, _ in skeleton.named_buffers()]
    model = skeleton
    if not set(tensors) <= set(selected):
        with _initialisation_off():
            model = factory()
    model.load_state_dict(selected, strict=True, assign=True)
    return model.eval()


def _checked(factory, convert, component: str):
    """(meta-device skeleton of `factory()`, the weights `convert(skeleton)` gives), checked by
    `_check_weights`; nothing is allocated."""
    with torch.device("meta"):
        skeleton = factory()
    weights = convert(skeleton)
    _check_weights(skeleton, weights, component)
    return skeleton, weights


def _initialisation_off():
    """A context in which networks are constructed without initialising their weights (transformers' own
    switch, which also covers torch.nn.init for diffusers' modules)."""
    from transformers.initialization import no_init_weights

    return no_init_weights()


def _convert(converter, component: str, *args):
    """Run one of diffusers' ldm converters; its KeyError / IndexError on a missing block becomes ours."""
    try:
        return converter(*args)
    except (KeyError, IndexError, ValueError) as error:
        reason = " ".join(str(error).split())[:120]
        raise DiffdiffError(
            f"checkpoint lacks {component} weights its config expects ({type(error).__name__}: {reason});"
            " wrong family or an incomplete file?"
        ) from None


def build_unet(state_dict: dict, config_folder: Path, dtype: torch.dtype):
    """The UNet of an ldm-layout checkpoint, its geometry inferred from the tensors (`unet_geometry`) with
    the folder's UNet config (header or shipped) as the defaults for what tensors cannot tell; loaded
    strictly, so a tensor missing from the inferred geometry is reported by name."""
    from diffusers import UNet2DConditionModel

    from .unet_geometry import infer_unet_config

    defaults = UNet2DConditionModel.load_config(str(config_folder), subfolder="unet", local_files_only=True)
    config = infer_unet_config(state_dict, defaults)
    return _build_strict(
        lambda: UNet2DConditionModel.from_config(config),
        lambda skeleton: _convert_unet(state_dict, config, skeleton),
        "unet", dtype,
    )


def _convert_unet(state_dict: dict, config: dict, skeleton) -> dict:
    """ldm → diffusers UNet weights: diffusers' converter, which assumes one resnet count for every level;
    for per-level counts (pruned checkpoints) the inverse of our own diffusers → ldm key map."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    from .ldm_layout import unet_from_ldm

    if isinstance(config["layers_per_block"], int):
        return _convert(convert_ldm_unet_checkpoint, "unet", state_dict, config)
    return unet_from_ldm(state_dict, skeleton.state_dict().keys())


def build_vae(state_dict: dict, config_folder: Path, dtype: torch.dtype):
    """The VAE from ldm-layout keys (`first_stage_model.*`, `vae.*` or bare) or diffusers-layout keys."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    config = AutoencoderKL.load_config(str(config_folder), subfolder="vae", local_files_only=True)
    if any(k.startswith("encoder.down_blocks.") for k in state_dict):
        weights = state_dict  # already diffusers layout
    else:
        weights = _convert(convert_ldm_vae_checkpoint, "vae", state_dict, config)
    return _build_strict(lambda: AutoencoderKL.from_config(config), lambda _: weights, "vae", dtype)


def _strip_wrapper(model, weights: dict) -> dict:
    """transformers ≥ 5.6 flattened CLIPTextModel (no `text_model.` prefix); follow the model's own keys."""
    if hasattr(model, "text_model"):
        return weights
    return {k.removeprefix("text_model."): v for k, v in weights.items()}


def text_encoder_config(config_folder: Path, component: str):
    """The CLIPTextConfig of `component` (text_encoder, text_encoder_2) in a config folder."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig.from_pretrained(str(config_folder), subfolder=component, local_files_only=True)


def _text_encoder_parts(state_dict: dict, config, family: str, component: str):
    """(factory, convert) of CLIP-L (SD1, SDXL encoder 1), OpenCLIP-H (SD2) or OpenCLIP-bigG with projection
    (SDXL encoder 2), from its `text_encoder_config`, for `_build_strict` / `_checked`."""
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_open_clip_checkpoint
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    family = base_family(family)
    with_projection = family == "sdxl" and component == "text_encoder_2"
    model_class = CLIPTextModelWithProjection if with_projection else CLIPTextModel

    def convert(model):
        if family == "sd2" or with_projection:
            prefix = OPEN_CLIP_PREFIXES[family]
            weights = _convert(convert_open_clip_checkpoint, component, model, state_dict, prefix)
            if not with_projection:
                weights.pop("text_projection.weight", None)
        else:
            weights = _convert(convert_ldm_clip_checkpoint, component, state_dict)
        return _strip_wrapper(model, weights)

    return (lambda: model_class(config)), convert


def check_text_encoder(state_dict: dict, config, family: str, component: str) -> None:
    """Refuse a checkpoint whose text encoder `component` lacks weights, without building it."""
    _checked(*_text_encoder_parts(state_dict, config, family, component), component)


def build_text_encoder(state_dict: dict, config, family: str, component: str, dtype):
    """The text encoder `component` of the checkpoint, in `dtype`."""
    return _build_strict(*_text_encoder_parts(state_dict, config, family, component), component, dtype)
