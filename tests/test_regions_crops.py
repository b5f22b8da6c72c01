"""Crop geometry: boxes around the map's regions (context, merging, multiples of 8, borders, coverage), when
to crop, the size a crop is edited at, and the resize and paste helpers."""

import itertools

import numpy as np
import pytest

from diffdiff.errors import DiffdiffError
from diffdiff.regions import (
    CROP_AUTO_FRACTION,
    CropBox,
    auto_context,
    edit_size,
    find_crop_boxes,
    paste,
    resize_map,
    resize_pixels,
    should_crop,
)


def _blank(height=200, width=240):
    return np.zeros((height, width), np.float32)


def _contains(box, top, bottom, left, right):
    return box.top <= top and box.bottom >= bottom and box.left <= left and box.right >= right


def _check_layout(boxes, strength, multiple=8):
    """Sorted, inside the image, sides multiples of `multiple` where the image allows, pairwise apart (not
    even touching), and together covering every non-zero pixel."""
    height, width = strength.shape
    assert boxes == sorted(boxes, key=lambda b: (b.top, b.left))
    covered = np.zeros(strength.shape, bool)
    for box in boxes:
        assert 0 <= box.left < box.right <= width and 0 <= box.top < box.bottom <= height
        assert box.width % multiple == 0 or box.width == width
        assert box.height % multiple == 0 or box.height == height
        covered[box.slices] = True
    assert covered[strength > 0].all()
    for a, b in itertools.combinations(boxes, 2):
        apart = a.right < b.left or b.right < a.left or a.bottom < b.top or b.bottom < a.top
        assert apart, (a, b)


def test_crop_box_properties():
    box = CropBox(10, 20, 50, 35)
    assert (box.width, box.height, box.area) == (40, 15, 600)
    assert box.slices == (slice(20, 35), slice(10, 50))
    assert np.zeros((40, 60))[box.slices].shape == (15, 40)
    with pytest.raises(AttributeError):
        box.left = 0


@pytest.mark.parametrize("size, expected", [((10, 10), 32), ((64, 64), 32), ((65, 3), 40), ((100, 40), 56),
                                            ((3, 101), 56), ((200, 200), 104), ((0, 0), 32)])
def test_auto_context(size, expected):
    assert auto_context(*size) == expected


def test_one_region_one_box_with_the_context():
    m = _blank()
    m[80:100, 90:110] = 0.4
    (box,) = find_crop_boxes(m, context=16)
    assert _contains(box, 64, 116, 74, 126)
    assert box.width == 56 and box.height == 56  # 52 rounded up to a multiple of 8
    _check_layout([box], m)


def test_default_context_is_auto_context():
    m = _blank(400, 400)
    m[150:250, 180:220] = 1  # 40 wide, 100 tall → 56 px of context
    (box,) = find_crop_boxes(m)
    assert _contains(box, 150 - 56, 250 + 56, 180 - 56, 220 + 56)
    assert box.height == 216 and box.width == 152


def test_two_far_regions_two_boxes():
    m = _blank(300, 400)
    m[20:40, 20:40] = 1
    m[240:280, 330:370] = 0.2
    boxes = find_crop_boxes(m, context=16)
    assert len(boxes) == 2
    assert _contains(boxes[0], 20, 40, 20, 40) and _contains(boxes[1], 240, 280, 330, 370)
    _check_layout(boxes, m)


def test_two_close_regions_merge():
    m = _blank(300, 400)
    m[100:130, 100:130] = 1
    m[100:130, 150:180] = 1  # 20 px apart: the 16-px contexts overlap
    boxes = find_crop_boxes(m, context=16)
    assert len(boxes) == 1
    assert _contains(boxes[0], 84, 146, 84, 196)
    _check_layout(boxes, m)


def test_chained_merge_swallows_a_third_box():
    """The union of two boxes can reach a third box that neither reached alone."""
    m = _blank(60, 60)
    m[10:20, 10:20] = 1  # box rows 8..22, columns 8..22
    m[20:30, 24:34] = 1  # box rows 18..32, columns 22..36: meets the first; union rows 8..32, columns 8..36
    m[2:8, 30:40] = 1  # box rows 0..10, columns 28..42: misses both, but meets their union
    boxes = find_crop_boxes(m, context=2, multiple=1)
    assert boxes == [CropBox(8, 0, 42, 32)]
    _check_layout(boxes, m, multiple=1)


