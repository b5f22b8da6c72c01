"""Inpainting checkpoints (9-channel UNets): found from the weights, fed a mask and a masked-image latent."""

import numpy as np
import pytest
import torch
from PIL import Image

from diffdiff import pipeline
from diffdiff.models import load_model, make_tiny_model
from diffdiff.pipeline.inpainting import InpaintInputs, masked_pixels

FAST = dict(steps=3, cfg=2.0, seed=7)


@pytest.fixture(scope="module")
def tiny_inpainting(tmp_path_factory):
    """The tiny SD1 inpainting model, as a single file (the A1111/ComfyUI layout)."""
    path = make_tiny_model(tmp_path_factory.mktemp("inpainting"), "sd1", single_file=True, inpainting=True)
    return load_model(path, device="cpu")


def picture_and_map():
    rng = np.random.default_rng(2)
    pixels = rng.integers(40, 220, (64, 64, 3), dtype=np.uint8)
    strength = np.zeros((64, 64), np.float32)
    strength[16:48, 16:48] = np.linspace(0.3, 1.0, 32, dtype=np.float32)
    return Image.fromarray(pixels), strength


def test_both_forms_load_as_inpainting_models(tmp_path, tiny_sd1, tiny_inpainting):
    folder = load_model(make_tiny_model(tmp_path / "folder", "sd1", inpainting=True), device="cpu")
    for model in (folder, tiny_inpainting):
        assert model.inpainting and model.latent_channels == 4
        assert model.unet.config.in_channels == 9
    assert not tiny_sd1.inpainting


def test_an_inpainting_edit_keeps_map_zero_pixels_and_says_so(tiny_inpainting):
    image, strength = picture_and_map()
    result = pipeline.edit(image, strength, "a house", model=tiny_inpainting, **FAST)
    after = np.asarray(result.images[0])
    assert np.array_equal(after[strength == 0], np.asarray(image)[strength == 0])
    assert np.abs(after.astype(int) - np.asarray(image).astype(int))[strength > 0].mean() > 1
    assert result.settings["inpainting_model"] is True and result.settings["inpaint_mask"] == "map"


def test_the_masked_image_latent_reaches_the_network(tiny_inpainting, monkeypatch):
    image, strength = picture_and_map()
    normal = pipeline.edit(image, strength, "a house", model=tiny_inpainting, **FAST)
    import diffdiff.pipeline.editing as editing

    monkeypatch.setattr(editing, "masked_pixels", lambda pixels, values: np.zeros_like(pixels))
    blacked = pipeline.edit(image, strength, "a house", model=tiny_inpainting, **FAST)
    assert not np.array_equal(np.asarray(normal.generated[0]), np.asarray(blacked.generated[0]))


def test_the_mask_modes_differ_and_are_recorded(tiny_inpainting):
    image, strength = picture_and_map()
    fixed = pipeline.edit(image, strength, "a house", model=tiny_inpainting, **FAST)
    following = pipeline.edit(image, strength, "a house", model=tiny_inpainting, inpaint_mask="gate", **FAST)
    assert following.settings["inpaint_mask"] == "gate"
    assert not np.array_equal(np.asarray(following.generated[0]), np.asarray(fixed.generated[0]))


def test_generate_with_an_inpainting_model(tiny_inpainting):
    result = pipeline.generate("a house", model=tiny_inpainting, width=64, height=48, steps=2)
    assert result.images[0].size == (64, 48)


def test_a_tiled_inpainting_edit_keeps_map_zero_pixels(tiny_inpainting):
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(40, 220, (128, 192, 3), dtype=np.uint8))
    strength = np.zeros((128, 192), np.float32)
    strength[40:100, 20:170] = 0.8
    result = pipeline.edit(image, strength, "a house", model=tiny_inpainting, tile=64, overlap=16, **FAST)
    assert result.settings["tiles"] > 1
    after = np.asarray(result.images[0])
    assert np.array_equal(after[strength == 0], np.asarray(image)[strength == 0])


class Recording:
    def __init__(self):
        self.concat = None

    def __call__(self, x, sigma, concat=None, **kwargs):
        self.concat = concat
        return x


def test_the_inputs_follow_the_gate_or_the_map():
    clean = torch.full((2, 4, 2, 3), 1.0)
    hole_latent = torch.full((2, 4, 2, 3), -1.0)
    hole = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]).reshape(1, 1, 2, 3)
    active = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]]).reshape(1, 1, 2, 3).expand(2, 1, 2, 3)
    inner = Recording()
    x = torch.zeros(2, 4, 2, 3)
    InpaintInputs(inner, clean, hole_latent, hole, follow_gate=True)(x, torch.ones(2), active_mask=active)
    assert torch.equal(inner.concat[:, :1], active)
    assert torch.equal(inner.concat[:, 1:], (active * -1.0 + (1 - active) * 1.0).expand(2, 4, 2, 3))
    InpaintInputs(inner, clean, hole_latent, hole, follow_gate=False)(x, torch.ones(2), active_mask=active)
    assert torch.equal(inner.concat[:, :1], hole.expand(2, 1, 2, 3))
    assert torch.equal(inner.concat[:, 1:], hole_latent)


def test_masked_pixels_grey_every_non_zero_pixel():
    pixels = np.full((4, 4, 3), 200, np.uint8)
    strength = np.zeros((4, 4), np.float32)
    strength[1, 2] = 0.01
    masked = masked_pixels(pixels, strength)
    assert (masked[1, 2] == 128).all() and (masked[strength == 0] == 200).all()
