"""edit/generate on a tiny random SD1 model: preservation, padding, batches, alpha, metadata, tiles."""

import json

import numpy as np
import pytest
from PIL import Image

from diffdiff import pipeline
from diffdiff.errors import DiffdiffError
from diffdiff.imageio import read_png_text

WIDTH, HEIGHT = 90, 70  # neither a multiple of 8: exercises padding and cropping


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 255, WIDTH)[None, :, None].repeat(HEIGHT, 0).repeat(3, 2)
    noise = rng.normal(0, 25, (HEIGHT, WIDTH, 3))
    return Image.fromarray(np.clip(ramp + noise, 0, 255).astype(np.uint8))


def _half_map(keep_columns=45):
    strength = np.ones((HEIGHT, WIDTH), np.float32)
    strength[:, :keep_columns] = 0.0
    return strength


def test_map_zero_pixels_are_bit_identical_and_size_is_kept(tiny_sd1, photo):
    result = pipeline.edit(photo, _half_map(), "a red barn", model=tiny_sd1, steps=3, seed=1)
    out = np.asarray(result.images[0])
    original = np.asarray(photo)
    assert result.images[0].size == (WIDTH, HEIGHT)
    assert np.array_equal(out[:, :45], original[:, :45])
    assert np.abs(out[:, 50:].astype(int) - original[:, 50:]).mean() > 5  # the map-1 side did change
    assert result.opacities[0].shape == (HEIGHT, WIDTH)
    assert np.all(result.opacities[0][:, :45] == 0.0)


def test_without_composite_map_zero_pixels_go_through_the_vae(tiny_sd1, photo):
    result = pipeline.edit(photo, _half_map(), "a red barn", model=tiny_sd1, steps=3, seed=1, composite=False)
    out = np.asarray(result.images[0])
    assert result.opacities is None
    assert result.images[0].size == (WIDTH, HEIGHT)
    assert not np.array_equal(out[:, :45], np.asarray(photo)[:, :45])


def test_batch_item_equals_the_same_seed_alone(tiny_sd1, photo):
    both = pipeline.edit(photo, _half_map(), "a boat", model=tiny_sd1, steps=3, seed=10, batch=2,
                         sampler="euler_ancestral")
    alone = pipeline.edit(photo, _half_map(), "a boat", model=tiny_sd1, steps=3, seed=11,
                          sampler="euler_ancestral")
    first = pipeline.edit(photo, _half_map(), "a boat", model=tiny_sd1, steps=3, seed=10,
                          sampler="euler_ancestral")
    batch_second = np.asarray(both.generated[1]).astype(int)
    assert np.abs(batch_second - np.asarray(alone.generated[0])).max() <= 1
    assert np.abs(np.asarray(both.generated[0]).astype(int) - np.asarray(first.generated[0])).max() <= 1
    assert np.abs(batch_second - np.asarray(both.generated[0])).mean() > 1  # seeds differ, images differ


def test_alpha_output_is_the_generated_image_with_opacity_alpha(tiny_sd1, photo):
    result = pipeline.edit(photo, _half_map(), "a tree", model=tiny_sd1, steps=2, alpha=True)
    layer = result.images[0]
    assert layer.mode == "RGBA" and layer.size == (WIDTH, HEIGHT)
    rgba = np.asarray(layer)
    assert np.all(rgba[:, :45, 3] == 0)
    assert rgba[:, 50:, 3].mean() > 0
    assert np.array_equal(rgba[..., :3], np.asarray(result.generated[0]))
    with pytest.raises(DiffdiffError, match="composite"):
        pipeline.edit(photo, _half_map(), "a tree", model=tiny_sd1, steps=2, alpha=True, composite=False)


def test_saved_png_carries_parameters_and_settings(tiny_sd1, photo, tmp_path):
    result = pipeline.edit(photo, 0.5, "a cat, on a mat", model=tiny_sd1, steps=2, seed=3, batch=2,
                           negative="blurry", cfg=5.5, scheduler="karras")
    paths = result.save(tmp_path / "out.png")
    assert [p.name for p in paths] == ["out.png", "out-1.png"]
    second = read_png_text(paths[1])
    lines = second["parameters"].split("\n")
    assert lines[0] == "a cat, on a mat" and lines[1] == "Negative prompt: blurry"
    assert "Steps: 2, Sampler: Euler, Schedule type: Karras, CFG scale: 5.5, Seed: 4, Size: 90x70" in lines[2]
    assert f"Model hash: {tiny_sd1.short_hash}" in lines[2]
    settings = json.loads(second["diffdiff"])
    assert settings["seed"] == 4 and settings["batch_index"] == 1 and settings["map"] == "constant 0.5"
    assert Image.open(paths[1]).size == (WIDTH, HEIGHT)


