"""How a single file loads (the behaviour that makes it fast, not its speed): no random initialisation of any
network, each weight cast once from the file, the text encoders built only when a prompt needs them."""

from __future__ import annotations

import pytest
import torch

from diffdiff.models import load_model, make_tiny_model
from diffdiff.models.tiny import build_tiny_components, checkpoint_state, write_checkpoint


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """{"fp32": the tiny SD1 single file, "fp16": the same networks stored in fp16}."""
    root = tmp_path_factory.mktemp("loading-speed")
    fp16 = write_checkpoint(root / "tiny-fp16.safetensors",
                            *checkpoint_state(build_tiny_components("sd1"), "sd1", torch.float16))
    return {"fp32": make_tiny_model(root, "sd1", single_file=True), "fp16": fp16}


class RandomFills:
    """Counts random fills (normal_, uniform_) of tensors that hold memory (not meta tensors)."""

    def __init__(self, monkeypatch):
        self.count = 0
        for name in ("normal_", "uniform_"):
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counting(original))

    def _counting(self, original):
        def fill(tensor, *args, **kwargs):
            if tensor.device.type != "meta":
                self.count += 1
            return original(tensor, *args, **kwargs)
        return fill


def test_loading_initialises_no_weights_at_random(tiny_files, monkeypatch):
    from transformers import CLIPTextModel

    fills = RandomFills(monkeypatch)
    model = load_model(tiny_files["fp32"], device="cpu")
    model.encode_prompt("a red barn")  # the text encoder is built here
    assert fills.count == 0
    CLIPTextModel(model.text_encoders[0].config)  # the counter does see a plain construction's fills
    assert fills.count > 0


def test_text_encoders_are_built_on_first_use_and_match_an_eager_load(tiny_files, tmp_path):
    model = load_model(tiny_files["fp32"], device="cpu")
    assert not model.text_encoders_loaded
    folder = load_model(make_tiny_model(tmp_path / "sd1", "sd1"), device="cpu")  # loaded by diffusers
    lazy = model.encode_prompt("a red barn", "blurry")
    assert model.text_encoders_loaded
    eager = folder.encode_prompt("a red barn", "blurry")
    assert torch.equal(lazy.embeds, eager.embeds) and torch.equal(lazy.negative_embeds, eager.negative_embeds)


def test_an_fp16_file_loads_as_its_weights_cast_once(tiny_files):
    built = build_tiny_components("sd1")
    model = load_model(tiny_files["fp16"], device="cpu")
    assert model.unet.dtype == torch.float32
    for name, module in (("unet", model.unet), ("vae", model.vae), ("text_encoder", model.text_encoders[0])):
        expected = built[name].state_dict()
        for key, tensor in module.state_dict().items():
            assert torch.equal(tensor, expected[key].half().float()), f"{name} {key}"


def test_a_compiled_unet_gives_the_eager_result(tiny_files):
    """The compiled path through the denoiser chain (graph capture of our calls, kwargs, dtype lookups) gives
    the eager pixels. The "aot_eager" backend runs the captured graph without inductor's code generation,
    which is torch's own and takes about 45 s for even the tiny UNet on 2 cores."""
    import numpy as np
    from PIL import Image

    from diffdiff import pipeline

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    strength = np.ones((48, 64), np.float32)
    strength[:, :32] = 0
    eager = load_model(tiny_files["fp32"], device="cpu")
    compiled = load_model(tiny_files["fp32"], device="cpu")
    compiled.compile(backend="aot_eager")
    assert compiled.compiled and not eager.compiled
    first = pipeline.edit(image, strength, "a red barn", model=eager, steps=2, seed=1)
    counters = torch._dynamo.utils.counters
    counters.clear()
    second = pipeline.edit(image, strength, "a red barn", model=compiled, steps=2, seed=1)
    assert counters["stats"]["unique_graphs"] > 0  # the run went through the compiled UNet
    assert np.array_equal(np.asarray(first.images[0]), np.asarray(second.images[0]))
    assert not np.array_equal(np.asarray(second.images[0])[:, 32:], np.asarray(image)[:, 32:])


def test_a_missing_text_encoder_weight_is_refused_at_load_not_at_the_first_prompt(tiny_files, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from diffdiff.errors import DiffdiffError

    state = load_file(str(tiny_files["fp32"]))
    with safe_open(str(tiny_files["fp32"]), "pt") as handle:
        metadata = handle.metadata()
    dropped = next(key for key in state
                   if key.startswith("cond_stage_model.") and key.endswith("mlp.fc1.weight"))
    del state[dropped]
    broken = write_checkpoint(tmp_path / "no-fc1.safetensors", state, metadata)
    with pytest.raises(DiffdiffError, match=r"text_encoder.*mlp\.fc1\.weight") as error:
        load_model(broken, device="cpu")
    assert "\n" not in str(error.value)
