"""Hole pre-fill: every mode touches only the hole, fills it with what the mode promises, and stays fast paths
(per-region boxes, reduced-scale inpainting and blur) honest."""

import cv2
import numpy as np
import pytest

from diffdiff.errors import DiffdiffError
from diffdiff.regions import FILL_MODES, fill_holes

FLAT = (200, 40, 90)
CHANGING = [m for m in FILL_MODES if m != "none"]
SURROUNDING = ["blur", "telea", "navier-stokes"]


def _textured(height=64, width=80, seed=3):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _flat_with_old_content(height, width, hole):
    """A flat FLAT image whose hole holds something very different (bright green), which a fill must drop."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = FLAT
    img[hole] = (0, 255, 0)
    return img


def _assert_filled_with_surroundings(out, img, hole, mode):
    """Outside the hole the input's bytes; inside no old (green) pixel left, and the modes that take the
    surroundings' colour give the flat colour."""
    assert np.array_equal(out[~hole], img[~hole])
    assert (out[hole] != (0, 255, 0)).any(axis=-1).all()
    if mode in SURROUNDING:
        assert np.abs(out.astype(int) - FLAT).max() <= 3


def _map(height=64, width=80):
    """1.0 block, a 0.3 band around it, zeros elsewhere."""
    m = np.zeros((height, width), np.float32)
    m[14:50, 16:64] = 0.3
    m[20:44, 24:56] = 1.0
    return m


@pytest.mark.parametrize("mode", FILL_MODES)
def test_only_the_hole_changes_and_it_changes(mode):
    img, m = _textured(), _map()
    out = fill_holes(img, m, mode, 0.5)
    hole = m >= 0.5
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert out is not img and not np.shares_memory(out, img)
    assert np.array_equal(out[~hole], img[~hole])
    changed = (out[hole] != img[hole]).any(axis=-1).mean()
    if mode == "none":
        assert np.array_equal(out, img)
    else:
        assert changed > 0.9


@pytest.mark.parametrize("mode", CHANGING)
def test_strength_zero_is_never_filled(mode):
    img = _textured()
    m = np.zeros(img.shape[:2], np.float32)
    m[10:30, 10:40] = 1e-6  # barely above zero: in the hole at this threshold
    out = fill_holes(img, m, mode, 1e-6)
    assert np.array_equal(out[m == 0], img[m == 0])
    assert (out[m > 0] != img[m > 0]).any(axis=-1).mean() > 0.9


def test_threshold_excludes_pixels_below_it():
    img, m = _textured(), _map()
    band = (m > 0) & (m < 0.5)
    high = fill_holes(img, m, "neutral", 0.5)
    assert np.array_equal(high[band], img[band])
    assert (high[m == 1.0] == 128).all()
    low = fill_holes(img, m, "neutral", 0.3)
    assert (low[band] == 128).all()
    exact = fill_holes(img, m, "neutral", 1.0)  # threshold 1 is allowed: only full-strength pixels
    assert np.array_equal(exact, high)


def test_noise_is_seeded():
    img, m = _textured(), _map()
    first = fill_holes(img, m, "noise", 0.5, seed=11)
    again = fill_holes(img, m, "noise", 0.5, seed=11)
    other = fill_holes(img, m, "noise", 0.5, seed=12)
    assert np.array_equal(first, again)
    hole = m >= 0.5
    assert (first[hole] != other[hole]).mean() > 0.5
    assert np.array_equal(other[~hole], img[~hole])


def test_noise_is_the_blur_fill_plus_sigma_64():
    height, width = 200, 200
    img = np.full((height, width, 3), 128, np.uint8)
    m = np.zeros((height, width), np.float32)
    m[40:160, 40:160] = 1
    blur = fill_holes(img, m, "blur", 0.5)
    noisy = fill_holes(img, m, "noise", 0.5, seed=5)
    hole = m > 0
    residual = noisy[hole].astype(np.float64) - blur[hole]
    assert abs(residual.mean()) < 2
    assert 58 < residual.std() < 66  # 64, a little less where 0..255 clips it


@pytest.mark.parametrize("mode", SURROUNDING)
def test_flat_surroundings_give_their_colour(mode):
    m = np.zeros((96, 128), np.float32)
    m[30:66, 40:90] = 1
    img = _flat_with_old_content(96, 128, m > 0)
    out = fill_holes(img, m, mode, 0.5)
    assert np.abs(out.astype(int) - FLAT).max() <= 3


@pytest.mark.parametrize("mode", SURROUNDING)
def test_fill_follows_the_colours_on_each_side(mode):
    img = np.zeros((80, 160, 3), np.uint8)
    img[:, :80] = (255, 0, 0)
    img[:, 80:] = (0, 0, 255)
    m = np.zeros((80, 160), np.float32)
    m[20:60, 50:110] = 1
    out = fill_holes(img, m, mode, 0.5).astype(int)
    left, right = out[40, 52], out[40, 107]
    assert left[0] > 180 and left[2] < 75
    assert right[2] > 180 and right[0] < 75


