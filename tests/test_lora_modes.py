"""Merge and adapter modes: strength 0 leaves the model's outputs bit-identical (the LoRA really applied),
the model is bit-identical after the block (also after an exception or a refused file), both modes give the
same outputs, and no LoRA file means no change."""

import numpy as np
import pytest
import torch
from lora_files import (
    TEXT_TARGETS,
    UNET_TARGETS,
    kohya_state,
    make_targets,
    networks,
    parameters,
    peft_state,
    tiny_model,
    write,
)
from PIL import Image

from diffdiff.errors import DiffdiffError
from diffdiff.lora import LoraUse, applied_loras


@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory):
    return tiny_model(tmp_path_factory, "sdxl")


def unet_output(model) -> torch.Tensor:
    """The UNet on a fixed input (SDXL gets its pooled text and size conditioning)."""
    generator = torch.Generator().manual_seed(0)
    latent = torch.randn(1, 4, 16, 16, generator=generator)
    context = torch.randn(1, 77, model.unet.config.cross_attention_dim, generator=generator)
    extra = {}
    if model.family == "sdxl":
        pooled = torch.randn(1, model.text_encoders[1].config.projection_dim, generator=generator)
        extra["added_cond_kwargs"] = {
            "text_embeds": pooled,
            "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]]),
        }
    with torch.no_grad():
        return model.unet(latent, torch.tensor([500.0]), encoder_hidden_states=context, **extra).sample


def text_output(model) -> torch.Tensor:
    tokens = torch.arange(1, 78).unsqueeze(0) % 1000
    with torch.no_grad():
        return torch.cat([encoder(tokens).last_hidden_state.flatten() for encoder in model.text_encoders])


def module_layout(model) -> list[tuple[str, str]]:
    return [
        (f"{network}.{name}", type(module).__name__)
        for network, root in networks(model).items()
        for name, module in root.named_modules()
    ]


def really_applied(model, mode: str) -> bool:
    """Merge: the first targeted UNet weight differs from the original; adapter: PEFT LoRA layers exist."""
    if mode == "adapter":
        return any(type(module).__module__.startswith("peft.tuners.lora") for module in model.unet.modules())
    conv = model.unet.down_blocks[0].resnets[0].conv1.weight
    return not torch.equal(conv, ORIGINAL_CONV[model.family])


ORIGINAL_CONV: dict[str, torch.Tensor] = {}


@pytest.fixture
def sd1_file(tiny_sd1, tmp_path):
    ORIGINAL_CONV.setdefault("sd1", tiny_sd1.unet.down_blocks[0].resnets[0].conv1.weight.detach().clone())
    return write(tmp_path / "style.safetensors", kohya_state(make_targets(tiny_sd1, seed=21), sgm=False))


@pytest.mark.parametrize("mode", ["merge", "adapter"])
def test_weight_zero_is_bit_identical(tiny_sd1, sd1_file, mode, monkeypatch):
    from diffdiff.lora import merging

    merged = []
    original_add = merging.MergedWeights.add

    def counting_add(self, weight, delta):
        merged.append(delta.abs().max().item())
        return original_add(self, weight, delta)

    monkeypatch.setattr(merging.MergedWeights, "add", counting_add)
    base_unet, base_text = unet_output(tiny_sd1), text_output(tiny_sd1)
    with applied_loras(tiny_sd1, [LoraUse(sd1_file, 0.0)], mode=mode):
        if mode == "merge":  # really merged: every targeted weight got its (zero) delta added
            assert len(merged) == len(UNET_TARGETS) + len(TEXT_TARGETS) and max(merged) == 0.0
        else:
            assert really_applied(tiny_sd1, mode)
        assert torch.equal(unet_output(tiny_sd1), base_unet)
        assert torch.equal(text_output(tiny_sd1), base_text)
    with applied_loras(tiny_sd1, [LoraUse(sd1_file, 0.3)], mode=mode):  # the same file at 0.3 does change it
        assert not torch.equal(unet_output(tiny_sd1), base_unet)
        assert not torch.equal(text_output(tiny_sd1), base_text)


