"""Maps made from numbers: solid, gradients, fans and region tables."""

import json

import numpy as np
import pytest
from PIL import Image

from diffdiff.errors import DiffdiffError
from diffdiff.maps import (
    linear_gradient,
    parse_region_table,
    radial_gradient,
    region_map,
    solid,
    strength_fan,
)


def test_solid_and_bad_values():
    assert np.all(solid(3, 4, 0.25) == np.float32(0.25)) and solid(3, 4, 0.25).shape == (3, 4)
    with pytest.raises(DiffdiffError, match=r"\[0, 1\]"):
        solid(3, 4, 1.2)
    with pytest.raises(DiffdiffError, match="size"):
        solid(0, 4, 0.5)


def test_linear_gradient_directions():
    ramp = linear_gradient(3, 11, angle=0, start=0.2, end=0.7)
    assert np.allclose(ramp[:, 0], 0.2) and np.allclose(ramp[:, -1], 0.7)
    assert np.allclose(ramp[1], 0.2 + 0.5 * np.arange(11) / 10)  # straight ramp across columns
    up = linear_gradient(9, 4, angle=90)  # bottom → top
    assert np.allclose(up[-1], 0.0) and np.allclose(up[0], 1.0)
    left = linear_gradient(4, 9, angle=180)
    assert np.allclose(left[:, 0], 1.0) and np.allclose(left[:, -1], 0.0)
    diagonal = linear_gradient(5, 5, angle=45)
    assert diagonal[-1, 0] == 0.0 and diagonal[0, -1] == 1.0
    assert np.allclose(diagonal[2, 2], 0.5)


def test_linear_gradient_gamma_shapes_the_ramp():
    ramp = linear_gradient(1, 5, gamma=2.0)
    assert np.allclose(ramp[0], (np.arange(5) / 4) ** 2)


def test_radial_gradient_centre_and_radius():
    m = radial_gradient(21, 21, radius=10, inner=0.9, outer=0.1)
    assert np.isclose(m[10, 10], 0.9)
    assert np.isclose(m[10, 0], 0.1) and np.isclose(m[0, 0], 0.1)  # at/after the radius
    assert np.isclose(m[10, 15], 0.9 + (0.1 - 0.9) * 0.5)  # 5 px from the centre = half way
    off = radial_gradient(10, 20, centre=(0.0, 0.0), radius=5)
    assert off[0, 0] > 0.85 and np.isclose(off[-1, -1], 0.0)


def test_strength_fan_bands():
    fan = strength_fan(4, 10, bands=5, start=0.0, end=0.8)
    assert np.allclose(fan[0], np.repeat([0.0, 0.2, 0.4, 0.6, 0.8], 2))
    assert np.all(fan == fan[0])
    rows = strength_fan(6, 2, bands=3, start=1.0, end=0.0, vertical=False)
    assert np.allclose(rows[:, 0], [1, 1, 0.5, 0.5, 0, 0])
    with pytest.raises(DiffdiffError, match="bands"):
        strength_fan(4, 3, bands=4)


def _colour_image():
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[:, :4] = (255, 0, 0)
    rgb[:3, 4:] = (255, 255, 255)
    rgb[3:, 4:] = (0, 0, 255)
    return Image.fromarray(rgb)


def test_region_map_gives_table_values_exactly():
    table = {"#ff0000": 0.3, "#ffffff": 1.0, "blue": 0.0}
    m = region_map(_colour_image(), table)
    assert np.all(m[:, :4] == np.float32(0.3))
    assert np.all(m[:3, 4:] == 1.0) and np.all(m[3:, 4:] == 0.0)


def test_region_missing_colour_is_named_unless_default():
    with pytest.raises(DiffdiffError, match="#0000ff"):
        region_map(_colour_image(), {"#ff0000": 0.3, "#fff": 1.0})
    m = region_map(_colour_image(), {"#ff0000": 0.3, "#fff": 1.0}, default=0.6)
    assert np.all(m[3:, 4:] == np.float32(0.6))


def test_region_labels_in_grayscale_image(tmp_path):
    labels = np.zeros((4, 4), np.uint8)
    labels[2:] = 2
    labels[:, 3] = 128
    path = tmp_path / "labels.png"
    Image.fromarray(labels).save(path)
    m = region_map(path, ["0=0.1", "2=0.9", "#808080=0.5"])
    assert np.all(m[:2, :3] == np.float32(0.1)) and np.all(m[2:, :3] == np.float32(0.9))
    assert np.all(m[:, 3] == 0.5)
    with pytest.raises(DiffdiffError, match="label 2"):
        region_map(path, "0=0.1,128=0.5")


def test_region_table_forms(tmp_path):
    as_json = parse_region_table('{"#ff0000": 0.3, "3": 1}')
    assert as_json == {("colour", (255, 0, 0)): 0.3, ("label", 3): 1.0}
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"#00ff00": 0.25}))
    assert parse_region_table(path) == {("colour", (0, 255, 0)): 0.25}
    with pytest.raises(DiffdiffError, match="KEY=VALUE"):
        parse_region_table(["#ff0000=0.2", "oops"])
    with pytest.raises(DiffdiffError, match="colour"):
        parse_region_table({"#zz0000": 0.3})
    with pytest.raises(DiffdiffError, match=r"\[0, 1\]"):
        parse_region_table({"#ff0000": 3})
    with pytest.raises(DiffdiffError, match="JSON"):
        parse_region_table("{not json")
    with pytest.raises(DiffdiffError, match="colours"):
        region_map(_colour_image(), {"1": 0.5})


def test_region_nearest_snaps_antialiased_colours():
    rgb = np.asarray(_colour_image()).copy()
    rgb[0, 0] = (250, 10, 5)  # almost red
    rgb[5, 7] = (20, 20, 230)  # almost blue
    image = Image.fromarray(rgb)
    table = {"#ff0000": 0.3, "#ffffff": 1.0, "#0000ff": 0.0}
    with pytest.raises(DiffdiffError, match="#fa0a05"):
        region_map(image, table)
    m = region_map(image, table, nearest=True)
    assert m[0, 0] == np.float32(0.3) and m[5, 7] == 0.0
    assert np.all(m[:3, 4:] == 1.0)
