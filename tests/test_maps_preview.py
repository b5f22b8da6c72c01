"""Preview pictures: the ramp's colours land where the map says, with a legend below."""

import numpy as np
import pytest
from PIL import Image

from diffdiff.errors import DiffdiffError
from diffdiff.maps import colour_ramp, preview_image


def test_ramp_runs_blue_to_red_through_yellow():
    low, mid, high = colour_ramp(np.array([0.0, 0.5, 1.0]))
    assert low[2] > low[0] + 80  # blue
    assert mid[0] > 200 and mid[1] > 200 and mid[2] < 160  # yellow
    assert high[0] > high[2] + 80 and high[0] > high[1] + 80  # red
    lightness = colour_ramp(np.linspace(0, 0.5, 6)).astype(float) @ [0.299, 0.587, 0.114]
    assert np.all(np.diff(lightness) > 0)  # lighter towards the middle: readable without colour


def test_preview_tints_keep_blue_and_change_red_and_adds_a_legend():
    image = Image.new("RGB", (40, 20), (128, 128, 128))
    strength = np.zeros((10, 20), np.float32)  # half the size, same aspect: resized
    strength[:, 10:] = 1.0
    picture = np.asarray(preview_image(image, strength, opacity=0.6)).astype(int)
    assert picture.shape[1] == 40 and picture.shape[0] > 20
    keep, change = picture[5, 5], picture[5, 35]
    assert keep[2] > keep[0] + 30 and change[0] > change[2] + 30
    legend = picture[20:]
    assert (legend == 255).all(axis=-1).any() and not (legend == 255).all()


def test_preview_refuses_other_aspect_ratio_and_bad_opacity():
    image = Image.new("RGB", (40, 20))
    with pytest.raises(DiffdiffError, match="aspect ratio"):
        preview_image(image, np.zeros((20, 20)))
    with pytest.raises(DiffdiffError, match="opacity"):
        preview_image(image, np.zeros((20, 40)), opacity=2)
