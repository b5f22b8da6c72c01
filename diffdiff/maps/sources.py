"""Maps made from numbers: solid value, linear and radial gradients, strength fans, and region tables.

Every function returns a float32 (H, W) map in [0, 1] (white = change fully, black = keep).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageColor

from diffdiff.errors import DiffdiffError

from .io import open_image


def check_size(height: int, width: int) -> tuple[int, int]:
    """Validate a map size (both sides positive integers)."""
    if int(height) != height or int(width) != width or height < 1 or width < 1:
        raise DiffdiffError(f"map size must be positive whole pixels; got {width}x{height}")
    return int(height), int(width)


def check_strength(value: float, name: str = "value") -> float:
    """Validate one strength value (finite, within [0, 1])."""
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise DiffdiffError(f"{name} must be a strength in [0, 1]; got {value}")
    return value


def _check_gamma(gamma: float) -> float:
    gamma = float(gamma)
    if not math.isfinite(gamma) or gamma <= 0:
        raise DiffdiffError(f"gamma must be a positive number; got {gamma}")
    return gamma


def solid(height: int, width: int, value: float) -> np.ndarray:
    """A map of one value everywhere."""
    height, width = check_size(height, width)
    return np.full((height, width), check_strength(value), dtype=np.float32)


def linear_gradient(height: int, width: int, angle: float = 0.0, start: float = 0.0, end: float = 1.0,
                    gamma: float = 1.0) -> np.ndarray:
    """A straight ramp from `start` to `end` along direction `angle` (degrees, counter-clockwise, y up).

    0° runs left → right, 90° bottom → top, 180° right → left, 270° top → bottom. The ramp spans the whole
    image: the first pixel centre met along the direction gets `start`, the last `end`. Position t ∈ [0, 1] is
    shaped as t**gamma before mixing.
    """
    height, width = check_size(height, width)
    start, end = check_strength(start, "start"), check_strength(end, "end")
    gamma = _check_gamma(gamma)
    if not math.isfinite(angle):
        raise DiffdiffError(f"angle must be a finite number of degrees; got {angle}")
    theta = math.radians(angle)
    xs = np.arange(width, dtype=np.float64)
    ys = np.arange(height, dtype=np.float64)
    projection = xs[None, :] * math.cos(theta) - ys[:, None] * math.sin(theta)
    low, high = projection.min(), projection.max()
    if high - low < 1e-12:  # a single pixel across the ramp direction
        position = np.zeros_like(projection)
    else:
        position = (projection - low) / (high - low)
    values = start + (end - start) * np.power(position, gamma)
    return np.clip(values, 0.0, 1.0).astype(np.float32)


def radial_gradient(height: int, width: int, centre: tuple[float, float] = (0.5, 0.5),
                    radius: float | None = None, inner: float = 1.0, outer: float = 0.0,
                    gamma: float = 1.0) -> np.ndarray:
    """A round ramp: `inner` at the centre, `outer` at distance `radius` pixels and beyond.

    `centre` is (x, y) as fractions of the width and height (0.5, 0.5 = the middle); `radius` defaults to
    half the shorter side. Distance d gives t = min(d / radius, 1) ** gamma.
    """
    height, width = check_size(height, width)
    inner, outer = check_strength(inner, "inner"), check_strength(outer, "outer")
    gamma = _check_gamma(gamma)
    radius = min(height, width) / 2.0 if radius is None else float(radius)
    if not math.isfinite(radius) or radius <= 0:
        raise DiffdiffError(f"radius must be a positive number of pixels; got {radius}")
    cx, cy = (float(c) for c in centre)
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise DiffdiffError(f"centre must be finite fractions of the image size; got {centre}")
    centre_x, centre_y = cx * width - 0.5, cy * height - 0.5  # pixel-centre coordinates
    xs = np.arange(width, dtype=np.float64)[None, :] - centre_x
    ys = np.arange(height, dtype=np.float64)[:, None] - centre_y
    position = np.minimum(np.hypot(xs, ys) / radius, 1.0)
    values = inner + (outer - inner) * np.power(position, gamma)
    return np.clip(values, 0.0, 1.0).astype(np.float32)


def strength_fan(height: int, width: int, bands: int = 5, start: float = 0.0, end: float = 1.0,
                 vertical: bool = True) -> np.ndarray:
    """The paper's preview trick: `bands` equal stripes whose strengths step evenly from `start` to `end`.

    Vertical bands (default) step left → right; `vertical=False` gives horizontal bands stepping top → bottom.
    One run with this map previews `bands` strengths side by side.
    """
    height, width = check_size(height, width)
    start, end = check_strength(start, "start"), check_strength(end, "end")
    span = width if vertical else height
    if int(bands) != bands or not 1 <= bands <= span:
        raise DiffdiffError(f"bands must be a whole number from 1 to {span}; got {bands}")
    bands = int(bands)
    levels = np.linspace(start, end, bands) if bands > 1 else np.array([start])
    index = np.minimum(np.arange(span) * bands // span, bands - 1)
    line = levels[index].astype(np.float32)
    values = np.broadcast_to(line[None, :], (height, width)) if vertical else np.broadcast_to(
        line[:, None], (height, width))
    return np.ascontiguousarray(values)


# ---------------------------------------------------------------- regions


def _parse_key(key) -> tuple[str, object]:
    """A table key as ("label", int) or ("colour", (r, g, b))."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return "label", int(key)
    text = str(key).strip()
    if text.lstrip("-").isdigit():
        return "label", int(text)
    try:
        rgb = ImageColor.getrgb(text)
    except ValueError:
        raise DiffdiffError(
            f"region key {text!r} is neither a label number nor a colour (#rrggbb, #rgb or a colour name)"
        ) from None
    return "colour", tuple(int(c) for c in rgb[:3])


