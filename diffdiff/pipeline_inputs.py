"""Checking and preparing the pipeline's inputs: option validation, the pixel strength map, padding, tensors.

Everything here runs before a model is touched, so bad input fails in milliseconds with a `DiffdiffError`
naming the problem (and, where there is a choice, the valid choices).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from diffdiff.errors import DiffdiffError
from diffdiff.imageio import check_aspect

GATES = ("exact", "comfy", "mask")
BLENDS = ("mixture", "multidiffusion", "spot")
MIN_SIDE = 8


def sampler_names() -> tuple[str, ...]:
    from diffdiff.sampling import SAMPLERS

    return tuple(SAMPLERS)


def scheduler_names() -> tuple[str, ...]:
    from diffdiff.sampling import SCHEDULERS

    return tuple(SCHEDULERS)


def _choice(value, choices, what: str) -> str:
    if value not in choices:
        raise DiffdiffError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return value


def _number(value, what: str, low: float, high: float, *, low_open: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DiffdiffError(f"{what} must be a number; got {value!r}") from None
    too_low = number <= low if low_open else number < low
    if not math.isfinite(number) or too_low or number > high:
        bracket = "(" if low_open else "["
        raise DiffdiffError(f"{what} must lie in {bracket}{low:g}, {high:g}]; got {value!r}")
    return number


def _count(value, what: str, low: int = 1, high: int = 10_000) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise DiffdiffError(f"{what} must be an integer in [{low}, {high}]; got {value!r}")
    return int(value)


def parse_tile(tile) -> str | int:
    """`tile` as given by a user: "auto", "off" or a size in pixels (a multiple of 8, at least 64)."""
    if isinstance(tile, str) and tile in ("auto", "off"):
        return tile
    try:
        size = int(tile)
    except (TypeError, ValueError):
        raise DiffdiffError(f"tile must be auto, off or a size in pixels; got {tile!r}") from None
    if isinstance(tile, float) and tile != size or size < 64 or size % 8:
        raise DiffdiffError(f"tile size must be a multiple of 8 and at least 64 pixels; got {tile!r}")
    return size


def validate_options(*, sampler, scheduler, steps, cfg, denoise, batch, gate, gate_strength, seed,
                     tile, overlap, blend, tile_batch) -> dict:
    """Check every option; return them normalised (numbers as int/float, tile parsed)."""
    options = {
        "sampler": _choice(sampler, sampler_names(), "sampler"),
        "scheduler": _choice(scheduler, scheduler_names(), "scheduler"),
        "steps": _count(steps, "steps", 1, 1000),
        "cfg": _number(cfg, "cfg", 0.0, 100.0),
        "denoise": _number(denoise, "denoise", 0.0, 1.0, low_open=True),
        "batch": _count(batch, "batch", 1, 64),
        "gate": _choice(gate, GATES, "gate mode"),
        "gate_strength": _number(gate_strength, "gate strength", 0.0, 1.0, low_open=True),
        "seed": _count(seed, "seed", 0, 2**63 - 1),
        "tile": parse_tile(tile),
        "blend": _choice(blend, BLENDS, "blend"),
        "tile_batch": _count(tile_batch, "tile batch", 1, 1024),
    }
    options["overlap"] = None if overlap is None else _count(overlap, "overlap", 0, 4096)
    if options["overlap"] is not None and options["overlap"] % 8:
        raise DiffdiffError(f"overlap must be a multiple of 8 pixels; got {overlap!r}")
    if isinstance(options["tile"], int) and options["overlap"] is not None:
        if options["overlap"] >= options["tile"]:
            raise DiffdiffError(f"overlap ({overlap}) must be smaller than the tile size ({tile})")
    return options


def pixel_map(strength_map, image_size: tuple[int, int], invert: bool = False) -> tuple[np.ndarray, str]:
    """The strength map at the image's size, float32 in [0, 1], and a short description for the metadata.

    `strength_map` may be a number (a constant map), a numpy array or tensor, a PIL image, or a file path.
    """
    from diffdiff.maps import as_map, image_to_map, load_map, resize

    if isinstance(strength_map, bool):
        raise DiffdiffError("strength map must be a number, an array, an image or a file path; got a bool")
    if isinstance(strength_map, (int, float, np.floating, np.integer)):
        value = _number(strength_map, "strength map value", 0.0, 1.0)
        array, description = np.full((image_size[1], image_size[0]), value, np.float32), f"constant {value:g}"
    elif isinstance(strength_map, (str, os.PathLike)):
        array, description = load_map(strength_map), Path(strength_map).name
    elif isinstance(strength_map, Image.Image):
        array, description = image_to_map(strength_map), "image"
    else:
        array, description = as_map(strength_map, "strength map"), "array"
    check_aspect(image_size, array.shape)
    if array.shape != (image_size[1], image_size[0]):
        array = resize(array, (image_size[1], image_size[0]))  # area down, bicubic up, per axis
    if invert:
        array = 1.0 - array
        description += " (inverted)"
    return array.astype(np.float32, copy=False), description


def padded_size(width: int, height: int, multiple: int) -> tuple[int, int]:
    return (-(-width // multiple) * multiple, -(-height // multiple) * multiple)


def pad_array(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad (H, W[, C]) at the bottom/right to (height, width): mirrored where possible, else edge-repeated."""
    extra_h, extra_w = height - array.shape[0], width - array.shape[1]
    if extra_h == 0 and extra_w == 0:
        return array
    pads = [(0, extra_h), (0, extra_w)] + [(0, 0)] * (array.ndim - 2)
    mirror = extra_h < array.shape[0] and extra_w < array.shape[1]
    return np.pad(array, pads, mode="reflect" if mirror else "edge")


def image_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) → float32 (1, 3, H, W) in [-1, 1]."""
    tensor = torch.from_numpy(np.array(pixels, dtype=np.uint8, copy=True)).permute(2, 0, 1).float()
    return (tensor / 127.5 - 1.0).unsqueeze(0)


def tensor_to_pixels(images: torch.Tensor) -> list[np.ndarray]:
    """float (B, 3, H, W) in [-1, 1] → list of uint8 (H, W, 3)."""
    scaled = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return [item.permute(1, 2, 0).numpy() for item in scaled]


def check_size(width: int, height: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise DiffdiffError(f"image is {width}x{height}; both sides must be at least {MIN_SIDE} pixels")
