"""Each LoRA layout, on the tiny SD1 and SDXL models: exactly the targeted layers change, by strength ×
(alpha / rank) × up·down computed here from the file's tensors; everything else stays bit-identical; the
text encoders get the text strength; the model is bit-identical again after the block."""

import pytest
import torch
from lora_files import (
    comfy_state,
    kohya_state,
    make_targets,
    old_diffusers_state,
    parameters,
    peft_state,
    tiny_model,
    weight_key,
    write,
)

from diffdiff.lora import LoraUse, applied_loras

WEIGHT, TEXT_WEIGHT = 0.7, -0.4


@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory):
    return tiny_model(tmp_path_factory, "sdxl")


def check_applied(model, path, targets, mode="merge"):
    """Apply the file at WEIGHT / TEXT_WEIGHT; compare every parameter with the change computed here."""
    before = parameters(model)
    with applied_loras(model, [LoraUse(path, WEIGHT, TEXT_WEIGHT)], mode=mode) as applied:
        during = parameters(model)
    after = parameters(model)
    assert applied[0]["name"] == path.stem and applied[0]["weight"] == WEIGHT
    assert applied[0]["text_weight"] == TEXT_WEIGHT
    expected = {}
    for target in targets:
        key = weight_key(model, target)
        strength = WEIGHT if target.network == "unet" else TEXT_WEIGHT
        expected[key] = before[key] + strength * target.delta(before[key].shape)
    assert set(expected) <= set(before)
    for key, value in before.items():
        if key in expected:
            assert not torch.equal(during[key], value), key
            torch.testing.assert_close(during[key], expected[key], rtol=0, atol=1e-6)
        else:
            assert torch.equal(during[key], value), f"{key} changed but the LoRA does not target it"
        assert torch.equal(after[key], value), f"{key} not restored"


def test_kohya_sd1_unet_locon_and_text(tiny_sd1, tmp_path):
    targets = make_targets(tiny_sd1, seed=1)
    path = write(tmp_path / "kohya_sd1.safetensors", kohya_state(targets, sgm=False))
    check_applied(tiny_sd1, path, targets)


def test_kohya_fp16_file(tiny_sd1, tmp_path):
    targets = make_targets(tiny_sd1, seed=2)
    for target in targets:  # what the file holds is what the expected change is computed from
        target.down, target.up = target.down.half().float(), target.up.half().float()
    state = {key: value.half() for key, value in kohya_state(targets, sgm=False).items()}
    check_applied(tiny_sd1, write(tmp_path / "kohya_fp16.safetensors", state), targets)


def test_kohya_sdxl_sgm_names_and_both_text_encoders(tiny_sdxl, tmp_path):
    targets = make_targets(tiny_sdxl, seed=3)
    assert {t.network for t in targets} == {"unet", "text_encoder", "text_encoder_2"}
    path = write(tmp_path / "kohya_sdxl.safetensors", kohya_state(targets, sgm=True, sdxl=True))
    check_applied(tiny_sdxl, path, targets)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_diffusers_peft(family, tiny_sd1, tiny_sdxl, tmp_path):
    model = tiny_sd1 if family == "sd1" else tiny_sdxl
    targets = make_targets(model, seed=4)
    check_applied(model, write(tmp_path / f"peft_{family}.safetensors", peft_state(targets)), targets)


def test_diffusers_peft_alpha_from_header_metadata(tiny_sd1, tmp_path):
    targets = make_targets(tiny_sd1, seed=5, with_alpha=False)
    state = peft_state(targets)
    for target in targets:
        target.alpha = 2.0 if target.network == "unet" else 8.0
    metadata = {
        "lora_adapter_metadata": '{"unet.r": 4, "unet.lora_alpha": 2, "text_encoder.r": 4,'
        ' "text_encoder.lora_alpha": 8}'
    }
    check_applied(tiny_sd1, write(tmp_path / "peft_meta.safetensors", state, metadata), targets)


def test_old_diffusers_attention_processor_names(tiny_sd1, tmp_path):
    targets = make_targets(tiny_sd1, seed=6, with_alpha=False, text=False)
    state = old_diffusers_state(targets)
    kept = [t for t in targets if t.path.endswith(("to_q", "to_k", "to_v", "to_out.0"))]
    assert len(state) == 2 * len(kept) >= 6
    check_applied(tiny_sd1, write(tmp_path / "old.safetensors", state), kept)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_comfyui_saved(family, tiny_sd1, tiny_sdxl, tmp_path):
    model = tiny_sd1 if family == "sd1" else tiny_sdxl
    targets = make_targets(model, seed=7)
    check_applied(
        model, write(tmp_path / f"comfy_{family}.safetensors", comfy_state(targets, family)), targets
    )


def test_comfyui_full_differences(tiny_sd1, tmp_path):
    """ComfyUI's save node also writes `.diff` (norm weights), `.diff_b` (biases): W' = W + weight × diff."""
    generator = torch.Generator().manual_seed(8)
    norm = tiny_sd1.unet.down_blocks[0].resnets[0].norm1
    bias = tiny_sd1.unet.down_blocks[0].resnets[0].conv1.bias
    state = {
        "diffusion_model.input_blocks.1.0.in_layers.0.diff": torch.randn(
            norm.weight.shape, generator=generator
        ),
        "diffusion_model.input_blocks.1.0.in_layers.2.diff_b": torch.randn(bias.shape, generator=generator),
    }
    path = write(tmp_path / "comfy_diff.safetensors", state)
    before = parameters(tiny_sd1)
    for mode in ("merge", "adapter"):
        with applied_loras(tiny_sd1, [LoraUse(path, 0.5)], mode=mode):
            during = parameters(tiny_sd1)
        for key, value in before.items():
            if key == "unet.down_blocks.0.resnets.0.norm1.weight":
                torch.testing.assert_close(
                    during[key], value + 0.5 * state[next(iter(state))], rtol=0, atol=1e-6
                )
            elif key == "unet.down_blocks.0.resnets.0.conv1.bias":
                torch.testing.assert_close(
                    during[key], value + 0.5 * state[list(state)[1]], rtol=0, atol=1e-6
                )
            else:
                assert torch.equal(during[key], value), key
    after = parameters(tiny_sd1)
    assert all(torch.equal(after[key], value) for key, value in before.items())


def test_two_loras_add_up(tiny_sd1, tmp_path):
    first, second = make_targets(tiny_sd1, seed=9), make_targets(tiny_sd1, seed=10)
    one = write(tmp_path / "one.safetensors", kohya_state(first, sgm=False))
    two = write(tmp_path / "two.safetensors", peft_state(second))
    before = parameters(tiny_sd1)
    with applied_loras(tiny_sd1, [LoraUse(one, 0.5, 0.25), LoraUse(two, -1.0)], mode="merge") as applied:
        during = parameters(tiny_sd1)
    assert [entry["name"] for entry in applied] == ["one", "two"]
    for a, b in zip(first, second):
        key = weight_key(tiny_sd1, a)
        shape = before[key].shape
        strengths = (0.5, -1.0) if a.network == "unet" else (0.25, -1.0)
        wanted = before[key] + strengths[0] * a.delta(shape) + strengths[1] * b.delta(shape)
        torch.testing.assert_close(during[key], wanted, rtol=0, atol=1e-5)
    after = parameters(tiny_sd1)
    assert all(torch.equal(after[key], value) for key, value in before.items())
