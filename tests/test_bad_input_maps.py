"""Map operations given absurd radii: refused up front in one line (not an OpenCV allocation error)."""

import numpy as np
import pytest
from PIL import Image

from diffdiff import maps
from diffdiff.cli.main import main
from diffdiff.errors import DiffdiffError


@pytest.fixture
def spot():
    values = np.zeros((30, 40), np.float32)  # diagonal 50 pixels
    values[15, 20] = 1.0
    return values


@pytest.mark.parametrize("operation, name", [(maps.grow, "grow"), (maps.shrink, "shrink"),
                                             (maps.feather, "feather radius")])
def test_radii_beyond_the_diagonal_are_refused(spot, operation, name):
    with pytest.raises(DiffdiffError, match=rf"^{name} of 1000000 pixels is more than the map's diagonal "
                                            r"\(50 pixels\); use at most 50$"):
        operation(spot, 1_000_000)
    assert operation(spot, 50).shape == spot.shape  # the diagonal itself is allowed
    assert maps.grow(spot, 50).min() == 1.0  # (and already reaches every pixel)


def test_blur_and_detail_scales_beyond_the_diagonal_are_refused(spot):
    with pytest.raises(DiffdiffError, match=r"^blur sigma of 100 pixels is more than the map's diagonal"):
        maps.blur(spot, 100)  # took 31 s for sigma 1e5 on a 64x64 map, and never ended for 1e6
    assert maps.blur(spot, 50).shape == spot.shape
    with pytest.raises(DiffdiffError, match=r"^detail scale of 100 pixels is more than the image's diagonal"):
        maps.detail_map(np.stack([spot] * 3, axis=-1), scale=100)


def test_cli_grow_with_a_huge_radius_is_one_clean_line(tmp_path, capsys):
    source = tmp_path / "m.png"
    Image.new("L", (40, 30), 0).save(source)
    out = tmp_path / "out.png"
    assert main(["map", "grow", str(source), "--pixels", "1000000", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    expected = "error: grow of 1000000 pixels is more than the map's diagonal (50 pixels); use at most 50\n"
    assert err == expected
    assert not out.exists()
