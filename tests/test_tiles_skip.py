"""Tile skipping in a full sample(): bit-exact vs no skipping; tile_calls counted independently."""

import numpy as np
import pytest
import torch
from doubles import Recorder, box_denoiser

from diffdiff.sampling import model_sampling, run_sigmas, sample
from diffdiff.tiles import TiledDenoiser, plan_grid, plan_quadtree


def strength_map(height, width):
    """0 on the left half, a ramp 0.1..0.9 down the right half: tiles become active at different steps."""
    s = torch.zeros(height, width)
    s[:, width // 2:] = torch.linspace(0.1, 0.9, height)[:, None]
    return s


def run(blend, skip, sampler, tiles, s, latent):
    inner = Recorder(box_denoiser)
    tiler = TiledDenoiser(inner, tiles, blend=blend, tile_batch=3, skip=skip, seed=3)
    out = sample(tiler, latent, model_sampling=model_sampling("sd1"), sampler=sampler, scheduler="normal",
                 steps=6, seed=11, strength_map=s)
    return out, tiler, inner


@pytest.mark.parametrize(("blend", "sampler"), [("mixture", "euler"), ("multidiffusion", "dpmpp_2m"),
                                                ("spot", "euler")])
def test_skipping_is_bit_exact_and_counts_active_tiles(blend, sampler):
    height, width = 40, 48
    torch.manual_seed(0)
    latent = torch.randn(1, 4, height, width)
    s = strength_map(height, width)
    tiles = plan_grid(height, width, 16, 4)
    with_skip, tiler, inner = run(blend, True, sampler, tiles, s, latent)
    without_skip, full_tiler, _ = run(blend, False, sampler, tiles, s, latent)
    assert torch.equal(with_skip, without_skip)
    assert inner.items == tiler.tile_calls
    assert tiler.tile_calls_without_skip == full_tiler.tile_calls == full_tiler.tile_calls_without_skip
    assert tiler.tile_calls < 0.8 * tiler.tile_calls_without_skip

    if blend == "spot" or sampler != "euler":
        return
    # Independent count: euler evaluates once at each σ_i, i < N. Active pixels by the gate rule (see
    # docs/design.md): S > 0 and S >= τ(σ) = (t(σ) − t(σ_to)) / (t(σ_0) − t(σ_to)), σ_to = max(σ_min, σ_N).
    ms = model_sampling("sd1")
    sigmas = run_sigmas(ms, "normal", 6, 1.0, "euler")
    t_from = float(ms.timestep(sigmas[0]))
    t_to = float(ms.timestep(torch.clamp(sigmas[-1], min=ms.sigma_min)))
    s_np = s.numpy()
    expected = 0
    for sigma in sigmas[:-1]:
        tau = (float(ms.timestep(sigma)) - t_to) / (t_from - t_to)
        active = (s_np >= tau) & (s_np > 0)
        expected += sum(bool(active[t.rows, t.cols].any()) for t in tiles)
    assert tiler.tile_calls == expected


def test_plan_grid_spreads_tiles_evenly_and_flush():
    tiles = plan_grid(100, 70, 32, 8)
    rows = sorted({t.y for t in tiles})
    cols = sorted({t.x for t in tiles})
    assert rows[0] == 0 and rows[-1] + 32 == 100 and cols[0] == 0 and cols[-1] + 32 == 70
    for starts in (rows, cols):
        steps = np.diff(starts)
        assert steps.max() - steps.min() <= 1 and 32 - steps.max() >= 8  # even, overlap >= 8
    assert len(tiles) == len(rows) * len(cols) and all(t.shape == (32, 32) for t in tiles)
    small = plan_grid(10, 50, 32, 8)
    assert all(t.h == 10 and t.y == 0 for t in small) and small[-1].x + 32 == 50


def test_plan_quadtree_splits_only_where_detailed():
    detail = np.zeros((64, 64))
    detail[:16, :16] = 1.0  # one detailed corner
    tiles = plan_quadtree(detail, max_tile=32, min_tile=8, threshold=0.2, overlap=2)
    coverage = np.zeros((64, 64), dtype=int)
    for t in tiles:
        y, x, h, w = t.core_box
        coverage[y:y + h, x:x + w] += 1
        assert t.y == max(0, y - 2) and t.x == max(0, x - 2)
    assert (coverage == 1).all()
    sizes = {t.core_box[2] for t in tiles if t.core_box[0] < 16 and t.core_box[1] < 16}
    assert sizes == {8}
    assert {t.core_box[2] for t in tiles if t.core_box[0] >= 32} == {32}


def test_skipping_with_a_real_network_differs_only_by_batch_rounding(tmp_path):
    from diffdiff.models import load_model, make_tiny_model

    model = load_model(make_tiny_model(tmp_path / "sd1", "sd1"), device="cpu")
    denoiser = model.denoiser(model.encode_prompt("a field", "", width=256, height=192), 3.0)
    height, width = 24, 32
    torch.manual_seed(1)
    latent = torch.randn(1, 4, height, width)
    s = strength_map(height, width)
    tiles = plan_grid(height, width, 16, 4)
    outs, tilers = {}, {}
    for skip in (True, False):
        tilers[skip] = TiledDenoiser(denoiser, tiles, blend="mixture", tile_batch=2, skip=skip)
        outs[skip] = sample(tilers[skip], latent, model_sampling=model.model_sampling, sampler="euler",
                            scheduler="normal", steps=4, seed=5, strength_map=s)
    assert tilers[True].tile_calls < tilers[False].tile_calls
    assert torch.equal(outs[True][..., : width // 2], latent[..., : width // 2])  # map 0: untouched
    assert torch.allclose(outs[True], outs[False], atol=1e-4, rtol=0)
    assert not torch.equal(outs[True], latent)
