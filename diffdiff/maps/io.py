"""Strength maps on disk and in memory: any image → float32 (H, W) map in [0, 1]; 8/16-bit PNGs out.

A map is white = change fully (1.0), black = keep exactly (0.0). 16-bit grayscale files are read and written
without loss (PIL mode "I;16"); 16-bit colour files are read through OpenCV so their extra bits survive.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from diffdiff.atomic import atomic_write
from diffdiff.errors import DiffdiffError
from diffdiff.imageio import open_decoded

SOURCES = ("luminance", "red", "green", "blue", "alpha")
SIXTEEN_BIT_SUFFIXES = (".png", ".tif", ".tiff")
EXIF_ORIENTATION = 0x0112
ORIENTED_KEY = "diffdiff.oriented"  # set in .info when EXIF rotation was applied
BITS_KEY = "diffdiff.bits"  # bits per sample remembered across the rotation
# Rec. 601 luma weights, as PIL's "L" conversion uses.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def as_map(array, name: str = "map") -> np.ndarray:
    """Check `array` is a usable map ((H, W) or (H, W, 1), finite, in [0, 1]); return float32 (H, W)."""
    if hasattr(array, "detach"):  # a torch tensor
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise DiffdiffError(f"{name} must be a 2-D (height, width) array; got shape {tuple(array.shape)}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise DiffdiffError(f"{name} is empty (shape {tuple(array.shape)})")
    if array.dtype == np.bool_:  # a boolean mask: True = change
        array = array.astype(np.float32, copy=False)  # the clip below makes the one copy we return
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DiffdiffError(f"{name} must hold real numbers; got dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)  # the clip below makes the one copy we return
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise DiffdiffError(f"{name} contains {bad} NaN or infinite value(s); a map must be finite in [0, 1]")
    low, high = float(array.min()), float(array.max())
    if low < -1e-4 or high > 1 + 1e-4:
        raise DiffdiffError(f"{name} values must lie in [0, 1]; found range [{low:.4g}, {high:.4g}]")
    return np.clip(array, 0.0, 1.0)


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file, EXIF orientation applied (as the edit pipeline reads images).

    A missing, unreadable, truncated or absurdly large file raises DiffdiffError (diffdiff.imageio's checks).
    """
    return _upright(open_decoded(path))


def _upright(image: Image.Image) -> Image.Image:
    """Apply a non-trivial EXIF orientation; the decoded file object is kept when there is none."""
    try:
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        return image  # a broken EXIF block must not stop us; keep the stored orientation
    if orientation in (None, 1):
        return image
    bits = _bits_per_sample(image)
    turned = ImageOps.exif_transpose(image)
    turned.info[ORIENTED_KEY] = True  # pixels no longer match the file's raw layout
    turned.info[BITS_KEY] = bits
    return turned


def _bits_per_sample(image: Image.Image) -> int:
    """Bits per channel as the file declares them (TIFF tag 258); 8 when the format does not say."""
    if BITS_KEY in image.info:
        return int(image.info[BITS_KEY])
    tags = getattr(image, "tag_v2", None)
    if tags is not None and 258 in tags:
        value = tags[258]
        return int(max(value) if isinstance(value, tuple) else value)
    return 8


def _read_sixteen_bit_colour(path: Path) -> np.ndarray | None:
    """A (H, W, 3|4) RGB(A) float array in [0, 1] if the file is 16-bit colour, else None."""
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16 or array.ndim != 3 or array.shape[2] not in (3, 4):
        return None
    order = [2, 1, 0, 3][: array.shape[2]]  # OpenCV stores BGR(A)
    return array[..., order].astype(np.float64) / 65535.0


