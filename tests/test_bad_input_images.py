"""Bad image files: short PNG pixel data, animations, unreadable files → one clear DiffdiffError, early."""

import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from diffdiff import imageio
from diffdiff.cli.main import main
from diffdiff.errors import DiffdiffError
from diffdiff.maps import load_map


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(path, width, height, raw: bytes, colour_type=2, depth=8, interlace=0):
    """A PNG whose IDAT holds the complete zlib stream of `raw` (filtered scanlines), then IEND."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, interlace)
    body = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def _rows(pixels: np.ndarray) -> bytes:
    """Filter type 0 before every row of an (H, W[, C]) uint8 array."""
    flat = pixels.reshape(pixels.shape[0], -1)
    return b"".join(b"\0" + row.tobytes() for row in flat)


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _interlaced_rows(pixels: np.ndarray) -> bytes:
    """Adam7 passes of an (H, W, 3) uint8 array, each pass's rows filtered with type 0."""
    return b"".join(_rows(pixels[y0::dy, x0::dx]) for x0, y0, dx, dy in ADAM7 if pixels[y0::dy, x0::dx].size)


def test_a_huge_declared_png_with_a_few_bytes_of_pixels_is_refused_before_decoding(tmp_path):
    # 16000x16000 is under the pixel limit, but the file holds one row: this used to decode (768 MB of
    # black) and then run an edit for minutes.
    path = _png(tmp_path / "huge.png", 16000, 16000, b"\0" + bytes(16000 * 3))
    started = time.perf_counter()
    with pytest.raises(DiffdiffError, match=r"huge\.png: the file is damaged or truncated$"):
        imageio.load_image(path)
    assert time.perf_counter() - started < 1.0
    with pytest.raises(DiffdiffError, match="damaged or truncated"):
        imageio.open_decoded(path)


def test_a_png_whose_pixel_data_stops_early_is_refused_not_padded_with_black(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    raw = _rows(pixels)
    whole = _png(tmp_path / "whole.png", 48, 64, raw)
    assert np.array_equal(np.asarray(imageio.load_image(whole)), pixels)
    half = _png(tmp_path / "half.png", 48, 64, raw[: len(raw) // 2])  # a complete zlib stream, half the rows
    with pytest.raises(DiffdiffError, match=r"half\.png: the file is damaged or truncated$"):
        imageio.load_image(half)
    with pytest.raises(DiffdiffError, match="damaged or truncated"):
        load_map(half)
    one_byte_short = _png(tmp_path / "short.png", 48, 64, raw[:-1])
    with pytest.raises(DiffdiffError, match="damaged or truncated"):
        imageio.load_image(one_byte_short)


def test_complete_pngs_of_every_layout_still_load(tmp_path):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (13, 11, 3), dtype=np.uint8)
    interlaced = _png(tmp_path / "adam7.png", 11, 13, _interlaced_rows(pixels), interlace=1)
    assert np.array_equal(np.asarray(imageio.load_image(interlaced)), pixels)
    cut = _png(tmp_path / "adam7-cut.png", 11, 13, _interlaced_rows(pixels)[:-5], interlace=1)
    with pytest.raises(DiffdiffError, match="damaged or truncated"):
        imageio.load_image(cut)
    saved = {
        "bilevel": Image.fromarray(rng.integers(0, 2, (7, 9), dtype=np.uint8) * 255).convert("1"),
        "grey16": Image.fromarray(rng.integers(0, 65536, (7, 9), dtype=np.uint16)),
        "grey-alpha": Image.new("LA", (9, 7), (10, 20)),
        "rgba": Image.fromarray(rng.integers(0, 256, (7, 9, 4), dtype=np.uint8), "RGBA"),
        "palette4": Image.new("RGB", (9, 7), (1, 2, 3)).quantize(colors=16),
    }
    for name, image in saved.items():
        path = tmp_path / f"{name}.png"
        image.save(path, bits=4) if name == "palette4" else image.save(path)
        assert imageio.load_image(path).size == (9, 7), name
    # a large, well-compressible image: the cheap size-vs-bytes estimate must not refuse it
    flat = tmp_path / "flat.png"
    Image.new("RGB", (3000, 2000), (5, 5, 5)).save(flat)
    assert imageio.load_image(flat).size == (3000, 2000)


def test_cli_edit_refuses_a_truncated_png_in_one_line(tmp_path, capsys):
    path = _png(tmp_path / "huge.png", 16000, 16000, b"\0" + bytes(16000 * 3))
    code = main(["map", "from-image", str(path), "-o", str(tmp_path / "m.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == f"error: cannot read {path}: the file is damaged or truncated"
    assert not (tmp_path / "m.png").exists()


def test_check_image_size_is_a_cheap_estimate():
    assert imageio.check_image_size(512, 512) == (512, 512)
    with pytest.raises(DiffdiffError, match="exceeds the 268,435,456-pixel limit"):
        imageio.check_image_size(20000, 20000, what="the upscaled image")
    with pytest.raises(DiffdiffError, match="at least 1x1"):
        imageio.check_image_size(0, 5)


# --- animations ---------------------------------------------------------------------------------------


def _frames(count, size=(12, 8)):
    return [Image.new("RGB", size, (40 * k, 100, 200 - 40 * k)) for k in range(count)]


@pytest.mark.parametrize("suffix, frames", [(".gif", 3), (".png", 2), (".tif", 2), (".webp", 2)])
def test_animations_and_multi_page_files_are_refused(tmp_path, suffix, frames):
    path = tmp_path / f"anim{suffix}"
    first, *rest = _frames(frames)
    first.save(path, save_all=True, append_images=rest, duration=100)
    message = rf"anim{suffix} has {frames} frames; diffdiff edits single images - extract one frame first"
    with pytest.raises(DiffdiffError, match=message):
        imageio.load_image(path)
    with pytest.raises(DiffdiffError, match=f"has {frames} frames"):
        load_map(path)
    with pytest.raises(DiffdiffError, match=f"has {frames} frames"):
        imageio.check_readable_image(path)


def test_single_frame_gif_and_camera_mpo_still_load(tmp_path):
    gif = tmp_path / "still.gif"
    _frames(1)[0].save(gif)
    assert imageio.load_image(gif).size == (12, 8)
    mpo = tmp_path / "camera.mpo"  # cameras/phones store a second view or preview: frame 0 is the photo
    first, second = _frames(2)
    first.save(mpo, format="MPO", save_all=True, append_images=[second])
    with Image.open(mpo) as opened:
        assert getattr(opened, "n_frames", 1) == 2
    assert imageio.load_image(mpo).size == (12, 8)


# --- unreadable files ---------------------------------------------------------------------------------


def test_an_unreadable_image_says_permission_denied_not_damaged(tmp_path, monkeypatch):
    path = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(path)
    real_open = Image.open

    def denied(fp, *args, **kwargs):  # what PIL raises for a file without read permission (tests run as root)
        if str(fp) == str(path):
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(DiffdiffError, match=r"^cannot read .*secret\.png: permission denied$"):
        imageio.load_image(path)
    with pytest.raises(DiffdiffError, match="permission denied"):
        load_map(path)
