"""A run of a request on the tiny SD1 model: what reaches the sampler and the composite, what is read how
often, what the API and the command line record, and the failures a run must not hide."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffdiff import pipeline
from diffdiff.cli.main import main
from diffdiff.errors import DiffdiffError
from diffdiff.maps.latent import bilinear_grid, block_means

WIDTH, HEIGHT = 64, 48


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(5)
    ramp = np.linspace(30, 220, WIDTH)[None, :, None].repeat(HEIGHT, 0).repeat(3, 2)
    return Image.fromarray(np.clip(ramp + rng.normal(0, 20, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8))


def _spy(monkeypatch, module, name):
    """Record the arguments and result of `module.name` (still calling it)."""
    calls = []
    original = getattr(module, name)

    def spy(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append((args, kwargs, result))
        return result

    monkeypatch.setattr(module, name, spy)
    return calls


def _count_everywhere(monkeypatch, function):
    """Count calls of `function` under every name any loaded diffdiff module binds it to."""
    counter = {"calls": 0}

    def counting(*args, **kwargs):
        counter["calls"] += 1
        return function(*args, **kwargs)

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("diffdiff"):
            for name, value in list(vars(module).items()):
                if value is function:
                    monkeypatch.setattr(module, name, counting)
    return counter


def test_comfy_gate_gets_the_bilinear_map_and_exact_gate_the_block_means(tiny_sd1, photo, monkeypatch):
    import diffdiff.pipeline.run as run

    ramp = np.round(np.linspace(0, 0.5, WIDTH) * 255) / 255  # a 0→0.5 ramp as saved in 8 bits
    strength = np.tile(ramp.astype(np.float32), (HEIGHT, 1))
    calls = _spy(monkeypatch, run, "sample")
    for gate in ("comfy", "exact"):
        pipeline.edit(photo, strength, "x", model=tiny_sd1, steps=2, gate=gate)
    comfy_map, exact_map = (kwargs["strength_map"] for _, kwargs, _ in calls)
    assert torch.equal(comfy_map, bilinear_grid(strength, (HEIGHT // 8, WIDTH // 8)))
    assert torch.equal(exact_map, block_means(strength, 8))
    assert (comfy_map - exact_map).abs().max() > 1e-4


def test_map_zero_latents_and_the_raw_decode_are_kept_before_any_composite(tiny_sd1, photo, monkeypatch):
    import diffdiff.pipeline.editing as edit_module

    strength = np.zeros((HEIGHT, WIDTH), np.float32)
    strength[:, 32:] = 1.0
    latents = _spy(monkeypatch, edit_module, "sample_latents")
    result = pipeline.edit(photo, strength, "a red barn", model=tiny_sd1, steps=3, seed=2, composite=False)
    (args, _, (out, _)), = latents
    clean = args[1]
    assert torch.equal(out[..., :4], clean[..., :4]) and not torch.equal(out[..., 4:], clean[..., 4:])
    # the composite's input is the decode of exactly those latents (the tiny VAE's attention mixes the
    # whole image, so its kept side is not a plain round trip: compare with the decode itself)
    assert np.array_equal(np.asarray(result.generated[0]), tiny_sd1.vae_codec.decode(out)[0])


def test_the_image_is_decoded_once_and_the_map_checked_once(tiny_sd1, photo, tmp_path, monkeypatch):
    import diffdiff.maps.io as maps_io
    import diffdiff.request.inputs as inputs

    opened = []
    real_open = Image.open
    def counting_open(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    checks = _count_everywhere(monkeypatch, maps_io.as_map)
    loads = _count_everywhere(monkeypatch, maps_io.load_map)
    reads = _spy(monkeypatch, inputs, "load_image")
    photo.save(tmp_path / "in.png")
    Image.new("L", (WIDTH, HEIGHT), 128).save(tmp_path / "map.png")
    model = tmp_path / "model"
    monkeypatch.setattr("diffdiff.cli.options.load_model_from_args", lambda args: tiny_sd1)
    model.mkdir()
    argv = ["edit", str(tmp_path / "in.png"), "--map", str(tmp_path / "map.png"), "--prompt", "x",
            "--model", str(model), "--steps", "1", "-o", str(tmp_path / "out.png"), "--quiet"]
    assert main(argv) == 0
    assert opened.count("in.png") == 1 and opened.count("map.png") == 1 and len(reads) == 1
    assert loads["calls"] == 1 and checks["calls"] == 0  # a file map is checked as it is read
    pipeline.edit(photo, np.full((HEIGHT, WIDTH), 0.5, np.float32), "x", model=tiny_sd1, steps=1)
    assert checks["calls"] == 1  # an array map: one check, not one per layer


def test_the_api_and_the_command_line_record_the_same_settings(tiny_sd1, photo, tmp_path, monkeypatch):
    photo.save(tmp_path / "in.png")
    monkeypatch.setattr("diffdiff.cli.options.load_model_from_args", lambda args: tiny_sd1)
    (tmp_path / "model").mkdir()
    argv = ["edit", str(tmp_path / "in.png"), "--map", "0.5", "--prompt", "a boat", "--model",
            str(tmp_path / "model"), "--steps", "2", "--seed", "4", "--vae-tile", "off",
            "-o", str(tmp_path / "cli.png"), "--quiet"]
    assert main(argv) == 0
    api = pipeline.edit(tmp_path / "in.png", 0.5, "a boat", model=tiny_sd1, steps=2, seed=4, vae_tile="off")
    api.save(tmp_path / "api.png")
    cli_text, api_text = Image.open(tmp_path / "cli.png").text, Image.open(tmp_path / "api.png").text
    assert json.loads(cli_text["diffdiff"]) == json.loads(api_text["diffdiff"])
    assert cli_text["parameters"] == api_text["parameters"]
    assert json.loads(api_text["diffdiff"])["image"] == "in.png"


def test_a_model_that_returns_nan_stops_the_run_with_one_line(tiny_sd1, photo, tmp_path, monkeypatch):
    def nan_denoiser(conditioning, cfg):
        return lambda x, sigma, **kwargs: torch.full_like(x, float("nan"))

    monkeypatch.setattr(tiny_sd1, "denoiser", nan_denoiser)
    with pytest.raises(DiffdiffError, match="NaN/inf at noise level sigma=.*--dtype fp32"):
        pipeline.edit(photo, 1.0, "x", model=tiny_sd1, steps=2)
    photo.save(tmp_path / "in.png")
    monkeypatch.setattr("diffdiff.cli.options.load_model_from_args", lambda args: tiny_sd1)
    (tmp_path / "model").mkdir()
    argv = ["edit", str(tmp_path / "in.png"), "--map", "1", "--prompt", "x", "--model",
            str(tmp_path / "model"), "--steps", "2", "--no-composite", "-o", str(tmp_path / "out.png"),
            "--quiet"]
    assert main(argv) == 2 and not (tmp_path / "out.png").exists()


def test_a_vae_that_decodes_nan_is_refused():
    from diffdiff.models.vae import tensor_to_pixels

    images = torch.zeros(1, 3, 8, 8)
    assert tensor_to_pixels(images).shape == (1, 8, 8, 3)
    images[0, 1, 2, 3] = float("nan")
    with pytest.raises(DiffdiffError, match="VAE decode produced NaN/inf"):
        tensor_to_pixels(images)


def test_stats_never_replaces_a_file_of_the_run(tiny_sd1, photo, tmp_path, monkeypatch, capsys):
    photo.save(tmp_path / "in.png")
    before = (tmp_path / "in.png").read_bytes()
    (tmp_path / "old.json").write_text("{}")
    (tmp_path / "m.safetensors").write_bytes(b"weights")
    base = ["edit", str(tmp_path / "in.png"), "--map", "0.5", "--prompt", "x", "--model",
            str(tmp_path / "m.safetensors"), "-o", str(tmp_path / "out.png")]
    for stats, message in ((tmp_path / "in.png", "is also one of this run's files"),
                           (tmp_path / "out.png", "is also one of this run's files"),
                           (tmp_path / "m.safetensors", "is also one of this run's files"),
                           (tmp_path / "old.json", "exists; pass --overwrite")):
        assert main(base + ["--stats", str(stats)]) == 2
        assert message in capsys.readouterr().err
    assert (tmp_path / "in.png").read_bytes() == before and (tmp_path / "old.json").read_text() == "{}"
    assert (tmp_path / "m.safetensors").read_bytes() == b"weights" and not (tmp_path / "out.png").exists()


def test_a_map_value_that_is_also_a_file_name_is_refused(photo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    photo.save("in.png")
    Image.new("L", (WIDTH, HEIGHT)).save("0.5", format="PNG")
    code = main(["edit", "in.png", "--map", "0.5", "--prompt", "x", "--model", "none.safetensors",
                 "-o", "out.png"])
    assert code == 2 and "write ./0.5 for the file" in capsys.readouterr().err


def test_vae_tile_is_its_own_option_and_is_recorded(tiny_sd1, photo, monkeypatch):
    import diffdiff.tiles.vae as tiled

    decodes = _spy(monkeypatch, tiled, "tiled_vae_decode")
    network_only = pipeline.edit(photo, 1.0, "x", model=tiny_sd1, steps=1, tile=64, overlap=16)
    assert not decodes and network_only.settings["vae_tile"] == "auto" and network_only.settings["tile"] == 64
    vae_only = pipeline.edit(photo, 1.0, "x", model=tiny_sd1, steps=1, tile="off", vae_tile=64)
    assert len(decodes) == 1 and vae_only.settings["vae_tile"] == 64 and vae_only.stats["tiles"] == 1


def test_samplers_verb_imports_neither_opencv_nor_the_maps():
    code = ("import sys; from diffdiff.cli.main import main; main(['samplers']); "
            "print(sorted(m for m in ('cv2', 'diffdiff.maps', 'diffdiff.models') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "[]"


def test_the_progress_costs_predict_the_tile_evaluations_and_fill_the_bar(tiny_sd1):
    import io

    from diffdiff.pipeline.step_cost import IDLE_STEP_COST
    from diffdiff.progress import StepProgress

    image = Image.new("RGB", (192, 64), (120, 160, 200))
    strength = np.zeros((64, 192), np.float32)
    strength[:, 120:] = np.linspace(0.2, 0.7, 72)  # the right end only, rising: steps and tiles idle at first
    seen = []
    with StepProgress(6, stream=io.StringIO()) as progress:
        def callback(info):
            seen.append(info)
            progress(info)

        result = pipeline.edit(image, strength, "sky", model=tiny_sd1, steps=6, tile=64, overlap=16,
                               callback=callback)
        filled = progress._bar.n
    costs = [info["step_cost"] for info in seen]
    assert costs[0] == IDLE_STEP_COST and max(costs) > 1  # euler: one call per step
    assert sum(cost for cost in costs if cost >= 1) == result.stats["tile_evaluations"]
    assert filled == pytest.approx(6)
