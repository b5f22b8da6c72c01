"""Small random-weight models of each family, built with the real classes, for tests and demos.

`make_tiny_model(directory, family)` writes a diffusers folder (model_index.json, unet/, vae/, text_encoder/
[, text_encoder_2/], tokenizer/ [, tokenizer_2/], scheduler/; the flow families' come from `tiny_flow`);
with `single_file=True` it writes one A1111/ComfyUI-layout `.safetensors` instead, whose header metadata
carries `diffdiff.family` and
`diffdiff.configs` (JSON {component: config}) so a loader can rebuild the small networks.

The tiny configs are the family's shipped real configs with the sizes shrunk: the geometry stays (VAE
downscale 8 with 4 levels, 4 latent channels, the family's scaling factor, SDXL's two encoders with pooled
projection and size/crop conditioning, cross_attention_dim = the sum of the encoders' widths, v-prediction for
sd2-v). Attention sits only at the coarsest level so a 512x512 edit takes seconds on a CPU. Weights come from
fixed seeds: the same call writes the same bytes. `checkpoint_state` / `write_checkpoint` turn any diffusers
components into such a file (the demo model's trainer writes through them too).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from ..atomic import OVERWRITE_HINT, atomic_write, check_writable
from ..errors import DiffdiffError
from .families import FAMILIES, FLOW_FAMILIES
from .ldm_layout import diffusers_to_ldm
from .loading import quiet_libraries
from .single_file import CONFIGS_METADATA_KEY, FAMILY_METADATA_KEY
from .tokenizer import FAMILY_TOKENIZERS, write_tokenizer_files

CONFIG_ROOT = Path(__file__).resolve().parent / "configs"
# Hidden sizes of the tiny text encoders (their 49,408-token embeddings dominate the file size). SDXL's two
# must differ: diffusers' single-file loader tells the CLIP-L and OpenCLIP-G embedders apart by width.
TEXT_WIDTHS = {"text_encoder": 16, "text_encoder_2": 32}
SEEDS = {"unet": 1, "vae": 2, "text_encoder": 3, "text_encoder_2": 4}


def shipped_config(family: str, component: str) -> dict:
    """The family's real config of `component` (unet, vae, text_encoder, text_encoder_2, scheduler, index)."""
    folder = CONFIG_ROOT / family
    path = {
        "index": folder / "model_index.json",
        "scheduler": folder / "scheduler" / "scheduler_config.json",
    }.get(component, folder / component / "config.json")
    return json.loads(path.read_text())


def _text_config(family: str, component: str) -> dict:
    config = shipped_config(family, component)
    width = TEXT_WIDTHS[component]
    config.update(
        hidden_size=width,
        intermediate_size=2 * width,
        num_attention_heads=2,
        num_hidden_layers=2,
        projection_dim=width,
    )
    return config


def _unet_config(family: str, inpainting: bool = False) -> dict:
    config = shipped_config(family, "unet")
    if inpainting:  # the latent, a mask and a masked-image latent (diffdiff.pipeline.inpainting)
        config["in_channels"] = 2 * config["out_channels"] + 1
    encoders = ["text_encoder", "text_encoder_2"] if family == "sdxl" else ["text_encoder"]
    config.update(
        block_out_channels=[32, 64],
        layers_per_block=1,
        down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
        up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
        cross_attention_dim=sum(TEXT_WIDTHS[name] for name in encoders),
    )
    if family == "sd1":
        config["attention_head_dim"] = 8  # (diffusers' name; it is the number of heads) 64 channels / 8
    else:
        config["attention_head_dim"] = [2, 4]
    if family == "sdxl":
        config["transformer_layers_per_block"] = [1, 2]
        config["addition_time_embed_dim"] = 8
        # pooled text (the second encoder's projection) + 6 size/crop numbers, each embedded to 8
        config["projection_class_embeddings_input_dim"] = TEXT_WIDTHS["text_encoder_2"] + 6 * 8
    return config


def _vae_config(family: str) -> dict:
    config = shipped_config(family, "vae")
    config.update(block_out_channels=[8, 16, 32, 32], layers_per_block=1, norm_num_groups=8)
    return config


