"""Shipped configs and tokenizer, tiny random models (folder, single file), the ldm key map, the CLI verb."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from diffdiff.cli.main import main
from diffdiff.errors import DiffdiffError
from diffdiff.models.ldm_layout import diffusers_to_ldm
from diffdiff.models.tiny import (
    CONFIG_ROOT,
    build_tiny_components,
    make_tiny_model,
    shipped_config,
    tiny_configs,
)
from diffdiff.models.tokenizer import load_tokenizer

FAMILIES = ("sd1", "sd2", "sd2-v", "sdxl")
TEXT_PREFIX = {  # where each text encoder lives in the single-file layout
    ("sd1", "text_encoder"): "cond_stage_model.transformer.text_model.",
    ("sd2", "text_encoder"): "cond_stage_model.model.transformer.resblocks.",
    ("sd2-v", "text_encoder"): "cond_stage_model.model.transformer.resblocks.",
    ("sdxl", "text_encoder"): "conditioner.embedders.0.transformer.text_model.",
    ("sdxl", "text_encoder_2"): "conditioner.embedders.1.model.transformer.resblocks.",
}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """{family: (folder, single_file)} written once for the whole session."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        family: (
            make_tiny_model(root / family, family),
            make_tiny_model(root / "single", family, single_file=True),
        )
        for family in FAMILIES
    }


def files_of(folder):
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in paths}


def assert_same_tensors(expected: dict, actual: dict):
    assert set(expected) == set(actual)
    for key, tensor in expected.items():
        assert torch.equal(tensor, actual[key]), key


# --- tokenizer --------------------------------------------------------------------------------------------


def test_clip_tokenizer_ids_match_sd1_clip_l():
    tokenizer = load_tokenizer("clip")
    assert len(tokenizer) == 49408  # 256 bytes x 2 + 48,894 merges + 2 specials
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_pad_token_variants():
    padded = load_tokenizer("clip")("a cat", padding="max_length", max_length=8).input_ids
    padded_zero = load_tokenizer("clip-pad0")("a cat", padding="max_length", max_length=8).input_ids
    assert padded == [49406, 320, 2368] + [49407] * 5
    assert padded_zero == [49406, 320, 2368, 49407] + [0] * 4  # "!" is the first byte symbol, id 0


def test_unknown_tokenizer_kind_names_choices():
    with pytest.raises(DiffdiffError, match="clip, clip-pad0"):
        load_tokenizer("t6")


# --- shipped real configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family, prediction, scaling, cross_dim",
    [("sd1", "epsilon", 0.18215, 768), ("sd2", "epsilon", 0.18215, 1024),
     ("sd2-v", "v_prediction", 0.18215, 1024), ("sdxl", "epsilon", 0.13025, 768 + 1280)],
)
def test_shipped_configs_describe_the_real_models(family, prediction, scaling, cross_dim):
    assert shipped_config(family, "scheduler")["prediction_type"] == prediction
    vae = shipped_config(family, "vae")
    assert vae["scaling_factor"] == scaling and vae["latent_channels"] == 4
    assert len(vae["block_out_channels"]) == 4  # downscale 2**3 = 8
    unet = shipped_config(family, "unet")
    assert unet["cross_attention_dim"] == cross_dim
    encoders = [n for n in ("text_encoder", "text_encoder_2") if (CONFIG_ROOT / family / n).is_dir()]
    assert sum(shipped_config(family, n)["hidden_size"] for n in encoders) == cross_dim
    index = shipped_config(family, "index")
    assert all(name in index for name in ["unet", "vae", "scheduler", *encoders])


def test_sdxl_shipped_config_has_size_conditioning():
    unet = shipped_config("sdxl", "unet")
    pooled = shipped_config("sdxl", "text_encoder_2")["projection_dim"]
    assert unet["addition_embed_type"] == "text_time"
    # pooled text + 6 size/crop numbers, each embedded to addition_time_embed_dim
    assert unet["projection_class_embeddings_input_dim"] == pooled + 6 * unet["addition_time_embed_dim"]