def test_regions_touching_the_border():
    m = _blank(100, 150)
    m[:10, :12] = 1
    m[95:, 140:] = 1
    boxes = find_crop_boxes(m, context=20)
    assert len(boxes) == 2
    first, last = boxes
    assert (first.left, first.top) == (0, 0)
    assert (last.right, last.bottom) == (150, 100)
    _check_layout(boxes, m)


def test_image_smaller_than_the_multiple_clips_to_the_image():
    m = _blank(21, 30)
    m[10, 15] = 1
    (box,) = find_crop_boxes(m, context=32)
    assert box == CropBox(0, 0, 30, 21)
    (box,) = find_crop_boxes(m, context=0, multiple=64)
    assert box == CropBox(0, 0, 30, 21)


def test_sides_become_multiples_of_8_where_the_image_allows():
    m = _blank(101, 157)
    m[3:9, 150:157] = 1  # at the right edge: must grow leftwards
    m[60:61, 40:43] = 1
    boxes = find_crop_boxes(m, context=1)
    assert len(boxes) == 2
    for box in boxes:
        assert box.width % 8 == 0 and box.height % 8 == 0
    _check_layout(boxes, m)


def test_empty_map_gives_no_boxes():
    assert find_crop_boxes(_blank()) == []
    assert find_crop_boxes(_blank(), context=0) == []


@pytest.mark.parametrize("seed", range(12))
def test_boxes_cover_every_nonzero_pixel(seed):
    rng = np.random.default_rng(seed)
    height, width = rng.integers(20, 260, size=2)
    m = np.zeros((height, width), np.float32)
    for _ in range(rng.integers(1, 12)):
        top, left = rng.integers(0, height), rng.integers(0, width)
        m[top:top + rng.integers(1, 40), left:left + rng.integers(1, 40)] = rng.uniform(0.01, 1)
    m[rng.random((height, width)) < 0.002] = 0.5  # specks
    context = [None, 0, 3, 16][seed % 4]
    multiple = [8, 8, 16, 1][seed % 4]
    _check_layout(find_crop_boxes(m, context=context, multiple=multiple), m, multiple)


def test_a_speckled_map_still_gets_covered():
    m = _blank(150, 150)
    m[::3, ::3] = 1  # 2500 separate single pixels, more than the merge step handles one by one
    boxes = find_crop_boxes(m, context=0)
    _check_layout(boxes, m)


