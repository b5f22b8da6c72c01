"""TiledDenoiser vs a local analytic denoiser: exact interiors, edge error vs overlap, kwarg slicing."""

import numpy as np
import pytest
import torch
from doubles import BOX_RADIUS as RADIUS
from doubles import box_denoiser

from diffdiff.tiles import TiledDenoiser, plan_grid


def interior_mask(tiles, height, width) -> np.ndarray:
    """Pixels at least RADIUS inside every covering tile (tile sides on the image border don't count)."""
    ok = np.ones((height, width), dtype=bool)
    ys, xs = np.mgrid[0:height, 0:width]
    for t in tiles:
        inside = (ys >= t.y) & (ys < t.y + t.h) & (xs >= t.x) & (xs < t.x + t.w)
        far = np.ones_like(inside)
        if t.y > 0:
            far &= ys >= t.y + RADIUS
        if t.y + t.h < height:
            far &= ys < t.y + t.h - RADIUS
        if t.x > 0:
            far &= xs >= t.x + RADIUS
        if t.x + t.w < width:
            far &= xs < t.x + t.w - RADIUS
        ok &= ~inside | far
    return ok


@pytest.mark.parametrize("blend", ["mixture", "multidiffusion", "spot"])
def test_tiled_call_equals_untiled_away_from_tile_edges(blend):
    torch.manual_seed(0)
    height, width = 70, 53  # non-square, not a multiple of the tile
    x = torch.randn(2, 4, height, width)
    sigma = torch.tensor([0.5, 3.0])
    tiler = TiledDenoiser(box_denoiser, plan_grid(height, width, (24, 20), 6), blend=blend, tile_batch=3)
    tiles_used = tiler.tiles_for_call(height, width, 0)
    out = tiler(x, sigma)
    error = (out - box_denoiser(x, sigma)).abs().amax(dim=(0, 1)).numpy()
    interior = interior_mask(tiles_used, height, width)
    assert interior.mean() > 0.5
    assert error[interior].max() <= 1e-6
    if blend != "mixture":  # averaging or cutting makes a visible error somewhere near an edge
        assert error[~interior].max() > 1e-3


def edge_errors(overlap: int, tile: int = 32):
    size = tile + 3 * (tile - overlap)  # four tiles per axis, overlapping by exactly `overlap`
    torch.manual_seed(1)
    x = torch.randn(1, 4, size, size)
    sigma = torch.tensor([0.5])
    reference = box_denoiser(x, sigma)
    tiles = plan_grid(size, size, tile, overlap)
    assert tiles[1].x == tile - overlap
    return {blend: (TiledDenoiser(box_denoiser, tiles, blend=blend)(x, sigma) - reference).abs().max().item()
            for blend in ("mixture", "multidiffusion")}


def test_mixture_edge_error_falls_with_overlap_and_beats_multidiffusion():
    errors = {overlap: edge_errors(overlap) for overlap in (2, 4, 8, 16)}
    mixture = [errors[o]["mixture"] for o in (2, 4, 8, 16)]
    assert all(a > b for a, b in zip(mixture, mixture[1:]))
    assert mixture[-1] < 1e-4
    for overlap, pair in errors.items():
        assert pair["mixture"] <= pair["multidiffusion"], overlap


def test_spot_windows_cover_every_pixel_once_and_move_between_calls():
    tiler = TiledDenoiser(box_denoiser, plan_grid(64, 64, 16, 0), blend="spot", seed=7)
    layouts = []
    for call in range(4):
        coverage = np.zeros((70, 90), dtype=int)
        windows = tiler.tiles_for_call(70, 90, call)
        for t in windows:
            coverage[t.rows, t.cols] += 1
            assert 4 <= t.h <= 16 + 4 and 4 <= t.w <= 16 + 4
        assert (coverage == 1).all()
        layouts.append(windows)
    assert len({tuple(w) for w in layouts}) > 1
    same_seed = TiledDenoiser(box_denoiser, plan_grid(64, 64, 16, 0), blend="spot", seed=7)
    assert same_seed.tiles_for_call(70, 90, 2) == layouts[2]


def test_inputs_are_sliced_per_tile_and_sigma_expanded():
    seen = []

    def spy(x, sigma, hint=None, per_image=None, flag=None):
        seen.append((x.shape, sigma.clone(), hint.clone(), per_image.clone(), flag))
        return x + hint

    batch, height, width = 2, 12, 20
    x = torch.zeros(batch, 4, height, width)
    hint = torch.arange(batch * height * width, dtype=torch.float32).reshape(batch, 1, height, width)
    per_image = torch.tensor([10.0, 20.0])
    tiles = plan_grid(height, width, 12, 4)  # two tiles 12×12: x = 0 and 8
    out = TiledDenoiser(spy, tiles, blend="multidiffusion", tile_batch=1)(
        x, torch.tensor([1.0, 2.0]), hint=hint, per_image=per_image, flag="keep")
    assert torch.equal(out, hint.expand_as(out))  # every tile got its own slice of the hint
    assert len(seen) == 2
    for index, (shape, sigma, part, images, flag) in enumerate(seen):
        assert shape == (2, 4, 12, 12) and flag == "keep"
        assert torch.equal(sigma, torch.tensor([1.0, 2.0]))
        assert torch.equal(images, per_image)
        assert torch.equal(part, hint[:, :, :, tiles[index].cols])


def test_model_sampling_is_exposed_and_tiles_must_fit_the_latent():
    class Inner:
        model_sampling = object()

        def __call__(self, x, sigma, **kw):
            return x

    tiles = plan_grid(8, 8, 8, 0)
    assert TiledDenoiser(Inner(), tiles).model_sampling is Inner.model_sampling
    with pytest.raises(ValueError, match="outside"):
        TiledDenoiser(Inner(), plan_grid(16, 16, 8, 0))(torch.zeros(1, 4, 8, 8), torch.ones(1))
