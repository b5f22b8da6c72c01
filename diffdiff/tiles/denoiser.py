"""TiledDenoiser: run an inner denoiser tile by tile, batch tiles together, blend their x0, skip idle tiles.

Batch layout: the inner denoiser sees items (tile, image) stacked along the batch dimension, up to
`tile_batch` tiles × B images per call, grouped by tile shape. Every spatial input is sliced per item: x,
the active mask (passed on only to an inner that itself accepts it) and any tensor keyword argument whose
first dimension is B and last two are the latent's (H, W); other tensors with first dimension B are
indexed per item; sigma is expanded to the item batch.

Skipping is exact: an (image, tile) item whose active-mask slice is all zero is not evaluated. Such a tile
holds only inactive pixels, which the differential gate replaces, and every active pixel is covered only
by evaluated tiles, whose contributions are summed in the same (tile) order as without skipping, so active
pixels come out bit-identical. Pixels that no evaluated tile covers return x unchanged.

The blend is channel-wise and takes the inner denoiser's channel count: an inner that returns more channels
than x (a multiple: CFG's guided and unconditional x0 stacked, asked for by the CFG++ samplers with
``with_uncond=True``, which reaches the inner like any keyword) gets every block blended with the same
weights; uncovered pixels then return x in each block.
"""

from __future__ import annotations

import numpy as np
import torch

from .blend import BLENDS, spot_windows, tile_weight
from .plan import Tile


class TiledDenoiser:
    """`(x, sigma, active_mask=None, **kw) -> x0` over `tiles` of the latent grid, blended by `blend`.

    Counters: `calls` (calls to this object), `tile_calls` ((image, tile) items evaluated) and
    `tile_calls_without_skip` (items there would have been with skipping off). With blend="spot" the
    tiles only set the window size: windows are re-drawn at each call from `seed` and the call index.
    `blend` (one of `BLENDS`) and `tile_batch` (>= 1) come checked by the caller.
    """

    accepts_active_mask = True

    def __init__(self, inner, tiles: list[Tile], blend: str = "mixture", tile_batch: int = 4,
                 skip: bool = True, seed: int = 0):
        assert tiles and blend in BLENDS and tile_batch >= 1, (len(tiles), blend, tile_batch)
        self.inner = inner
        self.tiles = list(tiles)
        self.blend = blend
        self.tile_batch = tile_batch
        self.skip = skip
        self.seed = int(seed)
        self.calls = 0
        self.tile_calls = 0
        self.tile_calls_without_skip = 0
        self._weights: dict[tuple[int, int], torch.Tensor] = {}
        self._inner_takes_mask = bool(getattr(inner, "accepts_active_mask", False))

    @property
    def model_sampling(self):
        return getattr(self.inner, "model_sampling", None)

    def tiles_for_call(self, height: int, width: int, call_index: int) -> list[Tile]:
        """The tiles used at call number `call_index` (fixed, or fresh shifted windows for spot)."""
        if self.blend == "spot":
            window = (max(t.h for t in self.tiles), max(t.w for t in self.tiles))
            rng = np.random.default_rng([self.seed, call_index])
            return spot_windows(height, width, window, rng)
        return self.tiles

    def _weight(self, tile: Tile, like: torch.Tensor) -> torch.Tensor:
        key = tile.shape
        if key not in self._weights:
            self._weights[key] = tile_weight(tile, self.blend)
        return self._weights[key].to(device=like.device, dtype=like.dtype)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, active_mask: torch.Tensor | None = None, **kw):
        batch, _, height, width = x.shape
        tiles = self.tiles_for_call(height, width, self.calls)
        self.calls += 1
        if any(t.y < 0 or t.x < 0 or t.y + t.h > height or t.x + t.w > width for t in tiles):
            raise ValueError(f"a tile lies outside the {height}x{width} latent; plan tiles for this size")
        items = self._items(tiles, batch, active_mask)
        outputs = self._evaluate(x, sigma, active_mask, kw, tiles, items)
        acc_dtype = torch.promote_types(x.dtype, torch.float32)
        channels = next(iter(outputs.values())).shape[0] if outputs else x.shape[1]
        total = torch.zeros((batch, channels, height, width), dtype=acc_dtype, device=x.device)
        weight_sum = torch.zeros((batch, 1, height, width), dtype=acc_dtype, device=x.device)
        for item in items:  # tile order, identical with and without skipping
            tile_index, image = item
            tile = tiles[tile_index]
            weight = self._weight(tile, total)
            total[image, :, tile.rows, tile.cols] += weight * outputs[item].to(acc_dtype)
            weight_sum[image, :, tile.rows, tile.cols] += weight
        covered = weight_sum > 0
        blended = total / torch.where(covered, weight_sum, torch.ones_like(weight_sum))
        uncovered = x if channels == x.shape[1] else x.repeat(1, channels // x.shape[1], 1, 1)
        return torch.where(covered, blended, uncovered.to(acc_dtype)).to(x.dtype)

    def _items(self, tiles: list[Tile], batch: int, active_mask: torch.Tensor | None):
        items = []
        for tile_index, tile in enumerate(tiles):
            for image in range(batch):
                self.tile_calls_without_skip += 1
                if self.skip and active_mask is not None:
                    if not bool(active_mask[image, :, tile.rows, tile.cols].any()):
                        continue
                items.append((tile_index, image))
        self.tile_calls += len(items)
        return items

    def _evaluate(self, x, sigma, active_mask, kw, tiles, items) -> dict:
        batch, _, height, width = x.shape
        groups: dict[tuple[int, int], list] = {}
        for item in items:
            groups.setdefault(tiles[item[0]].shape, []).append(item)
        sigma = torch.as_tensor(sigma, device=x.device)
        sigma = sigma.reshape(-1).expand(batch) if sigma.numel() in (1, batch) else sigma
        spatial_kw = dict(kw)
        if active_mask is not None and self._inner_takes_mask:
            spatial_kw["active_mask"] = active_mask
        outputs = {}
        chunk_size = self.tile_batch * batch
        for group in groups.values():
            for start in range(0, len(group), chunk_size):
                chunk = group[start:start + chunk_size]
                images = torch.tensor([image for _, image in chunk], device=x.device)
                x_in = torch.stack([x[image, :, tiles[t].rows, tiles[t].cols] for t, image in chunk])
                args = {k: _slice_arg(v, chunk, tiles, images, batch, height, width)
                        for k, v in spatial_kw.items()}
                x0 = self.inner(x_in, sigma[images], **args)
                for k, item in enumerate(chunk):
                    outputs[item] = x0[k]
        return outputs


def _slice_arg(value, chunk, tiles, images, batch, height, width):
    """Per-item version of one keyword argument (see the module docstring for the rule)."""
    if not isinstance(value, torch.Tensor) or value.ndim == 0 or value.shape[0] != batch:
        return value
    if value.ndim >= 3 and tuple(value.shape[-2:]) == (height, width):
        return torch.stack([value[image, ..., tiles[t].rows, tiles[t].cols] for t, image in chunk])
    return value[images.to(value.device)]