def test_bad_arguments():
    with pytest.raises(DiffdiffError, match="context"):
        find_crop_boxes(_blank(), context=-1)
    with pytest.raises(DiffdiffError, match="2-D"):
        find_crop_boxes(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(DiffdiffError, match="multiple"):
        find_crop_boxes(_blank(), multiple=0)


def test_should_crop():
    assert CROP_AUTO_FRACTION == 0.5
    image = (200, 100)  # width, height: 20000 px
    assert not should_crop([], image)
    assert should_crop([CropBox(0, 0, 40, 40)], image)
    assert should_crop([CropBox(0, 0, 100, 50), CropBox(100, 50, 200, 100)], image)  # exactly half
    assert not should_crop([CropBox(0, 0, 100, 50), CropBox(100, 50, 200, 100), CropBox(0, 60, 8, 68)], image)
    assert not should_crop([CropBox(0, 0, 200, 100)], image)


def test_edit_size_enlarges_small_crops_to_the_native_area():
    assert edit_size(CropBox(0, 0, 200, 200), 512 * 512) == (512, 512)
    width, height = edit_size(CropBox(0, 0, 240, 120), 512 * 512)
    assert width % 8 == 0 and height % 8 == 0
    assert abs(width * height / (512 * 512) - 1) < 0.05
    assert abs(width / height - 2) < 0.05


def test_edit_size_keeps_big_crops_and_caps_the_scale():
    assert edit_size(CropBox(0, 0, 1000, 1000), 512 * 512) == (1000, 1000)
    assert edit_size(CropBox(8, 8, 520, 520), 512 * 512) == (512, 512)  # exactly native: scale 1
    assert edit_size(CropBox(0, 0, 32, 32), 512 * 512) == (128, 128)  # 16× wanted, 4× allowed
    assert edit_size(CropBox(0, 0, 32, 32), 512 * 512, max_scale=2.0) == (64, 64)
    assert edit_size(CropBox(0, 0, 32, 32), 512 * 512, max_scale=1.0) == (32, 32)


def test_edit_size_returns_multiples():
    for box in [CropBox(0, 0, 123, 45), CropBox(0, 0, 7, 3), CropBox(0, 0, 1001, 333), CropBox(5, 5, 6, 6)]:
        for multiple in (8, 64):
            width, height = edit_size(box, 1024 * 1024, multiple=multiple)
            assert width % multiple == 0 and height % multiple == 0
            assert width >= multiple and height >= multiple
    assert edit_size(CropBox(0, 0, 1003, 1005), 512 * 512) == (1000, 1008)
    with pytest.raises(DiffdiffError):
        edit_size(CropBox(0, 0, 10, 10), 0)


def test_paste_writes_only_inside_the_box():
    base = np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    before = base.copy()
    box = CropBox(10, 5, 30, 25)
    patch = np.full((20, 20, 3), 7, np.uint8)
    out = paste(base, patch, box)
    assert np.array_equal(base, before)  # the base itself is left alone
    assert (out[box.slices] == 7).all()
    outside = np.ones((40, 60), bool)
    outside[box.slices] = False
    assert np.array_equal(out[outside], base[outside])
    maps = paste(np.zeros((40, 60), np.float32), np.ones((20, 20), np.float32), box)
    assert maps.sum() == 400 and maps.dtype == np.float32


def test_paste_rejects_a_wrong_patch_or_box():
    base = np.zeros((40, 60, 3), np.uint8)
    with pytest.raises(DiffdiffError, match="shape"):
        paste(base, np.zeros((20, 21, 3), np.uint8), CropBox(10, 5, 30, 25))
    with pytest.raises(DiffdiffError, match="fit"):
        paste(base, np.zeros((20, 20, 3), np.uint8), CropBox(50, 5, 70, 25))


@pytest.mark.parametrize("size", [(40, 30), (160, 120), (20, 15), (37, 90), (100, 11)])
def test_resize_pixels_keeps_dtype_and_shape(size):
    pixels = np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    out = resize_pixels(pixels, size)
    assert out.dtype == np.uint8 and out.shape == (size[1], size[0], 3)
    if size == (40, 30):
        assert np.array_equal(out, pixels) and out is not pixels


def test_resize_pixels_shrinks_by_averaging():
    pixels = np.zeros((40, 40, 3), np.uint8)
    pixels[::2, ::2] = 255
    pixels[1::2, 1::2] = 255
    assert np.abs(resize_pixels(pixels, (10, 10)).astype(int) - 128).max() <= 1  # a checkerboard → grey


@pytest.mark.parametrize("size", [(40, 30), (160, 120), (20, 15), (37, 90)])
def test_resize_map_keeps_dtype_range_and_far_zeros(size):
    values = np.zeros((30, 40), np.float32)
    values[:10, :10] = 1.0
    values[12:14, :3] = 0.5
    out = resize_map(values, size)
    assert out.dtype == np.float32 and out.shape == (size[1], size[0])
    assert out.min() >= 0 and out.max() <= 1
    width, height = size
    assert (out[height // 2:, width // 2:] == 0).all()  # far from every non-zero input pixel
    if size == (40, 30):
        assert np.array_equal(out, values) and out is not values


def test_resize_rejects_an_empty_target():
    with pytest.raises(DiffdiffError):
        resize_map(np.zeros((4, 4), np.float32), (0, 4))
    with pytest.raises(DiffdiffError):
        resize_pixels(np.zeros((4, 4, 3), np.uint8), (4, -1))
