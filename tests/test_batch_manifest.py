"""`diffdiff batch` inputs: manifests with bad lines (each reported by line number, the good ones run),
folder pairs, map recipes, duplicate jobs, content keys; `--example` is a manifest that checks."""

import json
import shutil

import numpy as np
import pytest
import torch
from batch_files import ledger_rows, make_job_files, pngs, run_batch
from PIL import Image

from diffdiff.batch import Defaults, read_manifest
from diffdiff.batch.manifest import EXAMPLE
from diffdiff.batch.recipes import make_map
from diffdiff.errors import DiffdiffError


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch-inputs")
    make_job_files(root, 3)
    Image.new("L", (128, 32), 200).save(root / "maps/wide.png")
    return root


def defaults(root, **changes):
    values = {"prompt": None, "model": str(root / "tiny.safetensors")}
    return Defaults(**{**values, **changes})


def test_bad_lines_are_reported_by_number_and_the_good_ones_run(root, tmp_path):
    lines = [
        {"image": "images/0.png", "map": "maps/0.png", "prompt": "a"},
        {"image": "images/missing.png", "map": 0.5, "prompt": "a"},
        {"image": "images/1.png", "map": 0.5, "prompt": "a", "sampler": "no_such_sampler"},
        "{this is not json",
        {"image": "images/1.png", "map": "maps/wide.png", "prompt": "a"},
        {"image": "images/2.png", "map": [{"op": "radial", "radius": 20}], "prompt": "b"},
    ]
    manifest = root / "mixed.jsonl"
    texts = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    manifest.write_text("\n".join(texts) + "\n")
    done = run_batch(manifest, tmp_path / "out")
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 4, done.stderr
    assert errors[0].startswith("error: line 2: cannot read") and "missing.png" in errors[0]
    assert errors[1].startswith("error: line 3: unknown sampler 'no_such_sampler'")
    assert errors[2].startswith("error: line 4: not valid JSON")
    assert errors[3].startswith("error: line 5: the map is 128x32 but the image is 64x64")
    assert "Traceback" not in done.stderr
    assert sorted(ledger_rows(tmp_path / "out").values()) == [("done", "line 1"), ("done", "line 6")]
    assert len(pngs(tmp_path / "out")) == 2


def test_duplicate_lines_run_once_and_equal_settings_key_equally(root):
    line = {"image": "images/0.png", "map": "maps/0.png", "prompt": "a"}
    manifest = root / "dupes.jsonl"
    spelled = {**line, "steps": 20, "cfg": 7}
    manifest.write_text("\n".join(json.dumps(x) for x in [line, spelled, line, {**line, "seed": 1}, spelled])
                        + "\n")
    found = read_manifest(manifest, defaults(root))
    # unset sampling settings are the model family's defaults, known only once the model loads: a line that
    # spells SD's defaults out is its own job
    assert [job.where for job in found.jobs] == ["line 1", "line 2", "line 4"]
    assert [d.split(":")[0] for d in found.duplicates] == ["line 3", "line 5"]
    assert len({job.key for job in found.jobs}) == 3


def test_a_changed_input_byte_or_model_changes_the_key(root, tmp_path):
    shutil.copytree(root / "images", tmp_path / "images")
    shutil.copytree(root / "maps", tmp_path / "maps")
    manifest = tmp_path / "one.jsonl"
    manifest.write_text(json.dumps({"image": "images/0.png", "map": "maps/0.png", "prompt": "a"}) + "\n")
    first = read_manifest(manifest, defaults(root)).jobs[0]
    pixels = np.asarray(Image.open(tmp_path / "maps/0.png")).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(tmp_path / "maps/0.png")
    second = read_manifest(manifest, defaults(root)).jobs[0]
    third = read_manifest(manifest, defaults(root, identify=lambda path: "another model")).jobs[0]
    assert len({first.key, second.key, third.key}) == 3
    assert first.output == f"0-{first.key[:12]}.png"


def test_folder_pairs_match_by_stem_and_report_the_unmatched(root, tmp_path):
    from diffdiff.batch import pair_folders

    images, maps = tmp_path / "i", tmp_path / "m"
    images.mkdir()
    maps.mkdir()
    for name in ("a", "b", "c"):
        shutil.copy(root / "images/0.png", images / f"{name}.png")
    shutil.copy(root / "maps/0.png", maps / "a.png")
    Image.open(root / "maps/1.png").convert("RGB").save(maps / "b.jpg")
    shutil.copy(root / "maps/0.png", maps / "z.png")
    found = pair_folders(images, maps, defaults(root, prompt="p"))
    assert [job.where for job in found.jobs] == ["a.png", "b.png"]
    assert found.errors == [f"c.png: no map named c.* in {maps}", f"z.png: no image named z.* in {images}"]


