"""load_model: family detection, folders, single files, hub cache, pickles, corrupt files, devices."""

import json

import numpy as np
import pytest
import torch

from diffdiff.errors import DiffdiffError
from diffdiff.models import LoadedModel, load_model, make_tiny_model
from diffdiff.models.device import resolve_device
from diffdiff.models.families import detect_base_family, detect_v_prediction, resolve_family

# --- tiny diffusers folders (make_tiny_model: real classes, seeded weights) ------------------------------


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-folders")
    return {family: make_tiny_model(root / family, family) for family in ("sd1", "sd2-v", "sdxl")}


def _assert_same_weights(loaded, folder, component, model_class):
    original = model_class.from_pretrained(str(folder), subfolder=component)
    expected = original.state_dict()
    assert set(loaded.state_dict()) == set(expected)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value.float(), expected[key].float()), key


# --- family detection ------------------------------------------------------------------------------

SD1_KEYS = ["model.diffusion_model.input_blocks.0.0.weight",
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
            "first_stage_model.encoder.conv_in.weight"]
SD2_KEYS = ["model.diffusion_model.input_blocks.0.0.weight", "cond_stage_model.model.token_embedding.weight"]
SDXL_KEYS = ["model.diffusion_model.label_emb.0.0.weight",
             "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
             "conditioner.embedders.1.model.token_embedding.weight"]


def _no_tensor(key):
    raise AssertionError(f"unexpected tensor read {key}")


def test_detects_base_families_from_keys():
    assert detect_base_family(SD1_KEYS) == "sd1"
    assert detect_base_family(SD2_KEYS) == "sd2"
    assert detect_base_family(SDXL_KEYS) == "sdxl"


def test_unknown_layout_lists_what_was_expected():
    with pytest.raises(DiffdiffError) as error:
        detect_base_family(["model.diffusion_model.x", "text_encoders.t5xxl.weight"])
    message = str(error.value)
    assert "\n" not in message
    for expected in ("cond_stage_model.transformer.", "cond_stage_model.model.", "conditioner.embedders.1."):
        assert expected in message


def test_v_prediction_from_marker_override_and_heuristic():
    assert resolve_family(SD2_KEYS + ["v_pred"], _no_tensor) == "sd2-v"
    assert resolve_family(SD2_KEYS, _no_tensor) == "sd2"  # no heuristic key: eps
    assert resolve_family(SD2_KEYS + ["v_pred"], _no_tensor, prediction="eps") == "sd2"
    assert resolve_family(SD2_KEYS, _no_tensor, prediction="v") == "sd2-v"
    key = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
    wide = torch.tensor([0.2, -0.2] * 8)  # population std 0.2 > 0.09
    narrow = torch.tensor([0.05, -0.05] * 8)  # 0.05 < 0.09
    conv_in = SD2_KEYS[0]
    four, nine = torch.zeros(320, 4, 3, 3), torch.zeros(320, 9, 3, 3)
    assert detect_v_prediction(SD2_KEYS + [key], {key: wide, conv_in: four}.__getitem__)
    assert not detect_v_prediction(SD2_KEYS + [key], {key: narrow, conv_in: four}.__getitem__)
    assert not detect_v_prediction(SD2_KEYS + [key], {key: wide, conv_in: nine}.__getitem__)  # inpainting
    with pytest.raises(DiffdiffError, match="only sd2"):
        resolve_family(SD1_KEYS, _no_tensor, prediction="v")


# --- devices ---------------------------------------------------------------------------------------

def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(DiffdiffError, match="auto, cpu, cuda, mps"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DiffdiffError, match="no CUDA"):
            resolve_device("cuda")


# --- folders ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["sd1", "sd2-v", "sdxl"])
def test_load_folder_recognises_family_and_keeps_weights(tiny_folders, family):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    folder = tiny_folders[family]
    model = load_model(folder, device="cpu")
    assert isinstance(model, LoadedModel)
    assert model.family == family
    assert model.model_sampling.prediction == ("v" if family == "sd2-v" else "eps")
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    assert model.latent_channels == 4 and model.vae_codec.factor == 8
    assert model.vae_codec.scaling_factor == pytest.approx(0.13025 if family == "sdxl" else 0.18215)
    _assert_same_weights(model.unet, folder, "unet", UNet2DConditionModel)
    _assert_same_weights(model.vae, folder, "vae", AutoencoderKL)
    _assert_same_weights(model.text_encoders[0], folder, "text_encoder", CLIPTextModel)
    assert len(model.text_encoders) == (2 if family == "sdxl" else 1)
    assert len(model.short_hash) == 10


def test_folder_prediction_override(tiny_folders):
    assert load_model(tiny_folders["sd2-v"], prediction="eps", device="cpu").family == "sd2"


