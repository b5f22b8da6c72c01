"""The `diffdiff map` verb end to end through diffdiff.cli.main.main."""

import json

import numpy as np
import pytest
from PIL import Image

from diffdiff.cli.main import main
from diffdiff.maps import load_map

OPERATIONS = ["from-image", "solid", "linear", "radial", "regions", "fan", "invert", "levels",
              "brightness-contrast", "threshold", "blur", "feather", "grow", "shrink", "combine", "clamp",
              "resize", "depth", "detail", "preview"]


def test_help_lists_every_operation(capsys):
    assert main(["map", "--help"]) == 0
    text = capsys.readouterr().out
    for name in OPERATIONS:
        assert name in text, name


def test_sources_and_operations_end_to_end(tmp_path):
    def out(name):
        return str(tmp_path / name)

    assert main(["map", "solid", "--size", "32x16", "--value", "0.25", "-o", out("solid.png")]) == 0
    assert load_map(out("solid.png")).shape == (16, 32)
    assert main(["map", "linear", "--size", "40x8", "--bits", "16", "-o", out("lin.png")]) == 0
    lin = load_map(out("lin.png"))
    assert lin[0, 0] == 0 and lin[0, -1] == 1
    assert main(["map", "radial", "--like", out("lin.png"), "--radius", "4", "-o", out("rad.png")]) == 0
    assert main(["map", "fan", "--size", "40x8", "--bands", "4", "-o", out("fan.png")]) == 0
    assert len(np.unique(load_map(out("fan.png")))) == 4
    assert main(["map", "invert", out("solid.png"), "-o", out("inv.png")]) == 0
    assert np.allclose(load_map(out("inv.png")), 0.75, atol=1 / 255)
    assert main(["map", "combine", out("solid.png"), out("inv.png"), "--mode", "add",
                 "-o", out("sum.png")]) == 0
    assert np.allclose(load_map(out("sum.png")), 1.0, atol=1 / 255)
    for args in (["levels", "--black", "0.1"], ["brightness-contrast", "--contrast", "2"],
                 ["threshold", "--level", "0.5"], ["blur", "--sigma", "1.5"], ["feather", "--radius", "3"],
                 ["grow", "--pixels", "2"], ["shrink", "--pixels", "2"], ["clamp", "--max", "0.5"]):
        target = out(args[0] + ".png")
        assert main(["map", args[0], out("rad.png"), *args[1:], "-o", target]) == 0, args
        assert load_map(target).shape == (8, 40)
    assert main(["map", "resize", out("rad.png"), "--size", "80x16", "-o", out("big.png")]) == 0
    assert load_map(out("big.png")).shape == (16, 80)


def test_from_image_regions_detail_and_preview(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, :8] = (255, 0, 0, 255)
    rgba[:, 8:] = (255, 255, 255, 0)
    image = tmp_path / "in.png"
    Image.fromarray(rgba, "RGBA").save(image)
    mask = tmp_path / "mask.png"
    assert main(["map", "from-image", str(image), "--source", "alpha", "--comfy-mask", "-o", str(mask)]) == 0
    assert np.allclose(load_map(mask)[:, 8:], 1.0) and np.allclose(load_map(mask)[:, :8], 0.0)
    table = tmp_path / "table.json"
    table.write_text(json.dumps({"#ff0000": 0.4}))
    regions = tmp_path / "regions.png"
    assert main(["map", "regions", str(image), "--table", str(table), "--set", "#ffffff=1",
                 "--bits", "16", "-o", str(regions)]) == 0
    assert np.allclose(load_map(regions)[:, :8], 0.4, atol=1e-4)
    detail = tmp_path / "detail.png"
    assert main(["map", "detail", str(image), "--scale", "2", "-o", str(detail)]) == 0
    preview = tmp_path / "preview.png"
    assert main(["map", "preview", str(image), str(regions), "-o", str(preview)]) == 0
    picture = Image.open(preview)
    assert picture.width == 16 and picture.height > 16  # image plus legend bar


def _error(capsys):
    return capsys.readouterr().err


def test_bad_inputs_give_one_error_line(tmp_path, capsys):
    a = tmp_path / "a.png"
    b = tmp_path / "b.png"
    Image.new("L", (8, 8), 255).save(a)
    Image.new("L", (8, 6), 0).save(b)
    assert main(["map", "combine", str(a), str(b), "--mode", "max", "-o", str(tmp_path / "c.png")]) == 2
    assert "different sizes" in _error(capsys)
    assert main(["map", "swirl", str(a), "-o", str(tmp_path / "d.png")]) == 2
    assert "invalid choice" in _error(capsys)
    colours = tmp_path / "colours.png"
    Image.new("RGB", (4, 4), (0, 255, 0)).save(colours)
    assert main(["map", "regions", str(colours), "--set", "#ff0000=0.5", "-o", str(tmp_path / "r.png")]) == 2
    err = _error(capsys)
    assert err.startswith("error:") and "#00ff00" in err and len(err.strip().splitlines()) == 1
    assert main(["map", "invert", str(a), "-o", str(a)]) == 2
    assert "overwrite" in _error(capsys)
    assert main(["map", "preview", str(a), str(tmp_path / "wide.png"), "-o", str(tmp_path / "p.png")]) == 2
    assert "no such file" in _error(capsys)
    wide = tmp_path / "wide.png"
    Image.new("L", (16, 4)).save(wide)
    assert main(["map", "preview", str(a), str(wide), "-o", str(tmp_path / "p.png")]) == 2
    assert "aspect ratio" in _error(capsys)
    assert main(["map", "solid", "--size", "ten", "--value", "1", "-o", str(tmp_path / "s.png")]) == 2
    assert "WIDTHxHEIGHT" in _error(capsys)
    huge = ["map", "solid", "--size", "100000x100000", "--value", "1", "-o", str(tmp_path / "s.png")]
    assert main(huge) == 2
    assert "pixel limit" in _error(capsys)  # not a MemoryError allocating 37 GiB
    assert main(["map", "solid", "--size", "4x4", "--value", "1", "--bits", "16",
                 "-o", str(tmp_path / "s.jpg")]) == 2
    assert "16" in _error(capsys)


@pytest.mark.parametrize("operation", ["solid", "fan"])
def test_size_is_required(tmp_path, capsys, operation):
    extra = ["--value", "1"] if operation == "solid" else []
    assert main(["map", operation, *extra, "-o", str(tmp_path / "x.png")]) == 2
    assert "--size" in _error(capsys)