# --- tiny models --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_configs_keep_the_family_geometry(family):
    configs = tiny_configs(family)
    vae, unet = configs["vae"], configs["unet"]
    assert len(vae["block_out_channels"]) == 4 and vae["latent_channels"] == 4
    assert vae["scaling_factor"] == shipped_config(family, "vae")["scaling_factor"]
    encoders = [n for n in configs if n.startswith("text_encoder")]
    assert len(encoders) == (2 if family == "sdxl" else 1)
    assert unet["cross_attention_dim"] == sum(configs[n]["hidden_size"] for n in encoders)
    if family == "sdxl":
        assert unet["addition_embed_type"] == "text_time"
        assert unet["projection_class_embeddings_input_dim"] == (
            configs["text_encoder_2"]["projection_dim"] + 6 * unet["addition_time_embed_dim"]
        )


def test_same_bytes_every_time(tmp_path, tiny):
    folder, single = tiny["sdxl"]
    again = make_tiny_model(tmp_path / "again", "sdxl")
    assert files_of(folder) == files_of(again)
    again_single = make_tiny_model(tmp_path / "again.safetensors", "sdxl", single_file=True)
    assert again_single.read_bytes() == single.read_bytes()


def test_building_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_components("sd1")
    assert torch.equal(torch.rand(3), expected)


def test_tiny_vae_downscales_by_eight():
    vae = build_tiny_components("sd1")["vae"]
    with torch.no_grad():
        latent = vae.encode(torch.zeros(1, 3, 64, 48)).latent_dist.mode()
    assert latent.shape == (1, 4, 8, 6)


@pytest.mark.parametrize("family", ["sd1", "sd2-v", "sdxl"])
def test_folder_loads_with_diffusers_pipelines_offline(tiny, family):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    folder, _ = tiny[family]
    pipeline_class = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    pipe = pipeline_class.from_pretrained(str(folder), local_files_only=True)
    expected = "v_prediction" if family == "sd2-v" else "epsilon"
    assert pipe.scheduler.config.prediction_type == expected
    assert pipe.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    expected_pad = 0 if family == "sd2-v" else 49407
    assert pipe.tokenizer.pad_token_id == expected_pad
    if family == "sdxl":
        assert pipe.tokenizer_2.pad_token_id == 0
    latents = pipe("a cat", num_inference_steps=1, height=64, width=64, output_type="latent").images
    assert latents.shape == (1, 4, 8, 8) and torch.isfinite(latents).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_single_file_round_trip_is_bit_identical(tiny, family):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    folder, single = tiny[family]
    original = build_tiny_components(family)
    unet = UNet2DConditionModel.from_single_file(str(single), config=str(folder), subfolder="unet")
    vae = AutoencoderKL.from_single_file(str(single), config=str(folder), subfolder="vae")
    assert_same_tensors(original["unet"].state_dict(), unet.state_dict())
    assert_same_tensors(original["vae"].state_dict(), vae.state_dict())
    checkpoint = load_file(str(single))
    for name in [n for n in original if n.startswith("text_encoder")]:
        assert any(key.startswith(TEXT_PREFIX[(family, name)]) for key in checkpoint)
        text_class = CLIPTextModelWithProjection if name == "text_encoder_2" else CLIPTextModel
        encoder = create_diffusers_clip_model_from_ldm(
            text_class, checkpoint, subfolder=name, config=str(folder), local_files_only=True
        )
        assert_same_tensors(original[name].state_dict(), encoder.state_dict())
    assert ("v_pred" in checkpoint) == (family == "sd2-v")


@pytest.mark.parametrize("family", FAMILIES)
def test_single_file_header_carries_family_and_configs(tiny, family):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    _, single = tiny[family]
    with safe_open(str(single), "pt") as handle:
        metadata = handle.metadata()
    assert metadata["diffdiff.family"] == family
    configs = json.loads(metadata["diffdiff.configs"])
    assert set(configs) == set(tiny_configs(family))
    original = build_tiny_components(family)
    rebuilt = {
        "unet": UNet2DConditionModel.from_config(configs["unet"]),
        "vae": AutoencoderKL.from_config(configs["vae"]),
    }
    for name, model in rebuilt.items():
        expected = {k: v.shape for k, v in original[name].state_dict().items()}
        assert {k: v.shape for k, v in model.state_dict().items()} == expected
    assert rebuilt["vae"].config.scaling_factor == original["vae"].config.scaling_factor
    for name in [n for n in configs if n.startswith("text_encoder")]:
        assert configs[name]["hidden_size"] == original[name].config.hidden_size


# --- the key map on the real architectures (no weights: meta tensors) ---------------------------------------


