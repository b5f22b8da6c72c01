"""Reading and writing strength maps: bit depths, channel sources, odd modes and damaged files."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from diffdiff.errors import DiffdiffError
from diffdiff.maps import as_map, load_map, save_map


def test_sixteen_bit_ramp_round_trips_within_one_step(tmp_path):
    ramp = np.linspace(0.0, 1.0, 300 * 7, dtype=np.float64).reshape(7, 300).astype(np.float32)
    path = save_map(tmp_path / "ramp.png", ramp, bits=16)
    assert Image.open(path).mode.startswith("I")
    back = load_map(path)
    assert back.dtype == np.float32 and back.shape == ramp.shape
    assert np.abs(back - ramp).max() <= 1.0 / 65535 + 1e-7
    # more distinct levels than an 8-bit file could hold: no banding
    assert len(np.unique(back)) > 256


def test_eight_bit_round_trip_within_half_a_step(tmp_path):
    ramp = np.tile(np.linspace(0, 1, 256, dtype=np.float32), (3, 1))
    back = load_map(save_map(tmp_path / "m.png", ramp, bits=8))
    assert np.abs(back - ramp).max() <= 0.5 / 255 + 1e-6
    assert np.array_equal(np.round(back * 255), np.arange(256)[None].repeat(3, 0))


def test_sixteen_bit_needs_png_or_tiff(tmp_path):
    with pytest.raises(DiffdiffError, match="16-bit"):
        save_map(tmp_path / "m.jpg", np.zeros((2, 2)), bits=16)


def test_save_refuses_to_overwrite_without_flag(tmp_path):
    path = save_map(tmp_path / "m.png", np.zeros((2, 2)))
    with pytest.raises(DiffdiffError, match="overwrite"):
        save_map(path, np.ones((2, 2)))
    save_map(path, np.ones((2, 2)), overwrite=True)
    assert load_map(path).min() == 1.0


def test_channel_sources_and_alpha(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 255, 102, 0, 51
    path = tmp_path / "c.png"
    Image.fromarray(rgba, "RGBA").save(path)
    assert np.allclose(load_map(path, "red"), 1.0)
    assert np.allclose(load_map(path, "green"), 102 / 255)
    assert np.allclose(load_map(path, "blue"), 0.0)
    assert np.allclose(load_map(path, "alpha"), 51 / 255)
    assert np.allclose(load_map(path, "alpha", alpha_is_mask=True), 1 - 51 / 255)
    assert np.allclose(load_map(path), (0.299 * 255 + 0.587 * 102) / 255, atol=1e-6)


def test_alpha_source_without_alpha_is_an_error(tmp_path):
    path = tmp_path / "rgb.png"
    Image.new("RGB", (3, 3)).save(path)
    with pytest.raises(DiffdiffError, match="no alpha"):
        load_map(path, "alpha")


def test_unknown_source_names_the_choices(tmp_path):
    path = tmp_path / "g.png"
    Image.new("L", (3, 3)).save(path)
    with pytest.raises(DiffdiffError, match="luminance"):
        load_map(path, "hue")


def test_palette_image_is_read_through_rgb(tmp_path):
    image = Image.new("P", (4, 2))
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((1, 0), 1)
    path = tmp_path / "p.png"
    image.save(path)
    red = load_map(path, "red")
    assert red[0, 1] == 1.0 and red.sum() == 1.0


def _write_cmyk16_tiff(path, width=4, height=3):
    """A minimal uncompressed 16-bit-per-channel CMYK TIFF, written by hand."""
    data = bytes(range(256)) * 1
    data = (data * (width * height * 8 // 256 + 1))[: width * height * 8]
    entries = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 4, "bps"), (259, 3, 1, 1), (262, 3, 1, 5),
               (273, 4, 1, "data"), (277, 3, 1, 4), (278, 3, 1, height), (279, 4, 1, len(data)),
               (284, 3, 1, 1)]
    ifd_size = 2 + 12 * len(entries) + 4
    bps_offset = 8 + ifd_size
    data_offset = bps_offset + 8
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        value = {"bps": bps_offset, "data": data_offset}.get(value, value)
        if kind == 3 and tag != 258:
            out += struct.pack("<HHIHH", tag, kind, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, kind, count, value)
    out += struct.pack("<I", 0) + struct.pack("<4H", 16, 16, 16, 16) + data
    path.write_bytes(bytes(out))


def test_sixteen_bit_cmyk_is_refused_clearly(tmp_path):
    path = tmp_path / "cmyk16.tif"
    _write_cmyk16_tiff(path)
    with pytest.raises(DiffdiffError, match="16-bit CMYK"):
        load_map(path)


def test_eight_bit_cmyk_is_converted(tmp_path):
    path = tmp_path / "cmyk8.tif"
    Image.new("CMYK", (3, 2), (0, 0, 0, 0)).save(path)  # no ink = white
    assert np.allclose(load_map(path), 1.0)


def test_truncated_and_missing_and_non_image_files(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DiffdiffError, match="cut.png"):
        load_map(cut)
    with pytest.raises(DiffdiffError, match="no such file"):
        load_map(tmp_path / "absent.png")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(DiffdiffError, match="not an image"):
        load_map(text)


def test_a_map_file_declaring_an_absurd_size_is_refused_before_decoding(tmp_path):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = tmp_path / "bomb.png"
    header = struct.pack(">IIBBBBB", 70000, 70000, 8, 0, 0, 0, 0)
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(DiffdiffError, match="pixel limit"):
        load_map(bomb)


def test_as_map_rejects_nan_bad_shape_and_range():
    with pytest.raises(DiffdiffError, match="NaN"):
        as_map(np.array([[0.0, np.nan]]))
    with pytest.raises(DiffdiffError, match="2-D"):
        as_map(np.zeros((2, 2, 3)))
    with pytest.raises(DiffdiffError, match=r"\[0, 1\]"):
        as_map(np.array([[0.0, 1.5]]))
    assert np.array_equal(as_map(np.array([[True, False]])), np.array([[1.0, 0.0]], np.float32))
    with pytest.raises(DiffdiffError, match="real numbers"):
        as_map(np.array([["a", "b"]]))
    out = as_map(np.ones((2, 3, 1), dtype=np.float64))
    assert out.shape == (2, 3) and out.dtype == np.float32


def test_sixteen_bit_colour_channels_keep_their_precision(tmp_path):
    import cv2

    red = np.linspace(0, 65535, 1000).round().astype(np.uint16).reshape(10, 100)
    bgr = np.stack([np.zeros_like(red), np.full_like(red, 65535), red], axis=-1)
    path = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(path), bgr)
    back = load_map(path, "red")
    assert np.abs(back - red / 65535).max() <= 1 / 65535
    assert np.allclose(load_map(path, "green"), 1.0) and np.allclose(load_map(path, "blue"), 0.0)


def test_exif_orientation_is_applied_like_the_pipeline(tmp_path):
    pixels = np.zeros((2, 4), np.uint8)
    pixels[0, 0] = 255  # stored: top-left white
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes(), quality=100)
    m = load_map(path)
    assert m.shape == (4, 2)  # upright: width and height swap
    assert m[0, 1] > 0.8 and m[3, 0] < 0.2  # the white corner is now top-right


def test_comfy_mask_convention_needs_the_alpha_source(tmp_path):
    path = tmp_path / "rgba.png"
    Image.new("RGBA", (8, 8), (255, 255, 255, 0)).save(path)
    assert np.all(load_map(path, "alpha", alpha_is_mask=True) == 1.0)  # transparent = change
    with pytest.raises(DiffdiffError, match="--source alpha"):
        load_map(path, "luminance", alpha_is_mask=True)
