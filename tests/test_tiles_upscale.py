"""Strength sources for tiled refinement and the `upscale` verb end to end on a tiny SD1 model."""

import json

import numpy as np
import pytest
from PIL import Image

from diffdiff.cli.main import main
from diffdiff.errors import DiffdiffError
from diffdiff.maps import load_map
from diffdiff.maps.upscale_strength import strength_map_for
from diffdiff.pipeline.upscaling import pixel_upscale


def sky_and_ground(size: int = 128) -> Image.Image:
    rng = np.random.default_rng(0)
    pixels = np.zeros((size, size, 3), np.uint8)
    pixels[: size // 2] = (120, 170, 230)
    pixels[size // 2:] = rng.integers(0, 255, (size - size // 2, size, 3))
    return Image.fromarray(pixels)


@pytest.mark.parametrize("source", ["detail", "quadtree"])
def test_detail_sources_give_more_strength_to_texture_within_range(source):
    image = sky_and_ground(256)
    s = strength_map_for(image, source, min_strength=0.1, max_strength=0.6)
    assert s.shape == (256, 256) and s.dtype == np.float32
    assert s.min() >= 0.1 - 1e-6 and s.max() <= 0.6 + 1e-6
    assert s[:64].mean() < 0.2 and s[192:].mean() > 0.4  # flat sky low, textured ground high
    if source == "quadtree":  # smoothed: no jump larger than a fraction of the range between neighbours
        assert np.abs(np.diff(s, axis=0)).max() < 0.1


def test_map_and_uniform_sources(tmp_path):
    Image.fromarray(np.tile(np.linspace(0, 255, 64).astype(np.uint8), (32, 1))).save(tmp_path / "m.png")
    image = Image.new("RGB", (128, 64))
    user = load_map(tmp_path / "m.png")
    s = strength_map_for(image, "map", user_map=user, min_strength=0.2, max_strength=0.4)
    assert s.shape == (64, 128) and abs(s[:, 0].mean() - 0.2) < 0.01 and abs(s[:, -1].mean() - 0.4) < 0.01
    assert np.all(strength_map_for(image, "uniform", strength=0.3) == np.float32(0.3))
    with pytest.raises(DiffdiffError, match="detail, quadtree, map, uniform"):
        strength_map_for(image, "edges")
    with pytest.raises(DiffdiffError, match="min strength"):
        strength_map_for(image, "detail", min_strength=0.7, max_strength=0.2)


def test_map_source_refuses_another_aspect_ratio(tmp_path):
    # a square map for a 2:1 image used to be stretched silently
    from diffdiff.request import UpscaleRequest

    Image.new("L", (64, 64), 255).save(tmp_path / "square.png")
    with pytest.raises(DiffdiffError, match="aspect ratios differ"):
        UpscaleRequest.build(Image.new("RGB", (128, 64)), strength_from="map", map=tmp_path / "square.png")


def test_pixel_upscale_size_and_missing_upscaler(tmp_path):
    from diffdiff.request import UpscaleRequest

    assert pixel_upscale(sky_and_ground(40), (100, 100)).size == (100, 100)
    with pytest.raises(DiffdiffError, match="not found"):
        UpscaleRequest.build(sky_and_ground(40), upscaler=tmp_path / "none.pth")


def test_an_absurd_upscale_is_refused_before_any_pixel_is_enlarged():
    from diffdiff.request import UpscaleRequest

    with pytest.raises(DiffdiffError, match="pixel limit; use a smaller --scale"):
        UpscaleRequest.build(Image.new("RGB", (2000, 2000)), scale=16)


def test_upscale_verb_end_to_end(tmp_path, capsys):
    from diffdiff.models import make_tiny_model

    model = make_tiny_model(tmp_path / "tiny", "sd1")
    sky_and_ground(96).save(tmp_path / "in.png")
    out, stats = tmp_path / "out.png", tmp_path / "stats.json"
    args = ["upscale", str(tmp_path / "in.png"), "--scale", "2", "--model", str(model), "-o", str(out),
            "--steps", "3", "--cfg", "1", "--tile", "64", "--overlap", "16", "--strength-from", "detail",
            "--max-strength", "0.5", "--stats", str(stats), "--quiet"]
    assert main(args) == 0
    assert Image.open(out).size == (192, 192)
    numbers = json.loads(stats.read_text())
    for key in ("network_calls", "sampler_calls", "tile_evaluations", "tile_evaluations_without_skip",
                "tiles", "steps", "peak_rss_mb", "seconds"):
        assert key in numbers
    assert numbers["tiles"] > 1
    assert numbers["tile_evaluations"] <= numbers["tile_evaluations_without_skip"]
    settings = json.loads(Image.open(out).text["diffdiff"])  # used to read mode "edit", map "array"
    assert settings["mode"] == "upscale" and settings["scale"] == 2 and settings["image"] == "in.png"
    assert settings["strength_from"] == "detail" and settings["max_strength"] == 0.5
    assert settings["map"] == "detail" and settings["upscaler"] == "lanczos"
    parameters = Image.open(out).text["parameters"]  # A1111 readers: the refine strength, not the denoise 1
    assert f"Denoising strength: {settings['mean_strength']:.6g}," in parameters
    assert 0 < settings["mean_strength"] <= 0.5
    assert main(args) == 2 and "exists" in capsys.readouterr().err  # no --overwrite
    bad = args[:-5] + ["--overwrite", "--tile", "60"]
    assert main(bad) == 2 and "multiple of 8" in capsys.readouterr().err
    for option, value, message in (("--sampler", "nope", "unknown sampler"),
                                   ("--scheduler", "nope", "unknown scheduler"),
                                   ("--vae", str(tmp_path / "absent.safetensors"), "not found")):
        assert main(args[:-5] + ["--overwrite", option, value]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_upscale_cli_refuses_a_map_of_another_shape_before_loading_the_model(tmp_path, capsys):
    sky_and_ground(32).save(tmp_path / "in.png")
    Image.new("L", (64, 32), 255).save(tmp_path / "wide.png")
    code = main(["upscale", str(tmp_path / "in.png"), "--model", str(tmp_path / "absent.safetensors"),
                 "--strength-from", "map", "--map", str(tmp_path / "wide.png"),
                 "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "aspect ratios differ" in err  # not "model not found"


def test_upscale_refuses_an_output_that_is_not_png(tmp_path, capsys):
    # it used to write PNG bytes under the .jpg name
    sky_and_ground(32).save(tmp_path / "in.png")
    out = tmp_path / "out.jpg"
    code = main(["upscale", str(tmp_path / "in.png"), "--model", str(tmp_path / "none.safetensors"),
                 "-o", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "must end in .png" in err
    assert not out.exists()


def test_4096_upscale_refine_runs_on_cpu_keeps_map_zero_pixels_and_skips_tiles(tmp_path):
    """The issue's size test: a synthetic 2048² image → 2× → 4096², tiny SD1 model, 2 steps, 512 px tiles."""
    from diffdiff.models import load_model, make_tiny_model
    from diffdiff.pipeline import upscale

    half = 2048
    rng = np.random.default_rng(1)
    pixels = np.empty((half, half, 3), np.uint8)
    pixels[: half // 2] = (110, 150, 210)  # flat sky: no detail, so map 0 (kept bit for bit)
    pixels[half // 2:] = rng.integers(40, 200, (half - half // 2, half, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    del pixels
    options = dict(min_strength=0.0, max_strength=0.5)
    model = load_model(make_tiny_model(tmp_path / "tiny", "sd1"), device="cpu")
    stats = {}
    result = upscale(image, model=model, scale=2, steps=2, cfg=1.0, tile=512, overlap=64,
                     strength_from="detail", stats=stats, **options)
    out = result.images[0]
    assert out.size == (4096, 4096)
    enlarged = pixel_upscale(image, (4096, 4096))
    keep = strength_map_for(enlarged, "detail", **options) == 0.0
    assert keep.mean() > 0.3  # most of the sky
    assert np.array_equal(np.asarray(out)[keep], np.asarray(enlarged)[keep])
    assert not np.array_equal(np.asarray(out)[~keep], np.asarray(enlarged)[~keep])
    assert stats["tiles"] == 81 and stats["tile_evaluations_without_skip"] == 2 * 81
    assert 0 < stats["tile_evaluations"] < stats["tile_evaluations_without_skip"]
    assert 0 < stats["network_calls"] <= stats["tile_evaluations"]  # up to --tile-batch tiles per call
