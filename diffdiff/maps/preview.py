"""Previews: paint a strength map over its image with a colour ramp and a legend bar labelled 0 … 1.

Blue = keep (0), yellow = half, red = change fully (1): a person sees at a glance what changes, how much.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from diffdiff.errors import DiffdiffError
from diffdiff.imageio import same_aspect

from .io import as_map
from .ops import resize

# (position, RGB): a blue → cyan → yellow → orange → red ramp, lightness rising to the middle.
RAMP_STOPS = (
    (0.00, (38, 58, 160)),
    (0.25, (70, 160, 205)),
    (0.50, (250, 232, 110)),
    (0.75, (244, 140, 50)),
    (1.00, (196, 28, 36)),
)


def colour_ramp(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to uint8 RGB colours along RAMP_STOPS (shape (..., 3))."""
    positions = np.array([p for p, _ in RAMP_STOPS])
    colours = np.array([c for _, c in RAMP_STOPS], dtype=np.float64)
    values = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    channels = [np.interp(values, positions, colours[:, k]) for k in range(3)]
    return np.round(np.stack(channels, axis=-1)).astype(np.uint8)


def fit_map_to_image(strength_map, width: int, height: int) -> np.ndarray:
    """The map at the image's size: resized when the aspect ratio matches, else DiffdiffError."""
    m = as_map(strength_map)
    if m.shape == (height, width):
        return m
    if not same_aspect(m.shape, (height, width)):
        raise DiffdiffError(f"map is {m.shape[1]}x{m.shape[0]} but the image is {width}x{height} "
                            "(different aspect ratio); make a map the image's shape")
    return resize(m, (height, width))


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # older Pillow / no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def legend(width: int) -> Image.Image:
    """A strip with the colour ramp from 0 to 1 and its labels, `width` pixels wide."""
    margin = max(6, width // 24)
    bar_height = max(8, width // 24)
    text_size = max(9, width // 22)
    pad = max(3, text_size // 3)
    strip = Image.new("RGB", (width, pad + bar_height + pad + text_size + pad), (255, 255, 255))
    bar_width = max(2, width - 2 * margin)
    ramp = colour_ramp(np.linspace(0.0, 1.0, bar_width))
    strip.paste(Image.fromarray(np.repeat(ramp[None], bar_height, axis=0)), (margin, pad))
    draw = ImageDraw.Draw(strip)
    draw.rectangle((margin - 1, pad - 1, margin + bar_width, pad + bar_height), outline=(60, 60, 60))
    font = _font(text_size)
    text_y = pad + bar_height + pad // 2
    labels = ((0.0, "0 keep", "la"), (0.5, "0.5", "ma"), (1.0, "1 change", "ra"))
    for position, text, anchor in labels:
        x = margin + position * (bar_width - 1)
        draw.line((x, pad + bar_height, x, pad + bar_height + pad // 2), fill=(60, 60, 60))
        try:
            draw.text((x, text_y), text, fill=(30, 30, 30), font=font, anchor=anchor)
        except ValueError:  # bitmap fonts take no anchor
            draw.text((x, text_y), text, fill=(30, 30, 30), font=font)
    return strip


def preview_image(image: Image.Image, strength_map, opacity: float = 0.55) -> Image.Image:
    """The image, in grey, with the map painted over it (colour ramp at `opacity`) and a legend bar below."""
    opacity = float(opacity)
    if not math.isfinite(opacity) or not 0.0 <= opacity <= 1.0:
        raise DiffdiffError(f"opacity must be in [0, 1]; got {opacity}")
    rgb = image.convert("RGB")
    width, height = rgb.size
    m = fit_map_to_image(strength_map, width, height)
    # a grey base keeps the ramp's colours true (a blue tint over a yellow sun would read as grey)
    base = np.asarray(rgb.convert("L"), dtype=np.float64)[..., None]
    tint = colour_ramp(m).astype(np.float64)
    mixed = np.round(base * (1.0 - opacity) + tint * opacity).astype(np.uint8)
    bar = legend(width)
    canvas = Image.new("RGB", (width, height + bar.height), (255, 255, 255))
    canvas.paste(Image.fromarray(mixed), (0, 0))
    canvas.paste(bar, (0, height))
    return canvas