def parse_region_table(spec) -> dict:
    """Read a region table: a mapping, a JSON object text, a path to a .json file, or "key=value" strings.

    Keys are colours ("#ff0000", "#f00", "red") or integer labels; values are strengths in [0, 1].
    """
    text = str(spec) if isinstance(spec, (str, os.PathLike)) else None
    if text is not None and not text.lstrip().startswith("{") and "=" not in text:
        path = Path(spec)
        if not path.is_file():
            raise DiffdiffError(f"region table {str(spec)!r} is not a JSON object, key=value pairs or a file")
        spec = path.read_text(encoding="utf-8")
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise DiffdiffError(f"region table is not valid JSON: {exc.msg} at position {exc.pos}") from None
        if not isinstance(spec, dict):
            raise DiffdiffError("region table JSON must be an object {\"#rrggbb\": strength, ...}")
    if isinstance(spec, str):
        spec = [spec]
    if isinstance(spec, Mapping):
        pairs = list(spec.items())
    elif isinstance(spec, Iterable):
        pairs = []
        for item in spec:
            for part in str(item).split(","):
                if not part.strip():
                    continue
                if "=" not in part:
                    raise DiffdiffError(f"region entry {part.strip()!r} must be KEY=VALUE like '#ff0000=0.3'")
                key, value = part.rsplit("=", 1)
                pairs.append((key.strip(), value.strip()))
    else:
        raise DiffdiffError(f"cannot read a region table from {type(spec).__name__}")
    if not pairs:
        raise DiffdiffError("region table is empty; give at least one KEY=VALUE")
    table: dict = {}
    for key, value in pairs:
        try:
            strength = float(value)
        except (TypeError, ValueError):
            raise DiffdiffError(f"region {key!r}: strength {value!r} is not a number") from None
        table[_parse_key(key)] = check_strength(strength, f"region {key!r} strength")
    return table


def _nearest_values(present: np.ndarray, lookup: dict, grey: bool) -> dict:
    """For every present key, the strength of the nearest table key (RGB or grey distance)."""
    def points(keys):
        keys = np.asarray(keys, dtype=np.int64)
        if grey:
            return keys[:, None].astype(np.float64)
        return np.stack([(keys >> 16) & 255, (keys >> 8) & 255, keys & 255], axis=1).astype(np.float64)

    table_keys = list(lookup)
    distances = ((points(present)[:, None, :] - points(table_keys)[None, :, :]) ** 2).sum(axis=2)
    closest = distances.argmin(axis=1)
    return {int(k): lookup[table_keys[i]] for k, i in zip(present.tolist(), closest.tolist())}


def region_map(labels: Image.Image | str | os.PathLike, table, default: float | None = None,
               nearest: bool = False) -> np.ndarray:
    """A map with one strength per region of a colour-coded or label image, from `table`.

    Colour images (RGB, RGBA, palette) are matched by exact RGB colour; grayscale images by pixel value
    (integer label, or a grey colour such as "#808080" = 128). A region absent from the table raises an error
    naming it, unless `default` gives the strength for everything unlisted, or `nearest=True` gives each
    unlisted colour the strength of the closest listed one (for anti-aliased or JPEG-saved region images).
    """
    if not isinstance(table, dict) or not all(isinstance(k, tuple) for k in table):
        table = parse_region_table(table)
    if default is not None:
        default = check_strength(default, "default")
    image = labels if isinstance(labels, Image.Image) else open_image(labels)
    grey = image.mode in ("L", "I", "I;16", "I;16L", "I;16B", "1", "LA")
    if grey:
        source = image.convert("L") if image.mode in ("1", "LA") else image
        keys = np.asarray(source, dtype=np.int64)
        lookup = {}
        for (kind, key), value in table.items():
            if kind == "colour":
                if not key[0] == key[1] == key[2]:
                    continue  # a non-grey colour cannot occur in a grayscale image
                key = key[0]
            lookup[key] = value
        describe = lambda k: f"label {k}"  # noqa: E731
    else:
        rgb = np.asarray(image.convert("RGB"), dtype=np.int64) if image.mode not in ("I;16", "F") else None
        if rgb is None:
            raise DiffdiffError(f"region image mode {image.mode!r} is not supported; use an RGB or 8-bit PNG")
        keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        lookup = {}
        for (kind, key), value in table.items():
            if kind == "label":
                raise DiffdiffError(f"label {key} cannot index a colour image; use colours (#rrggbb)")
            lookup[(key[0] << 16) | (key[1] << 8) | key[2]] = value
        describe = lambda k: f"#{k:06x}"  # noqa: E731
    present, counts = np.unique(keys, return_counts=True)
    if nearest and lookup:
        lookup = {**_nearest_values(present, lookup, grey), **lookup}
    missing = [(k, n) for k, n in zip(present.tolist(), counts.tolist()) if k not in lookup]
    if missing and default is None:
        shown = ", ".join(f"{describe(k)} ({n} px)" for k, n in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DiffdiffError(f"region(s) {shown}{more} are in the image but not in the table; "
                            "add them or give a default strength")
    values = np.array([lookup.get(k, default) for k in present.tolist()], dtype=np.float32)
    return values[np.searchsorted(present, keys)]