def tiny_configs(family: str, inpainting: bool = False) -> dict[str, dict]:
    """{component: config dict} of the tiny model of `family` (unet, vae, text_encoder[, text_encoder_2]);
    `inpainting`: a UNet with the inpainting input channels."""
    _check_family(family)
    configs = {"unet": _unet_config(family, inpainting), "vae": _vae_config(family)}
    for name in ("text_encoder", "text_encoder_2"):
        if (CONFIG_ROOT / family / name).is_dir():
            configs[name] = _text_config(family, name)
    return configs


def _check_family(family: str, inpainting: bool = False) -> None:
    if family not in FAMILIES:
        raise DiffdiffError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    if inpainting and family in FLOW_FAMILIES:
        raise DiffdiffError(f"--inpainting is for the UNet families; {family} has no inpainting variant "
                            "(Flux's is the flux-fill family)")


def build_tiny_components(family: str, inpainting: bool = False) -> dict[str, torch.nn.Module]:
    """The tiny networks of `family` with seeded random weights (same weights on every call)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    components: dict[str, torch.nn.Module] = {}
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG state as it was
        for name, config in tiny_configs(family, inpainting).items():
            torch.manual_seed(SEEDS[name])
            if name == "unet":
                model = UNet2DConditionModel.from_config(config)
            elif name == "vae":
                model = AutoencoderKL.from_config(config)
            else:
                text_class = CLIPTextModelWithProjection if name == "text_encoder_2" else CLIPTextModel
                model = text_class(CLIPTextConfig.from_dict(config))
            components[name] = model.eval()
    return components


def _write_folder(folder: Path, family: str, inpainting: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if family in FLOW_FAMILIES:
        from .tiny_flow import write_tiny_flow_folder

        with quiet_libraries():
            return write_tiny_flow_folder(folder, family)
    with quiet_libraries():  # no "Writing model shards" bar per text encoder
        for name, model in build_tiny_components(family, inpainting).items():
            model.save_pretrained(str(folder / name), safe_serialization=True)
    for index, kind in enumerate(FAMILY_TOKENIZERS[family]):
        write_tokenizer_files(folder / ("tokenizer" if index == 0 else f"tokenizer_{index + 1}"), kind)
    (folder / "scheduler").mkdir(exist_ok=True)
    scheduler = json.dumps(shipped_config(family, "scheduler"), indent=2) + "\n"
    (folder / "scheduler" / "scheduler_config.json").write_text(scheduler)
    (folder / "model_index.json").write_text(json.dumps(shipped_config(family, "index"), indent=2) + "\n")


def _make_readable(path: Path) -> None:
    """Temporary files and folders are private (0600/0700); give what we made the usual permissions."""
    umask = os.umask(0)
    os.umask(umask)
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    for item in paths:
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~umask)


def _check_creatable(folder: Path, shown: Path) -> None:
    """`folder` is, or can be made as, a writable folder (checked before any slow work)."""
    existing = next(p for p in [folder, *folder.parents, Path(".")] if p.exists())
    if existing == folder and not folder.is_dir():
        raise DiffdiffError(f"cannot write {shown}: {folder} exists and is not a folder")
    if not existing.is_dir():
        raise DiffdiffError(f"cannot write {shown}: {existing} is not a folder")
    if not os.access(existing, os.W_OK):
        raise DiffdiffError(f"cannot write {shown}: folder {existing} is not writable")


@contextmanager
def _writing(folder: Path | None, shown: Path):
    """Create `folder` (and missing parents) inside; on any failure or interrupt remove the folders this made
    (when empty: our own temporary files are gone by then) and name `shown` in OS errors, not a temp path."""
    created = None
    if folder is not None:
        created = next((p for p in reversed([folder, *folder.parents]) if not p.exists()), None)
    try:
        if folder is not None:
            _check_creatable(folder, shown)
            folder.mkdir(parents=True, exist_ok=True)
        yield
    except BaseException as error:
        if created is not None:
            for empty in [folder, *folder.parents]:
                try:
                    if empty.is_dir() and not any(empty.iterdir()):
                        empty.rmdir()
                except OSError:
                    break  # leave it; the original error matters more
                if empty == created:
                    break
        if isinstance(error, PermissionError):
            raise DiffdiffError(f"cannot write {shown}: permission denied") from None
        if isinstance(error, OSError):
            reason = (error.strerror or str(error) or type(error).__name__).lower()
            raise DiffdiffError(f"cannot write {shown}: {reason}") from None
        raise


def _replace_folder(target: Path, family: str, overwrite: bool, hint: str, inpainting: bool = False) -> Path:
    empty_folder = target.is_dir() and not any(target.iterdir())
    if target.exists() and not empty_folder:
        if not target.is_dir() or not (target / "model_index.json").exists():
            raise DiffdiffError(f"{target} exists and is not a diffusers model folder; not replacing it")
        if not overwrite:
            raise DiffdiffError(f"{target} exists; {hint}")
    with _writing(target.parent, target):
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            _write_folder(staging, family, inpainting)
            _make_readable(staging)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def single_file_state(family: str, inpainting: bool = False) -> tuple[dict[str, torch.Tensor], dict]:
    """The tiny model of `family` as (single-file state dict, safetensors header metadata)."""
    if family in FLOW_FAMILIES:
        from .tiny_flow import tiny_flow_file_state

        return tiny_flow_file_state(family)
    return checkpoint_state(build_tiny_components(family, inpainting), family)


def checkpoint_state(components: dict[str, torch.nn.Module], family: str,
                     dtype: torch.dtype | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Diffusers `components` of `family` as (ldm-layout state dict [in `dtype`], header metadata whose
    configs let the single-file loader rebuild them)."""
    configs = {}
    for name, model in components.items():
        if hasattr(model.config, "to_dict"):  # transformers
            configs[name] = model.config.to_dict()
        else:  # diffusers FrozenDict: drop the private bookkeeping entries
            configs[name] = {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
            configs[name]["_class_name"] = type(model).__name__
    state = diffusers_to_ldm({name: model.state_dict() for name, model in components.items()}, family)
    state = {key: tensor.detach().to(dtype or tensor.dtype).contiguous() for key, tensor in state.items()}
    metadata = {
        FAMILY_METADATA_KEY: family,
        CONFIGS_METADATA_KEY: json.dumps(configs, sort_keys=True, default=list),
        "format": "pt",
    }
    return state, metadata


def _sort_header(path: Path) -> None:
    """Rewrite a safetensors header with sorted keys: safetensors writes metadata in hash-map order."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keep the data 8-byte aligned, as safetensors does
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + length :])


def make_tiny_model(
    directory: str | Path, family: str, single_file: bool = False, overwrite: bool = False, *,
    hint: str = OVERWRITE_HINT, inpainting: bool = False,
) -> Path:
    """Write a tiny random model of `family`; return the diffusers folder or the `.safetensors` file.

    Folder form: `directory` becomes the diffusers folder. Single-file form: `directory` may name the
    `.safetensors` file itself, otherwise the file is `directory/tiny-<family>[-inpainting].safetensors`.
    `inpainting`: the UNet takes the inpainting input channels (2·latent + 1). `hint` ends the
    message for an existing output (how to allow replacing it). An interrupted or failed call leaves
    nothing behind: no staging folder, temporary file or folder made for the output.
    """
    _check_family(family, inpainting)
    target = Path(directory)
    if not single_file:
        if target.suffix.lower() == ".safetensors":
            raise DiffdiffError(f"{target} names a .safetensors file but a model folder was asked for; "
                                "add --single-file (single_file=True), or give a folder name")
        return _replace_folder(target, family, overwrite, hint, inpainting)
    folder = None
    if target.suffix.lower() != ".safetensors":
        folder = target
        target = target / f"tiny-{family}{'-inpainting' if inpainting else ''}.safetensors"
    if folder is not None:
        _check_creatable(folder, folder)  # before the networks are built
    if folder is None or folder.is_dir():
        check_writable(target, overwrite, hint=hint)
    with _writing(folder, folder or target):
        state = single_file_state(family, inpainting)
        path = write_checkpoint(target, *state, overwrite=overwrite, hint=hint)
    return path


def write_checkpoint(target: Path, state: dict, metadata: dict, *, overwrite: bool = False,
                     hint: str = OVERWRITE_HINT) -> Path:
    """Write one `.safetensors` atomically with a sorted header (same state, same bytes); readable by all."""
    from safetensors.torch import save_file

    def write(tmp: Path) -> None:
        save_file(state, str(tmp), metadata=metadata)
        _sort_header(tmp)

    path = atomic_write(Path(target), write, overwrite=overwrite, hint=hint)
    _make_readable(path)
    return path