def test_map_recipes_run_and_bad_ones_are_refused_up_front(root):
    values = make_map([{"op": "linear", "angle": 0}, {"op": "invert"}], (64, 32))
    assert values.shape == (32, 64) and values[:, 0].min() > 0.99 and values[:, -1].max() < 0.01
    for recipe, message in [({"op": "spiral"}, "unknown op 'spiral'"),
                            ([{"op": "linear"}, {"op": "radial"}], "unknown op 'radial' for a later step"),
                            ({"op": "radial", "size": 3}, "radial takes no size"),
                            ({"op": "radial", "radius": -4}, "radius")]:
        manifest = root / "recipe.jsonl"
        manifest.write_text(json.dumps({"image": "images/0.png", "map": recipe, "prompt": "a"}) + "\n")
        found = read_manifest(manifest, defaults(root))
        assert not found.jobs and len(found.errors) == 1 and message in found.errors[0], found.errors


def test_batch_options_are_refused(root):
    manifest = root / "variations.jsonl"
    manifest.write_text(json.dumps({"image": "images/0.png", "map": 1, "prompt": "a", "batch": 2}) + "\n")
    assert "one image each" in read_manifest(manifest, defaults(root)).errors[0]
    manifest.write_text(json.dumps({"image": "images/0.png", "map": 1, "prompt": "a", "output": "../x.png"}))
    assert "output must be a .png file name" in read_manifest(manifest, defaults(root)).errors[0]


def test_the_example_manifest_checks_once_its_files_exist(tmp_path, root):
    for line in EXAMPLE.splitlines():
        entry = json.loads(line)
        (tmp_path / entry["image"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "images/0.png", tmp_path / entry["image"])
        if isinstance(entry["map"], str):
            (tmp_path / entry["map"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / "maps/0.png", tmp_path / entry["map"])
    manifest = tmp_path / "example.jsonl"
    manifest.write_text(EXAMPLE)
    found = read_manifest(manifest, defaults(root))
    assert not found.errors and len(found.jobs) == len(EXAMPLE.splitlines())


def test_an_unreadable_manifest_is_one_error(tmp_path, root):
    with pytest.raises(DiffdiffError, match="cannot read manifest"):
        read_manifest(tmp_path / "nothing.jsonl", defaults(root))


def test_example_and_usage_errors_at_the_command_line(capsys, tmp_path):
    from diffdiff.cli.main import main

    assert main(["batch", "--example"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["image"] for line in printed if not line.startswith("#")] == [
        json.loads(line)["image"] for line in EXAMPLE.splitlines()]
    assert main(["batch", "jobs.jsonl"]) == 2
    assert capsys.readouterr().err.strip() == "error: give the output folder with -o DIR"
    assert main(["batch", "-o", str(tmp_path)]) == 2
    assert "give a manifest or --images DIR --maps DIR" in capsys.readouterr().err
    assert main(["batch", "-o", str(tmp_path), "--images", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "error: --images and --maps go together"


def test_a_lora_by_flag_or_tag_and_its_bytes_are_part_of_the_key(root, tmp_path):
    from safetensors.torch import save_file

    (tmp_path / "loras").mkdir()
    lora = tmp_path / "loras" / "ink.safetensors"

    def write_lora(value):
        stem = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"
        save_file({f"{stem}.lora_down.weight": torch.full((2, 64), value),
                   f"{stem}.lora_up.weight": torch.full((64, 2), value)}, str(lora))

    write_lora(0.1)
    base = {"image": str(root / "images/0.png"), "map": str(root / "maps/0.png"), "prompt": "a"}
    lines = [base, {**base, "lora": [f"{lora}:0.5"]}, {**base, "lora": [f"{lora}:0.6"]},
             {**base, "prompt": "a <lora:ink:0.5>", "lora_dir": str(tmp_path / "loras")},
             {**base, "prompt": "a <lora:gone:0.5>", "lora_dir": str(tmp_path / "loras")}]
    manifest = tmp_path / "loras.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    found = read_manifest(manifest, defaults(root))
    assert len({job.key for job in found.jobs}) == 4
    assert len(found.errors) == 1 and "gone" in found.errors[0] and "line 5" in found.errors[0]
    write_lora(0.2)  # the same name and weights, other bytes: another job
    again = read_manifest(manifest, defaults(root))
    assert [a.key == b.key for a, b in zip(found.jobs, again.jobs)] == [True, False, False, False]
