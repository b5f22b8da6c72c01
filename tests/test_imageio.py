"""Image loading (bad files → one clear DiffdiffError; odd modes → RGB) and PNG output with metadata."""

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from diffdiff import imageio, metadata
from diffdiff.errors import DiffdiffError


def _png_with_declared_size(path, width, height):
    """A tiny PNG whose header claims `width`×`height` (decoding would need gigabytes)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def test_missing_corrupt_truncated_files_raise_clear_errors(tmp_path):
    with pytest.raises(DiffdiffError, match="no such file"):
        imageio.load_image(tmp_path / "nope.png")
    with pytest.raises(DiffdiffError, match="it is a folder"):  # was "no such file" for a folder
        imageio.load_image(tmp_path)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image at all")
    with pytest.raises(DiffdiffError, match="not an image"):
        imageio.load_image(garbage)
    whole = tmp_path / "whole.png"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DiffdiffError, match="damaged or truncated"):
        imageio.load_image(cut)


def test_decompression_bomb_and_own_pixel_limit(tmp_path):
    bomb = _png_with_declared_size(tmp_path / "bomb.png", 60000, 60000)
    with pytest.raises(DiffdiffError, match="exceeds the 268,435,456-pixel limit"):
        imageio.load_image(bomb)
    # PIL's own bomb warning zone (between its limit and twice it) gets the same clear message
    with pytest.raises(DiffdiffError, match="exceeds the 1,000-pixel limit"):
        imageio.load_image(_png_with_declared_size(tmp_path / "mid.png", 40, 40), max_pixels=1000)
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30)).save(small)
    with pytest.raises(DiffdiffError, match="1,000-pixel limit"):
        imageio.load_image(small, max_pixels=1000)


def test_modes_are_converted_to_rgb(tmp_path):
    cmyk = Image.new("CMYK", (8, 6), (0, 255, 255, 0))  # pure red in CMYK
    assert imageio.load_image(cmyk).getpixel((0, 0)) == (255, 0, 0)
    palette = Image.new("P", (8, 6))
    palette.putpalette([10, 20, 30] + [0] * 765)
    assert imageio.load_image(palette).getpixel((3, 3)) == (10, 20, 30)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((6, 8), 65535, np.uint16)).save(deep)  # 16-bit white
    image = imageio.load_image(deep)
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)
    transparent = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert imageio.load_image(transparent).getpixel((0, 0)) == (255, 255, 255)  # flattened on white


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes(), quality=100)
    loaded = imageio.load_image(path)
    assert loaded.size == (20, 40)


def test_aspect_check():
    imageio.check_aspect((512, 256), (128, 256))  # same ratio, other size: fine
    with pytest.raises(DiffdiffError, match="aspect"):
        imageio.check_aspect((512, 256), (256, 256))


def test_save_png_writes_parameters_and_json(tmp_path):
    settings = {"prompt": "a cat, sitting", "negative": "blurry", "steps": 20, "sampler": "euler_ancestral",
                "scheduler": "karras", "cfg": 7.0, "seed": 5, "width": 96, "height": 80,
                "model_hash": "0123456789", "denoise": 1.0}
    text = metadata.parameters_text(settings)
    target = tmp_path / "out.png"
    imageio.save_png(target, Image.new("RGB", (96, 80)), parameters=text, settings=settings)
    chunks = imageio.read_png_text(target)
    lines = chunks["parameters"].split("\n")
    assert lines[0] == "a cat, sitting"
    assert lines[1] == "Negative prompt: blurry"
    assert lines[2].startswith("Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 5, ")
    assert "Size: 96x80" in lines[2] and "Model hash: 0123456789" in lines[2]
    assert json.loads(chunks["diffdiff"]) == settings
    with pytest.raises(DiffdiffError, match="exists"):
        imageio.save_png(target, Image.new("RGB", (4, 4)))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_output_paths_and_checks(tmp_path):
    paths = imageio.output_paths(tmp_path / "out.png", 3)
    assert [p.name for p in paths] == ["out.png", "out-1.png", "out-2.png"]
    with pytest.raises(DiffdiffError, match=r"\.png"):
        imageio.check_outputs(tmp_path / "out.jpg", 1)
    (tmp_path / "out-1.png").write_bytes(b"x")
    with pytest.raises(DiffdiffError, match="exists"):
        imageio.check_outputs(tmp_path / "out.png", 2)
    assert imageio.check_outputs(tmp_path / "out.png", 2, overwrite=True) == paths[:2]