def test_vae_round_trip_shapes_and_scale(tiny_folders):
    model = load_model(tiny_folders["sd1"], device="cpu")
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    latents = model.vae_codec.encode(pixels)
    assert latents.shape == (1, 4, 8, 8) and latents.dtype == torch.float32
    images = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1
    mean = model.vae.encode(images).latent_dist.mean
    torch.testing.assert_close(latents, mean * 0.18215)
    decoded = model.vae_codec.decode(latents)
    assert decoded.shape == (1, 64, 64, 3) and decoded.dtype == np.uint8
    with torch.no_grad():
        expected = ((model.vae.decode(latents / 0.18215).sample.clamp(-1, 1) + 1) * 127.5).round()
    assert np.abs(decoded[0].astype(int) - expected[0].permute(1, 2, 0).numpy()).max() <= 1
    tiled = model.vae_codec.decode(latents, tile=32, overlap=8)  # the same quantiser, tile by tile
    assert tiled.shape == decoded.shape and tiled.dtype == np.uint8  # (its quality: test_tiles_vae.py)


# --- files that must be refused --------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin", ".pth"])
def test_pickled_checkpoint_refused_without_opt_in(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    torch.save({"state_dict": {"a": torch.zeros(1)}}, path)
    with pytest.raises(DiffdiffError, match="allow_pickle") as error:
        load_model(path, device="cpu")
    assert "\n" not in str(error.value)


def test_pickled_checkpoint_with_opt_in_reaches_family_detection(tmp_path):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"something.else": torch.zeros(1)}}, path)
    with pytest.raises(DiffdiffError, match="unrecognised checkpoint layout"):
        load_model(path, device="cpu", allow_pickle=True)


def test_empty_pickled_checkpoint_names_the_failure(tmp_path):
    path = tmp_path / "empty.ckpt"
    path.write_bytes(b"")
    with pytest.raises(DiffdiffError, match=r"cannot load pickled checkpoint empty.ckpt: EOFError$"):
        load_model(path, device="cpu", allow_pickle=True)  # the message used to end in a bare colon


def test_corrupt_safetensors_is_one_line_error(tmp_path):
    from safetensors.torch import save_file

    good = tmp_path / "good.safetensors"
    save_file({"w": torch.zeros(64, 64)}, str(good))
    truncated = tmp_path / "bad.safetensors"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DiffdiffError) as error:
        load_model(truncated, device="cpu")
    assert "bad.safetensors" in str(error.value) and "\n" not in str(error.value)
    garbage = tmp_path / "junk.safetensors"
    garbage.write_bytes(b"\xff" * 50)
    with pytest.raises(DiffdiffError, match="junk.safetensors"):
        load_model(garbage, device="cpu")


def test_missing_file(tmp_path):
    with pytest.raises(DiffdiffError, match="not found"):
        load_model(tmp_path / "nope.safetensors", device="cpu")


def test_hub_id_not_cached_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(DiffdiffError, match="huggingface-cli download someone/not-cached"):
        load_model("someone/not-cached", device="cpu")


def test_hub_id_cached_loads_from_cache(tmp_path, monkeypatch, tiny_folders):
    """A snapshot laid out as huggingface_hub caches it loads without any network access."""
    import shutil

    cache = tmp_path / "hub"
    repo = cache / "models--someone--tiny-sd1"
    revision = "0" * 40
    shutil.copytree(tiny_folders["sd1"], repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    model = load_model("someone/tiny-sd1", device="cpu")
    assert model.family == "sd1" and model.name == "someone/tiny-sd1"


# --- single-file text encoders (ldm keys written here from the OpenCLIP / CLIP layouts) -------------------

def _open_clip_layout(model, prefix):
    """OpenCLIP's key layout for a transformers CLIP text model (q, k, v packed in in_proj)."""
    weights = {k.removeprefix("text_model."): v for k, v in model.state_dict().items()}
    out = {prefix + "token_embedding.weight": weights["embeddings.token_embedding.weight"],
           prefix + "positional_embedding": weights["embeddings.position_embedding.weight"],
           prefix + "ln_final.weight": weights["final_layer_norm.weight"],
           prefix + "ln_final.bias": weights["final_layer_norm.bias"]}
    if "text_projection.weight" in weights:
        out[prefix + "text_projection"] = weights["text_projection.weight"].T.contiguous()
    else:
        width = weights["final_layer_norm.weight"].shape[0]
        out[prefix + "text_projection"] = torch.zeros(width, width)
    for i in range(model.config.num_hidden_layers):
        src, dst = f"encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat(
                [weights[src + f"self_attn.{p}_proj.{kind}"] for p in ("q", "k", "v")])
            out[dst + f"attn.out_proj.{kind}"] = weights[src + f"self_attn.out_proj.{kind}"]
            out[dst + f"ln_1.{kind}"] = weights[src + f"layer_norm1.{kind}"]
            out[dst + f"ln_2.{kind}"] = weights[src + f"layer_norm2.{kind}"]
            out[dst + f"mlp.c_fc.{kind}"] = weights[src + f"mlp.fc1.{kind}"]
            out[dst + f"mlp.c_proj.{kind}"] = weights[src + f"mlp.fc2.{kind}"]
    return out


