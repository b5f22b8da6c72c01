"""`edit` / `generate` / `samplers` verbs: real runs; every kind of bad input → one `error:` line, exit 2."""

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffdiff.cli.main import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from diffdiff.models import make_tiny_model

    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(1)
    image = root / "image.png"
    Image.fromarray(rng.integers(0, 256, (56, 72, 3), dtype=np.uint8)).save(image)
    gradient = root / "map.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 36).astype(np.uint8), (28, 1))).save(gradient)  # half size
    wide = root / "wide.png"
    Image.new("L", (72, 20), 255).save(wide)
    nan_map = root / "nan.tif"
    Image.fromarray(np.full((56, 72), np.nan, np.float32)).save(nan_map)
    big_map = root / "big.tif"
    Image.fromarray(np.full((56, 72), 2.0, np.float32)).save(big_map)
    garbage = root / "garbage.png"
    garbage.write_bytes(b"definitely not a PNG")
    truncated = root / "truncated.png"
    truncated.write_bytes(image.read_bytes()[:300])
    bomb = root / "bomb.png"
    bomb.write_bytes(_png_header_only(70000, 70000))
    corrupt_model = root / "broken.safetensors"
    corrupt_model.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + b"\0" * 64)
    model = make_tiny_model(root / "model", "sd1", single_file=True)
    return {"root": root, "image": image, "map": gradient, "wide": wide, "nan": nan_map, "big": big_map,
            "garbage": garbage, "truncated": truncated, "bomb": bomb, "corrupt_model": corrupt_model,
            "model": model}