def image_to_channels(image: Image.Image, path: Path | None = None) -> np.ndarray:
    """Decode a PIL image into float64 (H, W, C) in [0, 1]: C = 1 (grey), 2 (grey+alpha), 3/4 (RGB(A))."""
    mode = image.mode
    where = f" ({path})" if path else ""
    if mode == "CMYK":
        if _bits_per_sample(image) > 8:
            raise DiffdiffError(f"16-bit CMYK images cannot be maps{where}; save it as RGB or grayscale")
        image, mode = image.convert("RGB"), "RGB"
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return (np.asarray(image, dtype=np.float64) / 65535.0)[..., None]
    if mode == "I":
        values = np.asarray(image, dtype=np.float64)
        if values.min() < 0 or values.max() > 65535:
            raise DiffdiffError(f"32-bit integer image{where} has values outside 0..65535; save as 16-bit")
        return (values / 65535.0)[..., None]
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise DiffdiffError(f"floating-point image{where} must hold finite values in [0, 1]")
        return values[..., None]
    raw_layout = path is not None and not image.info.get(ORIENTED_KEY)
    if mode in ("RGB", "RGBA") and raw_layout and path.suffix.lower() in SIXTEEN_BIT_SUFFIXES:
        deep = _read_sixteen_bit_colour(path)
        if deep is not None and deep.shape[:2] == (image.height, image.width):
            return deep
    if mode in ("P", "PA"):  # palette: look colours up through RGB(A)
        image = image.convert("RGBA" if "transparency" in image.info or mode == "PA" else "RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode in ("LA", "La"):
        image = image.convert("LA")
    elif mode == "RGBa":
        image = image.convert("RGBA")
    elif mode not in ("L", "RGB", "RGBA"):
        try:
            image = image.convert("RGBA" if "A" in mode else "RGB")
        except (ValueError, OSError):
            raise DiffdiffError(f"image mode {mode!r}{where} cannot be used as a map") from None
    values = np.asarray(image, dtype=np.float64) / 255.0
    return values[..., None] if values.ndim == 2 else values


def channels_to_map(channels: np.ndarray, source: str = "luminance", alpha_is_mask: bool = False,
                    where: str = "") -> np.ndarray:
    """Pick the map out of decoded channels: luminance, one colour channel, or alpha (1 − alpha if asked)."""
    if source not in SOURCES:
        raise DiffdiffError(f"unknown map source {source!r}; choose one of {', '.join(SOURCES)}")
    count = channels.shape[2]
    colour = channels[..., :3] if count >= 3 else np.repeat(channels[..., :1], 3, axis=2)
    if source == "luminance":
        values = colour @ LUMA_WEIGHTS
    elif source in ("red", "green", "blue"):
        values = colour[..., ("red", "green", "blue").index(source)]
    else:
        if count not in (2, 4):
            raise DiffdiffError(f"image{where} has no alpha channel; choose luminance, red, green or blue")
        values = channels[..., -1]
        if alpha_is_mask:
            values = 1.0 - values
    return np.clip(values, 0.0, 1.0).astype(np.float32)


def image_to_map(image: Image.Image, source: str = "luminance", alpha_is_mask: bool = False) -> np.ndarray:
    """A PIL image (already in memory) as a map; see `load_map`."""
    return channels_to_map(image_to_channels(image), source, alpha_is_mask)


def load_map(path: str | os.PathLike, source: str = "luminance", alpha_is_mask: bool = False) -> np.ndarray:
    """Read any image file as a float32 (H, W) map in [0, 1].

    `source` picks luminance (default), "red"/"green"/"blue", or "alpha". With `alpha_is_mask=True` the alpha
    source yields 1 − alpha (ComfyUI's LoadImage mask: transparent pixels = change).
    """
    path = Path(path)
    if source not in SOURCES:
        raise DiffdiffError(f"unknown map source {source!r}; choose one of {', '.join(SOURCES)}")
    if alpha_is_mask and source != "alpha":
        raise DiffdiffError("the ComfyUI mask convention (1 - alpha) applies to the alpha source only; "
                            "add --source alpha")
    image = open_image(path)
    return channels_to_map(image_to_channels(image, path), source, alpha_is_mask, f" {path}")


def map_to_image(strength_map: np.ndarray, bits: int = 8) -> Image.Image:
    """Quantise a map to a grayscale PIL image: mode "L" (8-bit) or "I;16" (16-bit)."""
    strength_map = as_map(strength_map)
    if bits == 8:
        return Image.fromarray(np.round(strength_map * 255.0).astype(np.uint8), mode="L")
    if bits == 16:
        return Image.fromarray(np.round(strength_map.astype(np.float64) * 65535.0).astype(np.uint16))
    raise DiffdiffError(f"unsupported bit depth {bits}; choose 8 or 16")


def save_map(path: str | os.PathLike, strength_map: np.ndarray, bits: int = 8,
             overwrite: bool = False) -> Path:
    """Write a map as a grayscale image (8- or 16-bit; 16-bit needs .png or .tif), atomically."""
    path = Path(path)
    if bits == 16 and path.suffix.lower() not in SIXTEEN_BIT_SUFFIXES:
        suffixes = ", ".join(SIXTEEN_BIT_SUFFIXES)
        raise DiffdiffError(f"16-bit maps must be saved as {suffixes}; got {path.name}")
    image = map_to_image(strength_map, bits)
    return save_image(path, image, overwrite)


def save_image(path: str | os.PathLike, image: Image.Image, overwrite: bool = False) -> Path:
    """Write any PIL image atomically, with the format taken from the target's extension."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise DiffdiffError(f"cannot tell the image format from {path.name!r}; use .png, .tif, .jpg or .webp")
    return atomic_write(path, lambda tmp: image.save(tmp, format=fmt), overwrite)