def test_weight_zero_edit_is_bit_identical(tiny_sd1, sd1_file):
    from diffdiff import pipeline

    rng = np.random.default_rng(3)
    photo = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    strength = np.ones((64, 64), np.float32)

    def pixels():
        result = pipeline.edit(photo, strength, "a red barn", model=tiny_sd1, steps=2, seed=4)
        return np.asarray(result.images[0])

    plain = pixels()
    with applied_loras(tiny_sd1, [LoraUse(sd1_file, 0.0)], mode="auto"):
        assert np.array_equal(pixels(), plain)
    with applied_loras(tiny_sd1, [LoraUse(sd1_file, 1.0)], mode="auto"):
        assert not np.array_equal(pixels(), plain)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_merge_and_adapter_agree_and_both_restore(family, tiny_sd1, tiny_sdxl, tmp_path):
    model = tiny_sd1 if family == "sd1" else tiny_sdxl
    targets = make_targets(model, seed=22)
    path = write(tmp_path / "both.safetensors", peft_state(targets))
    before, layout = parameters(model), module_layout(model)
    base = unet_output(model)
    outputs = {}
    for mode in ("merge", "adapter"):
        with applied_loras(model, [LoraUse(path, 0.8, 0.6)], mode=mode):
            outputs[mode] = (unet_output(model), text_output(model))
        after = parameters(model)
        assert list(after) == list(before) and module_layout(model) == layout
        assert all(torch.equal(after[key], value) for key, value in before.items()), mode
    torch.testing.assert_close(outputs["merge"][0], outputs["adapter"][0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(outputs["merge"][1], outputs["adapter"][1], rtol=1e-4, atol=1e-4)
    assert (outputs["merge"][0] - base).abs().max() > 1e-3


@pytest.mark.parametrize("mode", ["merge", "adapter"])
def test_restored_after_an_exception(tiny_sd1, sd1_file, mode):
    before, layout = parameters(tiny_sd1), module_layout(tiny_sd1)
    with pytest.raises(RuntimeError, match="boom"):
        with applied_loras(tiny_sd1, [LoraUse(sd1_file, 1.0)], mode=mode):
            assert really_applied(tiny_sd1, mode)
            raise RuntimeError("boom")
    after = parameters(tiny_sd1)
    assert module_layout(tiny_sd1) == layout
    assert all(torch.equal(after[key], value) for key, value in before.items())


@pytest.mark.parametrize("mode", ["merge", "adapter"])
def test_a_refused_second_file_leaves_nothing_applied(tiny_sd1, sd1_file, tmp_path, mode):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    before, layout = parameters(tiny_sd1), module_layout(tiny_sd1)
    with pytest.raises(DiffdiffError, match="broken.safetensors"):
        with applied_loras(tiny_sd1, [LoraUse(sd1_file), LoraUse(broken)], mode=mode):
            pytest.fail("the block must not run")
    after = parameters(tiny_sd1)
    assert module_layout(tiny_sd1) == layout
    assert all(torch.equal(after[key], value) for key, value in before.items())


def test_no_loras_is_a_no_op(tiny_sd1):
    before = parameters(tiny_sd1)
    with applied_loras(tiny_sd1, []) as applied:
        during = parameters(tiny_sd1)
    assert applied == []
    assert all(torch.equal(during[key], value) for key, value in before.items())


def test_unknown_mode_is_refused(tiny_sd1, sd1_file):
    with pytest.raises(DiffdiffError, match="unknown LoRA mode 'fast'"):
        with applied_loras(tiny_sd1, [LoraUse(sd1_file)], mode="fast"):
            pass


def test_layers_of_different_ranks(tiny_sd1, tmp_path):
    """kohya files may mix ranks (conv layers often lower): both modes apply each layer at its own rank."""
    targets = make_targets(tiny_sd1, seed=23)
    for index, target in enumerate(targets[:3]):
        rank = 2 + index  # 2, 3, 4 against the common rank 4
        target.down, target.up = target.down[:rank], target.up[:, :rank]
    path = write(tmp_path / "ranks.safetensors", kohya_state(targets, sgm=False))
    before = parameters(tiny_sd1)
    outputs = {}
    for mode in ("merge", "adapter"):
        with applied_loras(tiny_sd1, [LoraUse(path, 1.0)], mode=mode):
            outputs[mode] = unet_output(tiny_sd1)
            if mode == "merge":
                during = parameters(tiny_sd1)
    for target in targets[:3]:
        key = f"unet.{target.path}.weight"
        wanted = before[key] + target.delta(before[key].shape)
        torch.testing.assert_close(during[key], wanted, rtol=0, atol=1e-6)
    torch.testing.assert_close(outputs["merge"], outputs["adapter"], rtol=1e-4, atol=1e-4)