def test_all_zero_map_costs_no_network_call_and_keeps_the_image(tiny_sd1, photo):
    stats = {}
    result = pipeline.edit(photo, 0.0, "anything", model=tiny_sd1, steps=4, stats=stats)
    assert stats["network_calls"] == 0 and stats["tile_evaluations"] == 0 and stats["sampler_calls"] == 4
    assert stats["tile_evaluations_without_skip"] == 4
    assert stats["steps"] == 4 and stats["tiles"] == 1 and stats["seconds"] > 0
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(photo))


def test_tiled_edit_skips_idle_tiles(tiny_sd1):
    image = Image.new("RGB", (192, 64), (120, 160, 200))
    strength = np.zeros((64, 192), np.float32)
    strength[:, 160:] = 1.0  # only the right end changes
    stats = {}
    result = pipeline.edit(image, strength, "sky", model=tiny_sd1, steps=2, tile=64, overlap=16, stats=stats)
    assert stats["tiles"] > 1
    # latent 24 wide, 8-wide tiles with overlap 2: only tiles reaching column 20+ have active pixels
    assert 0 < stats["tile_evaluations"] < stats["tile_evaluations_without_skip"]
    assert stats["tile_evaluations_without_skip"] == 2 * stats["tiles"] and stats["sampler_calls"] == 2
    # the active tiles of a step go to the network together (--tile-batch 4): one batched call per step
    assert stats["network_calls"] == 2
    assert np.array_equal(np.asarray(result.images[0])[:, :150], np.asarray(image)[:, :150])


def test_tiled_counts_are_per_image_and_include_steps_the_gate_skipped(tiny_sd1):
    image = Image.new("RGB", (192, 64), (120, 160, 200))
    stats = {}
    # a map that never exceeds 0.4: the gate skips the early steps whole, tiles or not
    pipeline.edit(image, 0.4, "sky", model=tiny_sd1, steps=4, tile=64, overlap=16, batch=2, stats=stats)
    assert stats["tiles"] > 1
    assert stats["tile_evaluations_without_skip"] == 4 * stats["tiles"]
    assert stats["tile_evaluations"] % stats["tiles"] == 0  # a constant map: every tile of a step, or none
    assert 0 < stats["tile_evaluations"] < stats["tile_evaluations_without_skip"]


def test_spot_counts_without_skip_are_gate_calls_times_tiles(tiny_sd1):
    image = Image.new("RGB", (192, 64), (120, 160, 200))
    stats = {}  # spot windows vary per call; "without skip" still counts every gate call × planned tiles
    pipeline.edit(image, 0.4, "sky", model=tiny_sd1, steps=4, tile=64, overlap=16, blend="spot", stats=stats)
    assert stats["tiles"] > 1 and stats["tile_evaluations_without_skip"] == 4 * stats["tiles"]
    assert 0 < stats["tile_evaluations"] < stats["tile_evaluations_without_skip"]


def test_generate_returns_images_of_the_asked_size(tiny_sd1):
    result = pipeline.generate("a house", model=tiny_sd1, width=50, height=42, steps=2, batch=2)
    assert [image.size for image in result.images] == [(50, 42), (50, 42)]
    assert result.settings["mode"] == "generate" and result.opacities is None
    assert "Denoising strength" not in result.parameters(0) and "Seed: 1" in result.parameters(1)


def test_bad_inputs_fail_before_the_model_is_used(photo):
    not_a_model = object()
    with pytest.raises(DiffdiffError, match="aspect"):
        pipeline.edit(photo, np.zeros((10, 10), np.float32), "x", model=not_a_model)
    with pytest.raises(DiffdiffError, match="NaN"):
        pipeline.edit(photo, np.full((HEIGHT, WIDTH), np.nan, np.float32), "x", model=not_a_model)
    with pytest.raises(DiffdiffError, match="range|lie in"):
        pipeline.edit(photo, np.full((HEIGHT, WIDTH), 1.5, np.float32), "x", model=not_a_model)
    with pytest.raises(DiffdiffError, match="euler_ancestral"):
        pipeline.edit(photo, 0.5, "x", model=not_a_model, sampler="eulr")
    with pytest.raises(DiffdiffError, match="exact, comfy, mask"):
        pipeline.edit(photo, 0.5, "x", model=not_a_model, gate="hard")


