"""The value checks every request field uses: each returns the normalised value or raises one DiffdiffError
line that names the option, what it must be, and what was given."""

from __future__ import annotations

import math

import numpy as np

from ..errors import DiffdiffError


def choice(value, choices, what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise DiffdiffError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return value


def number(value, what: str, low: float, high: float, *, low_open: bool = False) -> float:
    """A finite float in [low, high] (or (low, high] with `low_open`)."""
    if isinstance(value, bool):
        raise DiffdiffError(f"{what} must be a number; got {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise DiffdiffError(f"{what} must be a number; got {value!r}") from None
    too_low = result <= low if low_open else result < low
    if not math.isfinite(result) or too_low or result > high:
        bracket = "(" if low_open else "["
        raise DiffdiffError(f"{what} must lie in {bracket}{low:g}, {high:g}]; got {value!r}")
    return result


def count(value, what: str, low: int = 1, high: int = 10_000) -> int:
    """An integer in [low, high] (bools and floats refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise DiffdiffError(f"{what} must be an integer in [{low}, {high}]; got {value!r}")
    return int(value)


def layer_list(value, what: str) -> tuple[int, ...]:
    """Network block numbers: "7, 8, 9" or a sequence of non-negative integers; at least one."""
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    try:
        layers = tuple(count(int(item) if isinstance(item, str) else item, what, 0, 1000) for item in items)
    except (TypeError, ValueError):
        raise DiffdiffError(f"{what} must be block numbers such as 7,8,9; got {value!r}") from None
    if not layers:
        raise DiffdiffError(f"{what} must name at least one block; got {value!r}")
    return layers


def flag(value, what: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise DiffdiffError(f"{what} must be True or False; got {value!r}")
    return bool(value)


def tile_size(value, what: str = "tile") -> str | int:
    """"auto", "off" or a size in pixels (a multiple of 8, at least 64)."""
    if isinstance(value, str) and value in ("auto", "off"):
        return value
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise DiffdiffError(f"{what} must be auto, off or a size in pixels; got {value!r}") from None
    if isinstance(value, bool) or isinstance(value, float) and value != size or size < 64 or size % 8:
        raise DiffdiffError(f"{what} size must be a multiple of 8 and at least 64 pixels; got {value!r}")
    return size


def text(value, what: str) -> str:
    """A prompt: a str that is valid Unicode (a command-line argument of invalid UTF-8 is refused)."""
    if not isinstance(value, str):
        raise DiffdiffError(f"{what} must be text; got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise DiffdiffError(f"{what} is not valid UTF-8 text") from None
    return value
