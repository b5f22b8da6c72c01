"""Images in and out of the pipeline: load pictures as 8-bit RGB with clear errors; save PNGs with metadata.

`load_image` turns every way a file can be bad (missing, unreadable, not an image, truncated, animated,
absurdly large) into one `DiffdiffError` line, applies the EXIF orientation, and converts CMYK / palette /
16-bit / alpha images to plain RGB (alpha is flattened onto white). `save_png` writes atomically with an
A1111-style `parameters` text chunk and our full settings as JSON in a `diffdiff` chunk.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, PngImagePlugin, UnidentifiedImageError

from diffdiff.atomic import CLI_OVERWRITE_HINT, atomic_write, check_writable
from diffdiff.errors import DiffdiffError

# Our own ceiling, checked from the header before decoding (about a 16k × 16k picture).
MAX_PIXELS = 16384 * 16384
# Relative difference in width/height ratio tolerated between an image and its strength map.
ASPECT_TOLERANCE = 0.02
SETTINGS_CHUNK = "diffdiff"  # the PNG text chunk of our JSON settings
# Multi-frame formats whose frame 0 is the picture (MPO: a camera's extra view or preview; PSD: layers).
ONE_PICTURE_FORMATS = frozenset({"MPO", "PSD"})
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type → samples per pixel
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def check_image_size(width: int, height: int, *, max_pixels: int = MAX_PIXELS,
                     what: str = "image") -> tuple[int, int]:
    """Refuse an empty or over-limit `width`×`height` (e.g. a planned output) before any pixel or model
    work: the cheap check of MAX_PIXELS, the one size limit."""
    if width < 1 or height < 1:
        raise DiffdiffError(f"{what} {width}x{height} is empty; it must be at least 1x1")
    if width * height > max_pixels:
        raise DiffdiffError(f"{what} {width}x{height} exceeds the {max_pixels:,}-pixel limit")
    return width, height


def _unreadable(path: Path, error: OSError) -> DiffdiffError:
    """An OS-level read failure (permission, I/O) as one line that says what is true."""
    if isinstance(error, PermissionError):
        return DiffdiffError(f"cannot read {path}: permission denied")
    reason = (error.strerror or str(error) or type(error).__name__).lower()
    return DiffdiffError(f"cannot read {path}: {reason}")


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    """Open `path` lazily, refusing huge declared sizes, animations and short PNG data before decoding."""
    if not path.is_file():
        raise DiffdiffError(f"cannot read {path}: " + ("it is a folder" if path.is_dir() else "no such file"))
    previous_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels  # PIL's bomb check then enforces our one limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DiffdiffError(
            f"cannot read {path}: its declared size exceeds the {max_pixels:,}-pixel limit"
            " (decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        raise DiffdiffError(f"cannot read {path}: not an image file (or an unsupported format)") from None
    except OSError as exc:
        if exc.errno is not None:  # PermissionError, EIO, ...: the file is fine, reading it is not
            raise _unreadable(path, exc) from None
        raise DiffdiffError(f"cannot read {path}: the file is damaged ({exc})") from None
    except (SyntaxError, ValueError, EOFError) as exc:
        raise DiffdiffError(f"cannot read {path}: the file is damaged ({exc})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
    try:
        _check_opened(image, path, max_pixels)
    except BaseException:
        image.close()
        raise
    return image


def _check_opened(image: Image.Image, path: Path, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise DiffdiffError(
            f"cannot read {path}: {width}x{height} is larger than the {max_pixels:,}-pixel limit"
        )
    if width < 1 or height < 1:
        raise DiffdiffError(f"cannot read {path}: the image is empty ({width}x{height})")
    try:
        frames = int(getattr(image, "n_frames", 1) or 1)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error):
        raise DiffdiffError(f"cannot read {path}: the file is damaged or truncated") from None
    if frames > 1 and image.format not in ONE_PICTURE_FORMATS:
        raise DiffdiffError(
            f"{path} has {frames} frames; diffdiff edits single images - extract one frame first"
        )
    if image.format == "PNG":
        _check_png_data(path)


def _png_raw_size(header: bytes) -> int:
    """Bytes of filtered scanlines a PNG with this IHDR decompresses to (Adam7 passes when interlaced)."""
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header[:13])
    bits = depth * PNG_CHANNELS.get(colour_type, 4)

    def rows(w: int, h: int) -> int:
        return h * (1 + (w * bits + 7) // 8) if w > 0 and h > 0 else 0

    if interlace != 1:
        return rows(width, height)
    return sum(rows((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy) for x0, y0, dx, dy in ADAM7)


def _check_png_data(path: Path) -> None:
    """Refuse a PNG whose image data inflates to fewer bytes than its header needs.

    PIL's PNG decoder stops quietly when the zlib stream ends, leaving the missing rows black; a tiny file
    declaring 16000x16000 would then decode to 768 MB of black. Inflating here costs one pass over the data
    in 1 MiB pieces and ends as soon as the stream does, so a short stream is caught before any allocation.
    """
    truncated = DiffdiffError(f"cannot read {path}: the file is damaged or truncated")
    inflater = zlib.decompressobj()
    needed, produced = None, 0
    try:
        with open(path, "rb") as handle:
            handle.seek(8)  # the signature, checked by PIL
            while True:
                head = handle.read(8)
                if len(head) < 8:
                    break
                length, kind = struct.unpack(">I4s", head)
                if kind == b"IHDR":
                    needed = _png_raw_size(handle.read(length))
                    handle.seek(4, os.SEEK_CUR)
                elif kind == b"IDAT" and needed is not None:
                    data = handle.read(length)
                    handle.seek(4, os.SEEK_CUR)
                    while data and produced < needed and not inflater.eof:
                        produced += len(inflater.decompress(data, 1 << 20))
                        data = inflater.unconsumed_tail
                elif kind == b"IEND":
                    break
                else:
                    handle.seek(length + 4, os.SEEK_CUR)
                if needed is not None and (produced >= needed or inflater.eof):
                    break
    except OSError as exc:
        raise _unreadable(path, exc) from None
    except (zlib.error, struct.error):
        raise truncated from None
    if needed is None or produced < needed:
        raise truncated


def _decode(image: Image.Image, path: Path) -> Image.Image:
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # another library may have switched PIL to padding short files
    try:
        image.load()
    except OSError as exc:
        if exc.errno is not None:
            raise _unreadable(path, exc) from None
        raise DiffdiffError(f"cannot read {path}: the file is damaged or truncated") from None
    except (SyntaxError, ValueError, EOFError, struct.error, zlib.error):
        raise DiffdiffError(f"cannot read {path}: the file is damaged or truncated") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    return image


def open_decoded(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open and fully decode an image file in its own mode (no conversion, no EXIF rotation).

    Missing, unreadable, non-image, truncated, animated and over-limit files raise one-line DiffdiffErrors.
    """
    where = Path(path).expanduser()
    return _decode(_open_checked(where, max_pixels), where)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode → 8-bit RGB: deep/float greys rescaled, CMYK and palettes converted, alpha on white."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        scale = 257.0 if mode != "I" or values.max() > 255 else 1.0
        image = Image.fromarray(np.clip(np.round(values / scale), 0, 255).astype(np.uint8))
    elif mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
        scale = 255.0 if values.max() <= 1.0 else 1.0
        image = Image.fromarray(np.clip(np.round(values * scale), 0, 255).astype(np.uint8))
    elif mode in ("P", "PA"):
        image = image.convert("RGBA" if mode == "PA" or "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def load_image(path: str | os.PathLike | Image.Image, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Read an image file (or take a PIL image) as 8-bit RGB, EXIF orientation applied."""
    if isinstance(path, Image.Image):
        image = path
        check_image_size(image.width, image.height, max_pixels=max_pixels)
    else:
        image = open_decoded(path, max_pixels=max_pixels)
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        pass  # a broken EXIF block must not stop the edit; keep the stored orientation
    return to_rgb(image)


def header_size(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of an image file from its header alone (EXIF rotation applied), checked as `load_image`
    checks it before decoding: a quick look for validating many files up front."""
    with _open_checked(Path(path), max_pixels) as image:
        width, height = image.size
        try:
            turned = image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)
        except (OSError, ValueError, SyntaxError, KeyError, TypeError, struct.error):
            turned = False  # load_image keeps the stored orientation when EXIF is broken
    return (height, width) if turned else (width, height)


def check_readable_image(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Fully decode `path` now (a bad file fails fast); return its (width, height) after EXIF rotation."""
    image = load_image(path, max_pixels=max_pixels)
    return image.size


def same_aspect(first_hw: tuple[int, int], second_hw: tuple[int, int]) -> bool:
    """The one aspect-ratio rule: two (height, width) sizes match when their ratios differ by at most
    ASPECT_TOLERANCE (relative, measured symmetrically as |log(r1 / r2)|)."""
    ratio = (first_hw[0] / first_hw[1]) / (second_hw[0] / second_hw[1])
    return abs(math.log(ratio)) <= ASPECT_TOLERANCE


def check_aspect(image_size: tuple[int, int], map_shape: tuple[int, int], what: str = "map") -> None:
    """Refuse a map whose width/height ratio differs from the image's (it would be stretched)."""
    width, height = image_size
    map_height, map_width = map_shape
    if not same_aspect((map_height, map_width), (height, width)):
        raise DiffdiffError(
            f"the {what} is {map_width}x{map_height} but the image is {width}x{height}: "
            "aspect ratios differ; make a map of the image's shape"
        )


def png_info(parameters: str | None = None, settings_json: str | None = None) -> PngImagePlugin.PngInfo:
    """PNG text chunks: `parameters` (A1111 layout, read by most UIs) and `diffdiff` (our JSON settings)."""
    info = PngImagePlugin.PngInfo()
    if parameters is not None:
        info.add_text("parameters", parameters)
    if settings_json is not None:
        info.add_text(SETTINGS_CHUNK, settings_json)
    return info


def save_png(path: str | os.PathLike, image: Image.Image, *, parameters: str | None = None,
             settings: dict | None = None, overwrite: bool = False) -> Path:
    """Write `image` as PNG atomically, with the `parameters` text and `settings` (JSON) chunks when given."""
    from diffdiff.metadata import settings_to_json

    settings_json = settings_to_json(settings) if settings is not None else None
    info = png_info(parameters, settings_json)
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG", pnginfo=info), overwrite)


def read_png_text(path: str | os.PathLike) -> dict[str, str]:
    """The text chunks of a PNG (e.g. `parameters`, `diffdiff`)."""
    with Image.open(path) as image:
        image.load()
        return dict(getattr(image, "text", {}) or {})


def output_paths(path: str | os.PathLike, count: int) -> list[Path]:
    """Where a batch of `count` images goes: OUT.png, then OUT-1.png, OUT-2.png, ..."""
    path = Path(path)
    return [path] + [path.with_name(f"{path.stem}-{k}{path.suffix}") for k in range(1, count)]


def check_outputs(path: str | os.PathLike, count: int, overwrite: bool = False, *,
                  hint: str = CLI_OVERWRITE_HINT) -> list[Path]:
    """Fail before any work if an output is not a .png, exists (without overwrite) or cannot be written.

    The CLI's pre-flight check, so an existing output is reported with the --overwrite flag by default.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise DiffdiffError(f"output {path} must end in .png (the metadata lives in PNG text chunks)")
    paths = output_paths(path, count)
    for each in paths:
        check_writable(each, overwrite, hint=hint)
    return paths