@pytest.mark.parametrize("family,component,prefix", [
    ("sd1", "text_encoder", None),
    ("sd2-v", "text_encoder", "cond_stage_model.model."),
    ("sdxl", "text_encoder_2", "conditioner.embedders.1.model."),
])
def test_single_file_text_encoders_are_bit_exact(tiny_folders, tmp_path, family, component, prefix):
    from safetensors.torch import save_file
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from diffdiff.models.single_file import (
        build_text_encoder,
        normalise_keys,
        read_checkpoint,
        text_encoder_config,
    )

    folder = tiny_folders[family]
    model_class = CLIPTextModelWithProjection if component == "text_encoder_2" else CLIPTextModel
    original = model_class.from_pretrained(str(folder), subfolder=component)
    if prefix is None:  # A1111 CLIP-L: the transformers layout under cond_stage_model.transformer.
        weights = {"cond_stage_model.transformer.text_model." + k.removeprefix("text_model."): v
                   for k, v in original.state_dict().items()}
    else:
        weights = _open_clip_layout(original, prefix)
    path = tmp_path / "te.safetensors"
    save_file({k: v.contiguous() for k, v in weights.items()}, str(path))
    state_dict, _ = read_checkpoint(path)
    config = text_encoder_config(folder, component)
    loaded = build_text_encoder(normalise_keys(state_dict), config, family, component, torch.float32)
    expected = original.state_dict()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, expected[key]), key


def _ldm_vae_layout(vae):
    """The ldm (A1111 `first_stage_model.`-less) key layout of a diffusers AutoencoderKL, written from the
    original taming/ldm module names: down.i.block.j, mid.block_1/attn_1, up.(n-1-i), nin_shortcut, q/k/v."""
    out = {}
    levels = len(vae.config.block_out_channels)
    renames = [("conv_shortcut", "nin_shortcut"), ("mid_block.resnets.0", "mid.block_1"),
               ("mid_block.resnets.1", "mid.block_2"), ("mid_block.attentions.0", "mid.attn_1"),
               ("conv_norm_out", "norm_out"), ("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"),
               ("to_v", "v"), ("to_out.0", "proj_out")]
    for key, value in vae.state_dict().items():
        new = key
        for i in range(levels):
            new = new.replace(f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block.")
            new = new.replace(f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.")
            up = levels - 1 - i
            new = new.replace(f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{up}.block.")
            new = new.replace(f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{up}.upsample.")
        for old, ldm in renames:
            new = new.replace(old, ldm)
        if ".attn_1." in new and new.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]  # ldm attention projections are 1×1 convolutions
        out[new] = value.contiguous()
    return out


def test_separate_vae_file_in_ldm_and_diffusers_layouts(tiny_folders, tmp_path):
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    torch.manual_seed(5)
    other = AutoencoderKL.from_pretrained(str(tiny_folders["sd1"]), subfolder="vae")
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)  # a different VAE of the same shape
    ldm_path, diffusers_path = tmp_path / "vae-ldm.safetensors", tmp_path / "vae-diffusers.safetensors"
    save_file(_ldm_vae_layout(other), str(ldm_path))
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(diffusers_path))
    for path in (ldm_path, diffusers_path):
        model = load_model(tiny_folders["sd1"], vae=path, device="cpu")
        expected = other.state_dict()
        for key, value in model.vae.state_dict().items():
            assert torch.equal(value, expected[key]), (path.name, key)


def test_single_file_configs_from_header_and_missing_unet_reported(tiny_folders, tmp_path):
    """Header `diffdiff.configs` feeds the builders; a file without UNet weights is refused."""
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    folder = tiny_folders["sd1"]
    configs = {name: json.loads((folder / name / "config.json").read_text())
               for name in ("unet", "vae", "text_encoder")}
    encoder = CLIPTextModel.from_pretrained(str(folder), subfolder="text_encoder")
    weights = {"cond_stage_model.transformer.text_model." + k.removeprefix("text_model."): v.contiguous()
               for k, v in encoder.state_dict().items()}
    path = tmp_path / "no-unet.safetensors"
    metadata = {"diffdiff.family": "sd1", "diffdiff.configs": json.dumps(configs)}
    save_file(weights, str(path), metadata=metadata)
    with pytest.raises(DiffdiffError, match="lacks .* unet weights") as error:
        load_model(path, device="cpu")
    assert "\n" not in str(error.value)