def test_tiling_plan_follows_the_documented_rules():
    from diffdiff.pipeline.tiling import plan_tiling
    from diffdiff.request import Tiling

    def plan(width, height, native=512, **options):
        return plan_tiling(Tiling(**options), width, height, native_size=native, factor=8)

    off = plan(4096, 4096, tile="off", vae_tile="off")
    assert off.network_tile is None and off.vae_tile is None
    native = plan(512, 512)
    assert native.network_tile is None and native.vae_tile is None
    # 1536 px = 192 latent > 1.5 × 64: tiles of the native 64 latent px, a quarter overlap; 1.5 MP > 1 MP
    large = plan(1536, 1024)
    assert (large.network_tile, large.network_overlap, large.vae_tile, large.vae_overlap) == (64, 16, 512, 64)
    assert plan(1536, 1024, native=1024).network_tile is None  # 192 latent ≤ 1.5 × 128: untiled network
    # the network and the VAE are tiled independently
    sized = plan(1024, 1024, tile=256)
    assert (sized.network_tile, sized.network_overlap, sized.vae_tile) == (32, 8, None)
    vae_only = plan(512, 512, vae_tile=128)
    assert (vae_only.network_tile, vae_only.vae_tile, vae_only.vae_overlap) == (None, 128, 64)
    assert plan(4096, 4096, tile="off").vae_tile == 512 and plan(4096, 4096, vae_tile="off").vae_tile is None
    upscale = plan_tiling(Tiling(), 256, 256, native_size=512, factor=8, always_tile_network=True)
    assert upscale.network_tile == 64  # upscale-refine: native tiles even for a small image


@pytest.mark.parametrize("family", ["sdxl", "sd2-v"])
def test_other_families_edit_and_generate(family, tmp_path):
    from diffdiff.models import load_model, make_tiny_model

    model = load_model(make_tiny_model(tmp_path / family, family), device="cpu")
    image = Image.new("RGB", (72, 60), (100, 150, 200))
    strength = np.zeros((60, 72), np.float32)
    strength[:, 36:] = 1.0
    result = pipeline.edit(image, strength, "a field", model=model, steps=2, cfg=3.0)
    out = np.asarray(result.images[0])
    assert result.images[0].size == (72, 60)
    assert np.array_equal(out[:, :36], np.asarray(image)[:, :36])
    assert result.settings["family"] == family
    made = pipeline.generate("a field", model=model, width=40, height=24, steps=1)
    assert made.images[0].size == (40, 24)


@pytest.mark.parametrize("dtype, vae_dtype", [("bf16", "bfloat16"), ("fp16", "float32")])
def test_half_precision_keeps_map_zero_pixels_and_stays_close_to_fp32(tiny_sd1, photo, tmp_path_factory,
                                                                     dtype, vae_dtype):
    import torch

    from diffdiff.models import load_model, make_tiny_model

    folder = make_tiny_model(tmp_path_factory.mktemp(f"tiny-{dtype}") / "sd1", "sd1")
    half = load_model(folder, device="cpu", dtype=dtype)
    assert half.unet.dtype != torch.float32
    assert half.vae.dtype == getattr(torch, vae_dtype)  # fp16 VAEs overflow: an fp16 model keeps it in fp32
    low = pipeline.edit(photo, _half_map(), "a red barn", model=half, steps=3, seed=1)
    full = pipeline.edit(photo, _half_map(), "a red barn", model=tiny_sd1, steps=3, seed=1)
    out_low, out_full = np.asarray(low.images[0]).astype(int), np.asarray(full.images[0]).astype(int)
    assert np.array_equal(out_low[:, :45], np.asarray(photo)[:, :45])
    assert np.abs(out_low - out_full).mean() < 12  # the same picture up to half-precision rounding
    assert not np.array_equal(out_low, out_full)  # but the network really ran in half precision
