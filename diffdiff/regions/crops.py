"""Crop and stitch geometry: boxes around the map's edited regions, the size each crop is edited at, and the
resizing and pasting that take a crop there and back.

When the non-zero part of the strength map is small next to the image, the pipeline edits only crops around
it. A region is an 8-connected group of non-zero map pixels; its box is its bounding box grown by a context
margin, and boxes that overlap or touch are merged into one. Boxes use pixel coordinates with right and
bottom exclusive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import DiffdiffError

CROP_AUTO_FRACTION = 0.5  # crop only when the boxes together cover at most this share of the image
MIN_CONTEXT = 32  # pixels: the smallest automatic context
MAX_REGIONS = 1024  # more separate regions than this (a speckled map) → one box around all of them


@dataclass(frozen=True)
class CropBox:
    """A rectangle of pixels: columns left..right-1, rows top..bottom-1."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        """Number of columns."""
        return self.right - self.left

    @property
    def height(self) -> int:
        """Number of rows."""
        return self.bottom - self.top

    @property
    def area(self) -> int:
        """Number of pixels."""
        return self.width * self.height

    @property
    def slices(self) -> tuple[slice, slice]:
        """`(rows, columns)` slices that cut this box out of an (H, W, ...) array."""
        return slice(self.top, self.bottom), slice(self.left, self.right)


def auto_context(width: int, height: int) -> int:
    """The default context (`--context`) around a region whose bounding box is `width` × `height`: half the
    longer side, at least 32 px, rounded up to a multiple of 8."""
    half = max(MIN_CONTEXT, math.ceil(max(width, height) / 2))
    return -(-half // 8) * 8


def merge_boxes(boxes: Sequence[CropBox]) -> list[CropBox]:
    """Replace boxes that overlap or touch (share an edge or a corner) by their union box, repeatedly, until
    no two boxes overlap or touch. Sorted by (top, left)."""
    if not boxes:
        return []
    edges = np.array([(b.left, b.top, b.right, b.bottom) for b in boxes], dtype=np.int64)
    while len(edges) > 1:
        left, top, right, bottom = edges.T
        near = ((left[:, None] <= right[None]) & (left[None] <= right[:, None])
                & (top[:, None] <= bottom[None]) & (top[None] <= bottom[:, None]))
        if near.sum() == len(edges):  # only the diagonal: nothing left to merge
            break
        group = np.arange(len(edges))
        while True:  # label each connected group of the `near` graph by its smallest member
            spread = np.where(near, group[None], len(edges)).min(axis=1)
            if np.array_equal(spread, group):
                break
            group = spread
        keys, group = np.unique(group, return_inverse=True)
        merged = np.empty((len(keys), 4), dtype=np.int64)
        merged[:, :2] = np.iinfo(np.int64).max
        merged[:, 2:] = np.iinfo(np.int64).min
        np.minimum.at(merged[:, 0], group, left)
        np.minimum.at(merged[:, 1], group, top)
        np.maximum.at(merged[:, 2], group, right)
        np.maximum.at(merged[:, 3], group, bottom)
        edges = merged
    found = [CropBox(*(int(v) for v in row)) for row in edges]
    return sorted(found, key=lambda b: (b.top, b.left))


def _round_up_side(start: int, stop: int, limit: int, multiple: int) -> tuple[int, int]:
    """Grow [start, stop) to a length that is a multiple of `multiple`, centred where room allows and kept
    inside [0, limit); the whole [0, limit) when the image is not that long."""
    target = -(-(stop - start) // multiple) * multiple
    if target >= limit:
        return 0, limit
    extra = target - (stop - start)
    start, stop = start - extra // 2, stop + extra - extra // 2
    if start < 0:
        start, stop = 0, stop - start
    if stop > limit:
        start, stop = start - (stop - limit), limit
    return start, stop


def _round_up_box(box: CropBox, image_width: int, image_height: int, multiple: int) -> CropBox:
    """`box` grown to a width and height that are multiples of `multiple` where the image allows."""
    left, right = _round_up_side(box.left, box.right, image_width, multiple)
    top, bottom = _round_up_side(box.top, box.bottom, image_height, multiple)
    return CropBox(left, top, right, bottom)


def find_crop_boxes(strength: np.ndarray, context: int | None = None, multiple: int = 8) -> list[CropBox]:
    """Boxes to edit around the non-zero regions of `strength` (H, W), sorted by (top, left).

    Each 8-connected region's bounding box is grown by `context` px on every side (None: `auto_context` of
    that region's box) and clipped to the image; overlapping or touching boxes are merged into their union;
    then each box is grown to a width and height that are multiples of `multiple` (the whole image side
    where the image is not that big), merging again if that made boxes meet. The result covers every
    non-zero pixel and no two boxes overlap or touch. A map with more than MAX_REGIONS separate regions gets
    one box around all of them. An all-zero map gives [].
    """
    strength = np.asarray(strength)
    if strength.ndim != 2 or strength.size == 0:
        raise DiffdiffError(f"strength map must be a non-empty 2-D (height, width) array; got shape "
                            f"{strength.shape}")
    if context is not None and context < 0:
        raise DiffdiffError(f"crop context must be 0 or more pixels; got {context}")
    if multiple < 1:
        raise DiffdiffError(f"crop size multiple must be a positive number of pixels; got {multiple}")
    height, width = strength.shape
    nonzero = (strength > 0).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(nonzero, connectivity=8)
    if count <= 1:
        return []
    regions = [(int(x), int(y), int(w), int(h)) for x, y, w, h, _ in stats[1:]]
    if len(regions) > MAX_REGIONS:
        x0 = min(r[0] for r in regions)
        y0 = min(r[1] for r in regions)
        regions = [(x0, y0, max(r[0] + r[2] for r in regions) - x0, max(r[1] + r[3] for r in regions) - y0)]
    boxes = []
    for x, y, w, h in regions:
        grow = auto_context(w, h) if context is None else int(context)
        boxes.append(CropBox(max(0, x - grow), max(0, y - grow), min(width, x + w + grow),
                             min(height, y + h + grow)))
    boxes = merge_boxes(boxes)
    while True:
        grown = [_round_up_box(b, width, height, multiple) for b in boxes]
        merged = merge_boxes(grown)
        if len(merged) == len(grown):
            return merged
        boxes = merged


def should_crop(boxes: Sequence[CropBox], image_size: tuple[int, int]) -> bool:
    """True when there is at least one box and the boxes' total area is at most CROP_AUTO_FRACTION of the
    image's (`image_size` is (width, height))."""
    if not boxes:
        return False
    image_area = image_size[0] * image_size[1]
    return sum(b.area for b in boxes) <= CROP_AUTO_FRACTION * image_area


