"""Refused LoRA files: each with one line naming the problem, and the model left untouched."""

import pytest
import torch
from lora_files import comfy_state, kohya_state, make_targets, parameters, peft_state, tiny_model, write

from diffdiff.errors import DiffdiffError
from diffdiff.lora import LoraUse, applied_loras


@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory):
    return tiny_model(tmp_path_factory, "sdxl")


def refused(model, path, *, allow_pickle=False, mode="merge") -> str:
    """The one-line message for `path`, after checking the model's parameters did not change."""
    before = parameters(model)
    with pytest.raises(DiffdiffError) as caught:
        with applied_loras(model, [LoraUse(path, 1.0)], mode=mode, allow_pickle=allow_pickle):
            pytest.fail("the block must not run")
    after = parameters(model)
    assert all(torch.equal(after[key], value) for key, value in before.items())
    message = str(caught.value)
    assert "\n" not in message and message
    return message


def test_sdxl_lora_on_sd1_is_named_as_such(tiny_sd1, tiny_sdxl, tmp_path):
    path = write(
        tmp_path / "xl.safetensors", kohya_state(make_targets(tiny_sdxl, seed=31), sgm=True, sdxl=True)
    )
    message = refused(tiny_sd1, path)
    assert message == (
        "LoRA xl.safetensors is for SDXL (it has second-text-encoder weights); the model is sd1"
    )


def test_comfyui_sdxl_lora_on_sd1(tiny_sd1, tiny_sdxl, tmp_path):
    path = write(tmp_path / "comfy_xl.safetensors", comfy_state(make_targets(tiny_sdxl, seed=32), "sdxl"))
    assert "comfy_xl.safetensors is for SDXL" in refused(tiny_sd1, path)
    assert "the model is sd1" in refused(tiny_sd1, path)


def test_sd1_unet_lora_on_sdxl_by_cross_attention_width(tiny_sd1, tiny_sdxl, tmp_path):
    targets = make_targets(tiny_sd1, seed=33, text=False)
    path = write(tmp_path / "sd1only.safetensors", peft_state(targets))
    message = refused(tiny_sdxl, path)
    assert "sd1only.safetensors is for another model family (it has 16-wide cross-attention)" in message
    assert "the model is sdxl (48-wide)" in message


def test_real_width_names_the_family(tiny_sd1, tmp_path):
    state = {
        "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": torch.ones(4, 2048),
        "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight": torch.ones(64, 4),
    }
    message = refused(tiny_sd1, write(tmp_path / "wide.safetensors", state))
    assert message.startswith("LoRA wide.safetensors is for SDXL (it has 2048-wide cross-attention)")


def test_unknown_keys_are_named_with_their_count(tiny_sd1, tmp_path):
    state = kohya_state(make_targets(tiny_sd1, seed=34), sgm=False)
    for block in range(5, 11):
        stem = f"lora_unet_down_blocks_{block}_attentions_0_proj_in"
        state[stem + ".lora_down.weight"] = torch.ones(4, 64)
        state[stem + ".lora_up.weight"] = torch.ones(64, 4)
    message = refused(tiny_sd1, write(tmp_path / "extra.safetensors", state))
    assert "extra.safetensors has keys that match no layer of this sd1 model (6 keys:" in message
    assert "lora_unet_down_blocks_5_attentions_0_proj_in" in message and ", ..." in message


def test_shape_mismatch_names_key_and_shapes(tiny_sd1, tmp_path):
    targets = make_targets(tiny_sd1, seed=35, text=False)
    state = kohya_state(targets, sgm=False)
    key = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"
    state[key + ".lora_down.weight"] = torch.ones(4, 40)
    message = refused(tiny_sd1, write(tmp_path / "shape.safetensors", state))
    assert key in message and "(4, 40)" in message and "(64, 64)" in message


def test_unsupported_lycoris_kinds_are_refused(tiny_sd1, tmp_path):
    state = {
        "lora_unet_down_blocks_1_attentions_0_proj_in.hada_w1_a": torch.ones(64, 4),
        "lora_unet_down_blocks_1_attentions_0_proj_in.hada_w1_b": torch.ones(4, 64),
    }
    message = refused(tiny_sd1, write(tmp_path / "loha.safetensors", state))
    assert "loha.safetensors has keys this loader does not support" in message and "hada_w1_a" in message


def test_mixed_layouts_are_refused(tiny_sd1, tmp_path):
    targets = make_targets(tiny_sd1, seed=36, text=False)
    state = {**kohya_state(targets[:2], sgm=False), **peft_state(targets[2:4])}
    assert "mixes key layouts (diffusers, kohya)" in refused(
        tiny_sd1, write(tmp_path / "mixed.safetensors", state)
    )


def test_nan_is_refused(tiny_sd1, tmp_path):
    state = kohya_state(make_targets(tiny_sd1, seed=37), sgm=False)
    key = next(iter(state))
    state[key][0, 0] = float("nan")
    message = refused(tiny_sd1, write(tmp_path / "nan.safetensors", state))
    assert message == f"LoRA nan.safetensors: tensor {key!r} holds NaN or infinite values; refusing it"


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", "truncated"])
def test_corrupt_or_truncated_file(tiny_sd1, tmp_path, content):
    path = tmp_path / "bad.safetensors"
    if content == "truncated":
        whole = write(tmp_path / "whole.safetensors", kohya_state(make_targets(tiny_sd1, seed=38), sgm=False))
        data = whole.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    assert "bad.safetensors" in refused(tiny_sd1, path)


def test_missing_file(tiny_sd1, tmp_path):
    assert refused(tiny_sd1, tmp_path / "nowhere.safetensors") == (
        f"LoRA file not found: {tmp_path / 'nowhere.safetensors'}"
    )


def test_pickled_file_needs_allow_pickle(tiny_sd1, tmp_path):
    targets = make_targets(tiny_sd1, seed=39)
    path = tmp_path / "old.pt"
    torch.save(kohya_state(targets, sgm=False), path)
    message = refused(tiny_sd1, path)
    assert "old.pt is a pickled checkpoint" in message and "allow_pickle" in message
    before = parameters(tiny_sd1)
    with applied_loras(tiny_sd1, [LoraUse(path, 1.0)], allow_pickle=True):
        key = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight"
        assert not torch.equal(parameters(tiny_sd1)[key], before[key])


@pytest.mark.parametrize("weight", [float("nan"), float("inf")])
def test_non_finite_strength_is_refused(tiny_sd1, tmp_path, weight):
    path = write(tmp_path / "ok.safetensors", kohya_state(make_targets(tiny_sd1, seed=40), sgm=False))
    with pytest.raises(DiffdiffError, match="ok.safetensors: weight .* is not a finite number"):
        with applied_loras(tiny_sd1, [LoraUse(path, weight)]):
            pass
