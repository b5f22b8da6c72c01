"""Map operations against their formulas: tone, blur, feather, grow/shrink, combine, resize."""

import numpy as np
import pytest

from diffdiff.errors import DiffdiffError
from diffdiff.maps import (
    blur,
    brightness_contrast,
    clamp,
    combine,
    feather,
    grow,
    invert,
    levels,
    resize,
    shrink,
    threshold,
)

RNG = np.random.default_rng(7)


def _square(size=64, top=20, left=18, side=24):
    m = np.zeros((size, size), np.float32)
    m[top:top + side, left:left + side] = 1.0
    return m


def _painted_blob():
    """An irregular painted selection: union of discs plus a thin stroke."""
    yy, xx = np.mgrid[:80, :96]
    m = ((yy - 30) ** 2 + (xx - 30) ** 2 < 15 ** 2) | ((yy - 50) ** 2 + (xx - 60) ** 2 < 12 ** 2)
    m = m.astype(np.float32)
    m[60:62, 10:80] = 1.0
    return m


@pytest.mark.parametrize("radius", [1, 4, 9])
def test_feather_outward_never_lowers_a_full_pixel(radius):
    m = _painted_blob()
    m[5:9, 5:9] = 0.4  # a grey patch too
    out = feather(m, radius)
    assert np.all(out[m == 1.0] == 1.0)
    assert np.all(out >= m)  # nothing is lowered at all
    assert out.min() >= 0 and out.max() <= 1
    # and it is soft outside: some values strictly between 0 and 1 appear beyond the painted edge
    ring = (grow(m, radius + 1) > 0) & (m == 0)
    assert np.any((out[ring] > 0.05) & (out[ring] < 0.95))


def test_feather_soft_band_ends_near_twice_the_radius():
    m = _square()
    out = feather(m, 6)
    row = out[32]
    right_edge = 18 + 24 - 1
    assert row[right_edge] == 1.0
    assert 0.3 < row[right_edge + 6] < 0.7  # about half strength at the radius
    assert row[right_edge + 2 * 6 + 2] < 1e-3  # gone past twice the radius


def _edge_positions(m, row):
    on = np.where(m[row] > 0.5)[0]
    return on[0], on[-1]


@pytest.mark.parametrize("r", [1, 3, 7])
def test_grow_and_shrink_move_edges_by_r(r):
    m = _square()
    left, right = _edge_positions(m, 32)
    top = np.where(m[:, 30] > 0.5)[0][0]
    g_left, g_right = _edge_positions(grow(m, r), 32)
    s_left, s_right = _edge_positions(shrink(m, r), 32)
    assert abs((left - g_left) - r) <= 1 and abs((g_right - right) - r) <= 1
    assert abs((s_left - left) - r) <= 1 and abs((right - s_right) - r) <= 1
    assert abs((top - np.where(grow(m, r)[:, 30] > 0.5)[0][0]) - r) <= 1


def test_grow_is_grey_level_dilation():
    m = np.zeros((9, 9), np.float32)
    m[4, 4] = 0.6
    out = grow(m, 2)
    assert out[4, 6] == np.float32(0.6) and out[4, 7] == 0.0 and out.max() == np.float32(0.6)


@pytest.mark.parametrize("sigma", [0.7, 3.0, 12.0])
def test_blur_keeps_the_mean(sigma):
    m = (RNG.random((50, 70)) > 0.7).astype(np.float32)
    out = blur(m, sigma)
    assert abs(float(out.mean()) - float(m.mean())) < 1e-5
    assert out.std() < m.std()  # it did blur


def test_combine_modes_match_formulas():
    a, b = RNG.random((5, 6)).astype(np.float32), RNG.random((5, 6)).astype(np.float32)
    expected = {
        "max": np.maximum(a, b), "min": np.minimum(a, b), "multiply": a * b,
        "add": np.clip(a + b, 0, 1), "subtract": np.clip(a - b, 0, 1), "screen": 1 - (1 - a) * (1 - b),
    }
    for mode, want in expected.items():
        assert np.allclose(combine(a, b, mode), want, atol=1e-6), mode


def test_combine_errors():
    with pytest.raises(DiffdiffError, match="different sizes"):
        combine(np.zeros((4, 4)), np.zeros((4, 5)), "max")
    with pytest.raises(DiffdiffError, match="screen"):
        combine(np.zeros((4, 4)), np.zeros((4, 4)), "overlay")


def test_tone_operations():
    m = np.array([[0.0, 0.2, 0.5, 0.8, 1.0]], np.float32)
    assert np.allclose(invert(m), 1 - m)
    assert np.allclose(levels(m, black=0.2, white=0.8), [[0, 0, 0.5, 1, 1]])
    assert np.allclose(levels(m, gamma=2.0), np.sqrt(m))
    assert np.allclose(threshold(m, 0.5), [[0, 0, 1, 1, 1]])
    assert np.allclose(clamp(m, 0.1, 0.6), np.clip(m, 0.1, 0.6))
    with pytest.raises(DiffdiffError, match="black < white"):
        levels(m, black=0.7, white=0.3)


def test_brightness_contrast_as_pil_enhance():
    m = np.array([[0.1, 0.3, 0.5]], np.float32)
    assert np.allclose(brightness_contrast(m, brightness=2.0), [[0.2, 0.6, 1.0]])
    mean = m.mean()
    assert np.allclose(brightness_contrast(m, contrast=1.5), mean + 1.5 * (m - mean))
    assert np.allclose(brightness_contrast(m, contrast=0.0), mean)


def test_resize_area_when_shrinking_and_clamped_when_enlarging():
    m = np.zeros((8, 8), np.float32)
    m[:, ::2] = 1.0  # stripes: area averaging gives exactly 0.5
    small = resize(m, (4, 4))
    assert np.allclose(small, 0.5)
    step = np.zeros((8, 8), np.float32)
    step[:, 4:] = 1.0
    for method in ("bicubic", "lanczos"):
        big = resize(step, (32, 32), enlarge=method)
        assert big.shape == (32, 32) and big.min() >= 0 and big.max() <= 1
        assert big[:, 0].max() < 0.05 and big[:, -1].min() > 0.95
    mixed = resize(m, (16, 4))
    assert mixed.shape == (16, 4) and np.allclose(mixed, 0.5, atol=1e-6)


def test_bad_parameters():
    with pytest.raises(DiffdiffError, match="pixels"):
        grow(np.zeros((4, 4)), -1)
    with pytest.raises(DiffdiffError, match="sigma"):
        blur(np.zeros((4, 4)), -2)
    with pytest.raises(DiffdiffError, match="NaN"):
        invert(np.full((2, 2), np.nan))
