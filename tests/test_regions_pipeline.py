"""Pre-fill and crop & stitch through the edit pipeline (the tiny SD1 model; its native area is 512²)."""

import numpy as np
import pytest
from PIL import Image

from diffdiff import pipeline
from diffdiff.errors import DiffdiffError
from diffdiff.regions import FILL_MODES

FAST = dict(steps=3, cfg=1.0, seed=11)


def scene(width: int, height: int) -> Image.Image:
    """A textured picture: a smooth gradient plus seeded noise, so neighbouring pixels differ."""
    rng = np.random.default_rng(4)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 200 / width, ys * 200 / height, np.full_like(xs, 90.0)], -1)
    return Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))


def square_map(width: int, height: int, boxes) -> np.ndarray:
    strength = np.zeros((height, width), np.float32)
    for left, top, size in boxes:
        strength[top:top + size, left:left + size] = 1.0
    return strength


@pytest.mark.parametrize("mode", [mode for mode in FILL_MODES if mode != "none"])
def test_each_fill_mode_changes_the_hole_and_keeps_map_zero_pixels(tiny_sd1, mode):
    image = scene(64, 64)
    strength = square_map(64, 64, [(16, 16, 32)])
    plain = pipeline.edit(image, strength, "a lake", model=tiny_sd1, **FAST)
    filled = pipeline.edit(image, strength, "a lake", model=tiny_sd1, fill=mode, **FAST)
    before, after = np.asarray(image), np.asarray(filled.images[0])
    keep = strength == 0
    assert np.array_equal(after[keep], before[keep])
    assert np.abs(after.astype(int) - np.asarray(plain.images[0]).astype(int))[~keep].max() > 0
    assert filled.settings["fill"] == mode and filled.settings["fill_threshold"] == 0.9


def test_a_fill_threshold_above_the_map_fills_nothing(tiny_sd1):
    image = scene(64, 64)
    strength = square_map(64, 64, [(16, 16, 32)]) * 0.5
    plain = pipeline.edit(image, strength, "a lake", model=tiny_sd1, **FAST)
    unfilled = pipeline.edit(image, strength, "a lake", model=tiny_sd1, fill="neutral", fill_threshold=0.6,
                             **FAST)
    assert np.array_equal(np.asarray(plain.images[0]), np.asarray(unfilled.images[0]))


def test_a_small_map_on_a_large_image_is_edited_as_a_crop_and_outside_pixels_stay(tiny_sd1):
    image = scene(1024, 768)
    strength = square_map(1024, 768, [(600, 300, 48)])
    result = pipeline.edit(image, strength, "a lake", model=tiny_sd1, context=8, **FAST)
    assert len(result.settings["crops"]) == 1
    box, size = result.settings["crops"][0].split("@")
    assert box == "592,292,64x64" and size == "256x256"  # 64² enlarged 4× (the most), towards 512²
    after, before = np.asarray(result.images[0]), np.asarray(image)
    keep = strength == 0
    assert np.array_equal(after[keep], before[keep])
    assert np.abs(after.astype(int) - before.astype(int))[~keep].mean() > 1
    assert (result.settings["width"], result.settings["height"]) == (1024, 768)
    assert result.images[0].size == (1024, 768)


def test_crop_off_edits_the_whole_image(tiny_sd1):
    image = scene(520, 512)  # just above the native area
    strength = square_map(520, 512, [(100, 100, 32)])
    result = pipeline.edit(image, strength, "a lake", model=tiny_sd1, crop="off", **FAST)
    assert "crops" not in result.settings
    cropped = pipeline.edit(image, strength, "a lake", model=tiny_sd1, **FAST)
    assert len(cropped.settings["crops"]) == 1


def test_an_image_no_larger_than_the_native_area_is_not_cropped_automatically(tiny_sd1):
    image = scene(256, 256)
    strength = square_map(256, 256, [(100, 100, 16)])
    assert "crops" not in pipeline.edit(image, strength, "a lake", model=tiny_sd1, **FAST).settings
    forced = pipeline.edit(image, strength, "a lake", model=tiny_sd1, crop="on", context=8, **FAST)
    assert len(forced.settings["crops"]) == 1


def test_separate_regions_and_the_border(tiny_sd1):
    image = scene(768, 640)
    strength = square_map(768, 640, [(0, 0, 24), (736, 608, 32), (400, 300, 16)])
    result = pipeline.edit(image, strength, "a lake", model=tiny_sd1, context=8, batch=2, **FAST)
    boxes = [crop.split("@")[0] for crop in result.settings["crops"]]
    assert len(boxes) == 3 and boxes[0].startswith("0,0,")  # the corner region's box is clipped at 0, 0
    left, top, extent = boxes[2].split(",")
    width, height = (int(side) for side in extent.split("x"))
    assert (int(left) + width, int(top) + height) == (768, 640)  # and the other corner's at the far border
    keep = strength == 0
    for item in result.images:
        after = np.asarray(item)
        assert np.array_equal(after[keep], np.asarray(image)[keep])
        assert np.abs(after.astype(int) - np.asarray(image).astype(int))[~keep].mean() > 1
    assert not np.array_equal(np.asarray(result.images[0]), np.asarray(result.images[1]))  # seeds differ


def test_close_regions_share_one_crop(tiny_sd1):
    image = scene(768, 640)
    strength = square_map(768, 640, [(300, 300, 24), (340, 300, 24)])
    result = pipeline.edit(image, strength, "a lake", model=tiny_sd1, context=16, **FAST)
    assert len(result.settings["crops"]) == 1


def test_a_crop_runs_tiled(tiny_sd1):
    image = scene(768, 768)
    strength = square_map(768, 768, [(200, 200, 40)])
    result = pipeline.edit(image, strength, "a lake", model=tiny_sd1, context=8, tile=96, overlap=16, **FAST)
    assert result.settings["tiles"] > 1
    keep = strength == 0
    assert np.array_equal(np.asarray(result.images[0])[keep], np.asarray(image)[keep])


def test_alpha_and_raw_outputs_of_a_crop(tiny_sd1):
    image = scene(768, 640)
    strength = square_map(768, 640, [(300, 300, 40)])
    layer = pipeline.edit(image, strength, "a lake", model=tiny_sd1, alpha=True, context=8, **FAST)
    alpha = np.asarray(layer.images[0])[..., 3]
    assert alpha[strength == 0].max() == 0 and alpha[strength > 0].min() > 0
    raw = pipeline.edit(image, strength, "a lake", model=tiny_sd1, composite=False, context=8, **FAST)
    outside = np.ones(strength.shape, bool)
    outside[260:380, 260:380] = False  # generously beyond the crop box
    assert np.array_equal(np.asarray(raw.images[0])[outside], np.asarray(image)[outside])


def test_bad_region_options_are_one_line_errors():
    from diffdiff.request import Region

    with pytest.raises(DiffdiffError, match="fill mode"):
        Region(fill="inpaint")
    with pytest.raises(DiffdiffError, match="fill threshold"):
        Region(fill_threshold=0)
    with pytest.raises(DiffdiffError, match="crop mode"):
        Region(crop="yes")
    with pytest.raises(DiffdiffError, match="context"):
        Region(context=-4)