def _png_header_only(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _edit_args(files, out, **changes):
    args = {"image": files["image"], "--map": files["map"], "--model": files["model"]}
    args.update(changes)
    argv = ["edit", str(args.pop("image")), "--prompt", "a lake", "--steps", "2", "-o", str(out)]
    for key, value in args.items():
        argv += [key, str(value)]
    return argv


def test_edit_writes_batch_pngs_stats_and_progress(files, tmp_path, capsys):
    out, stats = tmp_path / "out.png", tmp_path / "stats.json"
    code = main(_edit_args(files, out, **{"--batch": 2, "--seed": 7, "--stats": stats}))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.is_file() and (tmp_path / "out-1.png").is_file()
    assert Image.open(out).size == (72, 56)
    assert str(out) in captured.out
    assert "edit" in captured.err  # the progress bar's label
    numbers = json.loads(stats.read_text())
    assert numbers["steps"] == 2 and numbers["tiles"] == 1 and "network_calls" in numbers
    phases = numbers["phases"]  # every phase of the job
    assert set(phases) == {"import", "load", "text_encode", "vae_encode", "sampling", "decode", "composite",
                           "write"}
    assert all(seconds >= 0 for seconds in phases.values())
    assert phases["sampling"] > 0 and phases["write"] > 0
    run_phases = sum(phases[name] for name in ("text_encode", "vae_encode", "sampling", "decode",
                                               "composite"))
    assert run_phases <= numbers["seconds"]  # the run's phases lie inside the run
    text = Image.open(tmp_path / "out-1.png").text
    assert "Seed: 8" in text["parameters"] and json.loads(text["diffdiff"])["map"] == "map.png"
    # the same output again without --overwrite is refused; with it, it is replaced
    assert main(_edit_args(files, out)) == 2
    assert "exists" in capsys.readouterr().err
    assert main(_edit_args(files, out) + ["--overwrite", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_edit_region_and_composite_flags_reach_the_settings(files, tmp_path, capsys):
    out = tmp_path / "out.png"
    flags = {"--fill": "telea", "--fill-threshold": 0.5, "--crop": "on", "--context": 8,
             "--strength-levels": "steps", "--difference-threshold": 0.3, "--mask-influence": 0.5}
    assert main(_edit_args(files, out, **flags)) == 0, capsys.readouterr().err
    settings = json.loads(Image.open(out).text["diffdiff"])
    assert (settings["fill"], settings["fill_threshold"], settings["crop"]) == ("telea", 0.5, "on")
    assert settings["strength_levels"] == "steps" and settings["mask_influence"] == 0.5
    assert settings["difference_threshold"] == 0.3 and settings["crops"]
    assert Image.open(out).size == (72, 56)


def test_generate_and_samplers_verbs(files, tmp_path, capsys):
    out = tmp_path / "gen.png"
    argv = ["generate", "--prompt", "a hill", "--width", "40", "--height", "32", "--steps", "2",
            "--model", str(files["model"]), "-o", str(out), "--quiet"]
    assert main(argv) == 0
    assert Image.open(out).size == (40, 32)
    assert main(["samplers", "--json"]) == 0
    names = json.loads(capsys.readouterr().out)
    assert "euler" in names["samplers"] and "karras" in names["schedulers"]


BAD_INPUTS = {
    "missing image": ({"image": "nowhere.png"}, "no such file"),
    "corrupt image": ({"image": "garbage"}, "not an image"),
    "truncated image": ({"image": "truncated"}, "truncated"),
    "decompression bomb": ({"image": "bomb"}, "pixel limit"),
    "map aspect": ({"--map": "wide"}, "aspect"),
    "NaN map file": ({"--map": "nan"}, "finite"),
    "out-of-range map file": ({"--map": "big"}, "[0, 1]"),
    "NaN map value": ({"--map": "NaN"}, "[0, 1]"),
    "out-of-range map value": ({"--map": "1.5"}, "[0, 1]"),
    "unknown sampler": ({"--sampler": "eulr"}, "euler_ancestral"),
    "unknown scheduler": ({"--scheduler": "fast"}, "karras"),
    "unknown gate": ({"--gate": "soft"}, "exact, comfy, mask"),
    "unknown fill": ({"--fill": "paint"}, "navier-stokes"),
    "unknown crop": ({"--crop": "maybe"}, "auto, on, off"),
    "continuous levels, comfy gate": ({"--gate": "comfy", "--strength-levels": "continuous"}, "exact gate"),
    "mask influence above 1": ({"--mask-influence": "2"}, "mask influence"),
    "corrupt checkpoint": ({"--model": "corrupt_model"}, "broken.safetensors"),
    "missing checkpoint": ({"--model": "./no-model.safetensors"}, "not found"),
    "output folder missing": ({"-o": "missing-folder/out.png"}, "does not exist"),
    "output under a file": ({"-o": "@image/out.png"}, "does not exist"),
    "output not png": ({"-o": "out.jpg"}, ".png"),
    "stats path is a folder": ({"--stats": "root"}, "is a folder"),  # was: PNG written, then a failure
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_ends_with_one_error_line(files, tmp_path, capsys, case):
    changes, expected = BAD_INPUTS[case]
    out = tmp_path / "out.png"
    resolved = {}
    for key, value in changes.items():
        if value in files:  # a prepared file
            resolved[key] = files[value]
        elif value.startswith("@"):  # a path below a prepared file
            name, rest = value[1:].split("/", 1)
            resolved[key] = files[name] / rest
        elif key == "-o":
            resolved[key] = tmp_path / value
        elif key == "image":
            resolved[key] = files["root"] / value
        else:
            resolved[key] = value
    output = resolved.pop("-o", out)
    code = main(_edit_args(files, output, **resolved))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0]
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("*.png"))


def test_input_errors_come_before_the_model_loads(files, tmp_path, capsys):
    # a bad image with a corrupt checkpoint: the image error is reported, so the model was never read
    model = {"--model": files["corrupt_model"]}
    argv = _edit_args(files, tmp_path / "o.png", image=files["garbage"], **model)
    assert main(argv) == 2
    assert "not an image" in capsys.readouterr().err


def test_subprocess_reports_one_line_and_exit_code_2(files, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    wide_map = {"--map": files["wide"]}
    argv = [sys.executable, "-m", "diffdiff"] + _edit_args(files, tmp_path / "o.png", **wide_map)
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "aspect" in lines[0]
    assert not (tmp_path / "o.png").exists()


def test_prediction_flag_switches_an_sd2_file_to_v(tmp_path):
    from diffdiff.models import make_tiny_model

    model = make_tiny_model(tmp_path / "sd2", "sd2", single_file=True)
    image = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(image)
    outputs = {}
    for prediction in ("eps", "v"):
        out = tmp_path / f"{prediction}.png"
        code = main(["edit", str(image), "--map", "1", "--prompt", "x", "--model", str(model), "--steps", "2",
                     "--cfg", "1", "--prediction", prediction, "--no-composite", "-o", str(out), "--quiet"])
        assert code == 0
        outputs[prediction] = np.asarray(Image.open(out))
    assert not np.array_equal(outputs["eps"], outputs["v"])