@pytest.mark.parametrize("family, unet_keys", [("sd1", 686), ("sdxl", 1680)])
def test_real_architecture_maps_to_the_original_layout(family, unet_keys):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(shipped_config(family, "unet"))
        vae = AutoencoderKL.from_config(shipped_config(family, "vae"))
    unet_state, vae_state = unet.state_dict(), vae.state_dict()
    ldm = diffusers_to_ldm({"unet": unet_state, "vae": vae_state}, family)
    assert sum(k.startswith("model.diffusion_model.") for k in ldm) == unet_keys  # the originals' key counts
    # upsamplers: SD1's level 0 has no attention (index 1), the others do (index 2); SDXL has 2 of them
    upsamplers = sorted(k for k in ldm if k.startswith("model.diffusion_model.output") and "conv.weight" in k)
    expected = {
        "sd1": ["output_blocks.2.1", "output_blocks.5.2", "output_blocks.8.2"],
        "sdxl": ["output_blocks.2.2", "output_blocks.5.2"],
    }[family]
    assert upsamplers == [f"model.diffusion_model.{name}.conv.weight" for name in expected]
    assert ldm["first_stage_model.encoder.mid.attn_1.q.weight"].shape == (512, 512, 1, 1)
    back_unet = convert_ldm_unet_checkpoint(ldm, dict(unet.config))
    back_vae = convert_ldm_vae_checkpoint(ldm, dict(vae.config))
    assert {k: v.shape for k, v in back_unet.items()} == {k: v.shape for k, v in unet_state.items()}
    assert {k: v.shape for k, v in back_vae.items()} == {k: v.shape for k, v in vae_state.items()}


def test_openclip_packing_order():
    width = 4
    state = {
        f"encoder.layers.0.self_attn.{n}_proj.weight": torch.full((width, width), float(i))
        for i, n in enumerate("qkv")
    }
    for i, n in enumerate("qkv"):
        state[f"encoder.layers.0.self_attn.{n}_proj.bias"] = torch.full((width,), float(i))
    state["text_projection.weight"] = torch.arange(6.0).reshape(2, 3)
    ldm = diffusers_to_ldm({"text_encoder_2": state}, "sdxl")
    packed = ldm["conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight"]
    assert packed.shape == (3 * width, width)
    assert [packed[i * width, 0].item() for i in range(3)] == [0.0, 1.0, 2.0]  # q, k, v
    projection = ldm["conditioner.embedders.1.model.text_projection"]
    assert torch.equal(projection, state["text_projection.weight"].T)


def test_bad_family_and_component_are_user_errors(tmp_path):
    with pytest.raises(DiffdiffError, match="sd1, sd2, sd2-v, sdxl, sd3, flux"):
        make_tiny_model(tmp_path / "x", "sd5")
    with pytest.raises(DiffdiffError, match="flux-fill"):
        make_tiny_model(tmp_path / "x", "flux", inpainting=True)
    with pytest.raises(DiffdiffError, match="text_encoder_2"):
        diffusers_to_ldm({"text_encoder_2": {}}, "sd1")


# --- CLI ----------------------------------------------------------------------------------------------------


def test_cli_writes_both_forms_and_refuses_to_overwrite(tmp_path, capsys):
    folder = tmp_path / "tiny"
    assert main(["make-tiny-model", str(folder), "--family", "sd2-v"]) == 0
    assert json.loads((folder / "scheduler" / "scheduler_config.json").read_text())["prediction_type"] == (
        "v_prediction"
    )
    before = files_of(folder)
    assert main(["make-tiny-model", str(folder), "--family", "sd2-v"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["make-tiny-model", str(folder), "--family", "sd2-v", "--overwrite"]) == 0
    assert files_of(folder) == before

    assert main(["make-tiny-model", str(tmp_path), "--family", "sd1", "--single-file"]) == 0
    single = tmp_path / "tiny-sd1.safetensors"
    assert single.is_file() and str(single) in capsys.readouterr().out
    assert main(["make-tiny-model", str(tmp_path), "--family", "sd1", "--single-file"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["make-tiny-model", str(tmp_path), "--single-file", "--overwrite"]) == 0


def test_cli_overwrite_refuses_a_folder_that_is_not_a_model(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["make-tiny-model", str(tmp_path), "--overwrite"]) == 2
    assert "not a diffusers model folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_existing_empty_folder_is_filled(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    assert make_tiny_model(folder, "sd1") == folder
    assert (folder / "model_index.json").is_file() and (folder / "unet" / "config.json").is_file()
