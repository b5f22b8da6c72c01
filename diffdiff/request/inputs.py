"""The pictures of a request, read and checked once: the image as uint8 RGB pixels and the strength map as
float32 values in [0, 1] at the image's size, each with the short name the settings record gives it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DiffdiffError
from ..imageio import check_aspect, load_image
from . import checks

MIN_SIDE = 8


@dataclass(frozen=True, eq=False)
class Picture:
    """An image ready for the pipeline: uint8 pixels (H, W, 3) and its name for the record."""

    pixels: np.ndarray
    name: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.pixels.shape[1], self.pixels.shape[0]


@dataclass(frozen=True, eq=False)
class StrengthMap:
    """A checked strength map: float32 (H, W) in [0, 1] at its image's size (white = change fully), and a
    description for the record (the file name, "constant 0.5", "array", with " (inverted)")."""

    values: np.ndarray
    description: str


def check_size(width: int, height: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise DiffdiffError(f"image is {width}x{height}; both sides must be at least {MIN_SIDE} pixels")


def read_picture(image) -> Picture:
    """A file path or a PIL image → Picture (decoded once, EXIF orientation applied, flattened to RGB)."""
    if isinstance(image, Picture):
        return image
    if not isinstance(image, (str, os.PathLike, Image.Image)):
        raise DiffdiffError(f"image must be a file path or a PIL image; got {type(image).__name__}")
    name = Path(image).name if isinstance(image, (str, os.PathLike)) else "image"
    rgb = load_image(image)
    check_size(*rgb.size)
    return Picture(np.asarray(rgb), name)


def map_argument(text: str):
    """A command-line --map value: a number gives a constant map, anything else is a file path.
    A value that is both (a file named "0.5") is refused rather than silently read as the number."""
    try:
        value = float(text)
    except ValueError:
        return text
    if Path(text).exists():
        raise DiffdiffError(f"--map {text} is both a number and a file; write ./{text} for the file")
    return value


def read_strength(strength_map, image_size: tuple[int, int], invert: bool = False) -> StrengthMap:
    """The map at the image's (width, height), checked once (finite, in [0, 1], same aspect ratio).

    `strength_map`: a number (constant map), a file path, a PIL image, or an array/tensor (H, W).
    """
    from ..maps import as_map, image_to_map, load_map, resize

    width, height = image_size
    if isinstance(strength_map, bool) or strength_map is None:
        raise DiffdiffError(f"strength map must be a number, an array, an image or a file path; "
                            f"got {strength_map!r}")
    elif isinstance(strength_map, (int, float, np.floating, np.integer)):
        value = checks.number(strength_map, "strength map value", 0.0, 1.0)
        values, description = np.full((height, width), value, np.float32), f"constant {value:g}"
    elif isinstance(strength_map, (str, os.PathLike)):
        values, description = load_map(strength_map), Path(strength_map).name
    elif isinstance(strength_map, Image.Image):
        values, description = image_to_map(strength_map), "image"
    else:
        values, description = as_map(strength_map, "strength map"), "array"
    check_aspect(image_size, values.shape)
    if values.shape != (height, width):
        values = resize(values, (height, width))  # area down, bicubic up, per axis
    if invert:
        values = 1.0 - values
        description += " (inverted)"
    return StrengthMap(values.astype(np.float32, copy=False), description)