def _nearest_multiple(value: float, multiple: int) -> int:
    """`value` rounded to the nearest multiple of `multiple`, at least `multiple`."""
    return max(multiple, round(value / multiple) * multiple)


def edit_size(box: CropBox, native_area: int, multiple: int = 8, max_scale: float = 4.0) -> tuple[int, int]:
    """The (width, height) the crop in `box` is edited at.

    The scale s = sqrt(native_area / box.area), clamped to [1, max_scale], enlarges small crops to about the
    model's native area; crops at or above it keep their own size (the pipeline tiles those). Each side is
    round(side · s) rounded to the nearest multiple of `multiple` (at least `multiple`), so the aspect ratio
    is kept as closely as that rounding allows.
    """
    if box.width <= 0 or box.height <= 0:
        raise DiffdiffError(f"crop box {box} is empty")
    if native_area <= 0 or multiple < 1 or max_scale < 1:
        raise DiffdiffError(f"edit size needs native_area > 0, multiple ≥ 1 and max_scale ≥ 1; got "
                            f"{native_area}, {multiple}, {max_scale}")
    scale = min(max(math.sqrt(native_area / box.area), 1.0), float(max_scale))
    return (_nearest_multiple(round(box.width * scale), multiple),
            _nearest_multiple(round(box.height * scale), multiple))


def _interpolation(old: tuple[int, int], new: tuple[int, int], enlarge: int) -> int:
    """`enlarge` when either side grows, else INTER_AREA (shrinking averages, so it does not alias)."""
    return enlarge if new[0] > old[0] or new[1] > old[1] else cv2.INTER_AREA


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    """`size` as a (width, height) pair of positive ints."""
    width, height = (int(v) for v in size)
    if width < 1 or height < 1:
        raise DiffdiffError(f"resize target must be at least 1×1 pixels; got {width}×{height}")
    return width, height


def resize_pixels(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (h, w, 3) `pixels` resized to `size` = (width, height): Lanczos when enlarging (either side
    grows), area averaging when shrinking; the same size gives a copy."""
    width, height = _check_size(size)
    old = (pixels.shape[1], pixels.shape[0])
    if old == (width, height):
        return pixels.copy()
    method = _interpolation(old, (width, height), cv2.INTER_LANCZOS4)
    return cv2.resize(pixels, (width, height), interpolation=method)


def resize_map(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 (h, w) map resized to `size` = (width, height), clipped to [0, 1]: bilinear when enlarging
    (either side grows), area averaging when shrinking; the same size gives a copy.

    A pixel of the result is exactly 0 when every input pixel the interpolation reads for it is 0; nothing
    stronger is enforced (a zero next to a non-zero pixel may become a small positive value).
    """
    width, height = _check_size(size)
    values = np.asarray(values, dtype=np.float32)
    old = (values.shape[1], values.shape[0])
    if old == (width, height):
        return np.clip(values, 0.0, 1.0)
    method = _interpolation(old, (width, height), cv2.INTER_LINEAR)
    return np.clip(cv2.resize(values, (width, height), interpolation=method), 0.0, 1.0)


def paste(base: np.ndarray, patch: np.ndarray, box: CropBox) -> np.ndarray:
    """A copy of `base` with `patch` (box.height, box.width, same channels as `base`) written into `box`."""
    if box.left < 0 or box.top < 0 or box.right > base.shape[1] or box.bottom > base.shape[0]:
        raise DiffdiffError(f"crop box {box} does not fit in a {base.shape[1]}×{base.shape[0]} image")
    expected = (box.height, box.width) + tuple(base.shape[2:])
    if tuple(patch.shape) != expected:
        raise DiffdiffError(f"patch has shape {tuple(patch.shape)} but box {box} needs {expected}")
    out = base.copy()
    out[box.slices] = patch
    return out
