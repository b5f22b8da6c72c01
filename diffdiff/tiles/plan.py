"""Tile planning on the latent grid: a regular overlapping grid and a detail-driven quadtree."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import DiffdiffError


@dataclass(frozen=True)
class Tile:
    """A rectangle of the latent grid: rows y..y+h, columns x..x+w; `level` is its quadtree depth (grid: 0).

    `core` is the part of the rectangle the tile is responsible for when tiles are padded (quadtree leaves,
    tiled VAE): (y, x, h, w) in the same coordinates; for grid tiles it is the whole tile.
    """

    y: int
    x: int
    h: int
    w: int
    level: int = 0
    core: tuple[int, int, int, int] | None = None

    @property
    def rows(self) -> slice:
        return slice(self.y, self.y + self.h)

    @property
    def cols(self) -> slice:
        return slice(self.x, self.x + self.w)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.h, self.w)

    @property
    def core_box(self) -> tuple[int, int, int, int]:
        return self.core if self.core is not None else (self.y, self.x, self.h, self.w)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise DiffdiffError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def axis_starts(size: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of length `tile` covering 0..size with at least `overlap` shared, spread evenly.

    The first tile starts at 0 and the last ends exactly at `size`; a size <= tile gets one tile at 0.
    Starts are multiples of `align` (size and tile are then multiples of it too), rounded down from the
    even spread.
    """
    if size <= tile:
        return [0]
    count = math.ceil((size - overlap) / (tile - overlap))
    span = size - tile
    return [round(i * span / (count - 1)) // align * align for i in range(count)]


def plan_grid(height: int, width: int, tile: int | tuple[int, int], overlap: int = 0,
              align: int = 1) -> list[Tile]:
    """Tiles of `tile` latent px (an int or (th, tw)) over a height×width grid, overlapping by >= `overlap`.

    Tiles are spread evenly so the last one in each direction is flush with the edge; a dimension smaller
    than the tile gets one tile of its own size. Order: row by row, left to right. With `align` > 1 (the
    network's patch: height, width and tile multiples of it) every tile starts at a multiple of `align`.
    """
    height = _positive_int(height, "height")
    width = _positive_int(width, "width")
    tile_h, tile_w = (tile, tile) if not isinstance(tile, (tuple, list)) else tile
    tile_h = _positive_int(tile_h, "tile size")
    tile_w = _positive_int(tile_w, "tile size")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise DiffdiffError(f"overlap must be a non-negative integer, got {overlap!r}")
    if overlap >= min(tile_h, tile_w):
        raise DiffdiffError(f"overlap ({overlap}) must be smaller than the tile size ({min(tile_h, tile_w)})")
    tile_h, tile_w = min(tile_h, height), min(tile_w, width)
    return [
        Tile(y, x, tile_h, tile_w)
        for y in axis_starts(height, tile_h, overlap, align)
        for x in axis_starts(width, tile_w, overlap, align)
    ]


def _split(start: int, length: int) -> list[tuple[int, int]]:
    half = length // 2
    return [(start, half), (start + half, length - half)]


def plan_quadtree(
    detail: np.ndarray,
    max_tile: int,
    min_tile: int,
    threshold: float = 0.5,
    overlap: int = 0,
) -> list[Tile]:
    """Quadtree leaves over a detail map on the latent grid (float (h, w), higher = more detail).

    The grid is first cut into roots of about `max_tile` px; a cell is split into four while the mean
    detail inside it exceeds `threshold` and its halves stay >= `min_tile`. Each leaf becomes a Tile grown
    by `overlap` on every side (clipped to the image); `core` keeps the leaf itself and `level` its depth.
    """
    detail = np.asarray(detail, dtype=np.float64)
    if detail.ndim != 2 or detail.size == 0:
        raise DiffdiffError(f"quadtree detail map must be a 2-D array, got shape {detail.shape}")
    max_tile = _positive_int(max_tile, "max tile size")
    min_tile = _positive_int(min_tile, "min tile size")
    if min_tile > max_tile:
        raise DiffdiffError(f"min tile size ({min_tile}) must not exceed max tile size ({max_tile})")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise DiffdiffError(f"overlap must be a non-negative integer, got {overlap!r}")
    height, width = detail.shape
    # Summed-area table: mean detail of any rectangle in O(1).
    table = np.zeros((height + 1, width + 1))
    table[1:, 1:] = detail.cumsum(0).cumsum(1)

    def mean(y: int, x: int, h: int, w: int) -> float:
        total = table[y + h, x + w] - table[y, x + w] - table[y + h, x] + table[y, x]
        return total / (h * w)

    leaves: list[tuple[int, int, int, int, int]] = []

    def visit(y: int, x: int, h: int, w: int, level: int) -> None:
        if min(h, w) // 2 >= min_tile and mean(y, x, h, w) > threshold:
            for cy, ch in _split(y, h):
                for cx, cw in _split(x, w):
                    visit(cy, cx, ch, cw, level + 1)
        else:
            leaves.append((y, x, h, w, level))

    rows = math.ceil(height / max_tile)
    cols = math.ceil(width / max_tile)
    row_edges = [round(i * height / rows) for i in range(rows + 1)]
    col_edges = [round(j * width / cols) for j in range(cols + 1)]
    for i in range(rows):
        for j in range(cols):
            y, x = row_edges[i], col_edges[j]
            visit(y, x, row_edges[i + 1] - y, col_edges[j + 1] - x, 0)

    tiles = []
    for y, x, h, w, level in leaves:
        y0, x0 = max(0, y - overlap), max(0, x - overlap)
        y1, x1 = min(height, y + h + overlap), min(width, x + w + overlap)
        tiles.append(Tile(y0, x0, y1 - y0, x1 - x0, level=level, core=(y, x, h, w)))
    return tiles