@pytest.mark.parametrize("mode", FILL_MODES)
def test_whole_image_hole(mode):
    img = _textured(48, 40)
    out = fill_holes(img, np.ones((48, 40), np.float32), mode, 1.0, seed=2)
    if mode == "none":
        assert np.array_equal(out, img)
    elif mode == "noise":
        assert abs(out.mean() - 128) < 4 and 55 < out.astype(float).std() < 70
    else:
        assert (out == 128).all()


def test_empty_hole_returns_an_equal_copy():
    img = _textured()
    for mode in FILL_MODES:
        out = fill_holes(img, np.zeros(img.shape[:2], np.float32), mode, 0.5)
        assert np.array_equal(out, img) and out is not img


@pytest.mark.parametrize("mode", CHANGING)
def test_hole_at_the_border(mode):
    m = np.zeros((60, 90), np.float32)
    m[:25, :30] = 1  # top-left corner
    m[20:60, 70:] = 1  # right edge down to the bottom
    img = _flat_with_old_content(60, 90, m > 0)
    out = fill_holes(img, m, mode, 0.5)
    _assert_filled_with_surroundings(out, img, m > 0, mode)


@pytest.mark.parametrize("mode", CHANGING)
def test_far_apart_holes_in_a_big_map(mode):
    """Two small holes at opposite corners (their joint box is over a megapixel) are both filled."""
    m = np.zeros((1000, 1100), np.float32)
    m[5:30, 8:40] = 1
    m[960:990, 1050:1094] = 1
    img = _flat_with_old_content(1000, 1100, m > 0)
    out = fill_holes(img, m, mode, 0.5)
    _assert_filled_with_surroundings(out, img, m > 0, mode)


@pytest.mark.parametrize("mode", ["telea", "navier-stokes"])
def test_big_hole_is_inpainted_at_reduced_scale(mode, monkeypatch):
    seen = []
    real = cv2.inpaint

    def spy(src, mask, radius, flags):
        seen.append(mask.shape)
        return real(src, mask, radius, flags)

    monkeypatch.setattr(cv2, "inpaint", spy)
    m = np.zeros((700, 900), np.float32)
    m[100:600, 150:750] = 1
    img = _flat_with_old_content(700, 900, m > 0)
    img[:50] = _textured(50, 900)  # some texture outside, which must survive bit for bit
    out = fill_holes(img, m, mode, 0.5)
    hole = m > 0
    assert seen and all(max(shape) < 500 for shape in seen)
    assert np.array_equal(out[~hole], img[~hole])
    assert np.abs(out[hole].astype(int) - FLAT).max() <= 3  # none of the old green leaks in


@pytest.mark.parametrize("mode", ["blur", "noise", "telea"])
def test_hole_covering_almost_everything_is_filled(mode):
    """All but a 2-px frame is hole, and the image is long enough for the reduced-scale blur."""
    m = np.ones((300, 1300), np.float32)
    m[:2] = m[-2:] = 0
    m[:, :2] = m[:, -2:] = 0
    img = _flat_with_old_content(300, 1300, m > 0)
    out = fill_holes(img, m, mode, 0.5)
    hole = m > 0
    assert np.array_equal(out[~hole], img[~hole])
    if mode == "noise":
        assert abs(out[hole].astype(float).mean(axis=0) - FLAT).max() < 12
    else:
        assert np.abs(out.astype(int) - FLAT).max() <= 3


@pytest.mark.parametrize("mode", ["", "gaussian", "Blur", None])
def test_unknown_mode(mode):
    with pytest.raises(DiffdiffError, match="navier-stokes"):
        fill_holes(_textured(), _map(), mode, 0.5)


@pytest.mark.parametrize("threshold", [0, 0.0, -0.1, 1.0001, 2, float("nan"), "0.5"])
def test_threshold_out_of_range(threshold):
    with pytest.raises(DiffdiffError, match=r"\(0, 1\]"):
        fill_holes(_textured(), _map(), "blur", threshold)


def test_shape_mismatch():
    with pytest.raises(DiffdiffError, match="does not match"):
        fill_holes(_textured(64, 80), _map(64, 81), "blur", 0.5)
    with pytest.raises(DiffdiffError, match="does not match"):
        fill_holes(_textured(64, 80), _map(64, 80)[None], "blur", 0.5)


def test_pixels_must_be_uint8_rgb():
    with pytest.raises(DiffdiffError, match="uint8 RGB"):
        fill_holes(_textured().astype(np.float32), _map(), "blur", 0.5)
    with pytest.raises(DiffdiffError, match="uint8 RGB"):
        fill_holes(_textured()[..., 0], _map(), "blur", 0.5)
