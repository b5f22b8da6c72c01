"""`diffdiff edit` with what users bring: LoRA flags and `<lora:...>` tags, embeddings, weighted prompts in
either style, CLIP skip — the edit uses them and the PNG says so in A1111's layout; bad ones are one line."""

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from diffdiff.cli.main import main

RANK = 2


def kohya_lora(path, seed):
    """A kohya-layout LoRA for the tiny SD1 model: one UNet attention projection and one text projection."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for stem, width in (("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q", 64),
                        ("lora_te_text_model_encoder_layers_0_self_attn_q_proj", 16)):
        state[f"{stem}.lora_down.weight"] = torch.randn(RANK, width, generator=generator)
        state[f"{stem}.lora_up.weight"] = torch.randn(width, RANK, generator=generator)
        state[f"{stem}.alpha"] = torch.tensor(float(RANK))
    save_file(state, str(path))
    return path


def addnet_hash(path):
    """A1111's LoRA hash, computed here from its definition: sha256 of the bytes after the header."""
    data = path.read_bytes()
    return hashlib.sha256(data[8 + int.from_bytes(data[:8], "little"):]).hexdigest()[:12]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from diffdiff.models import make_tiny_model

    root = tmp_path_factory.mktemp("cli-prompts")
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / "image.png")
    (root / "loras" / "styles").mkdir(parents=True)
    kohya_lora(root / "loras" / "styles" / "Ink.safetensors", 1)
    kohya_lora(root / "pen.safetensors", 2)
    torch.save({}, root / "old.pt")
    (root / "embeddings").mkdir()
    vectors = torch.randn(2, 16, generator=torch.Generator().manual_seed(4))
    save_file({"emb_params": vectors}, str(root / "embeddings" / "inkstyle.safetensors"))
    model = make_tiny_model(root / "model", "sd1", single_file=True)
    return {"root": root, "model": model}


def edit(files, out, prompt, *extra):
    root = files["root"]
    return main(["edit", str(root / "image.png"), "--map", "1", "--prompt", prompt, "--steps", "2",
                 "--model", str(files["model"]), "--quiet", "-o", str(out), *extra])


def pixels(path):
    return np.asarray(Image.open(path))


def test_loras_embeddings_and_clip_skip_reach_the_edit_and_the_metadata(files, tmp_path, capsys):
    root = files["root"]
    folders = ["--lora-dir", str(root / "loras"), "--embeddings-dir", str(root / "embeddings")]
    prompt = "a (lake:1.2) embedding:inkstyle <lora:ink:0.5>"
    out = tmp_path / "full.png"
    pen_flag = ["--lora", f"{root / 'pen.safetensors'}:0.8:0.3"]
    code = edit(files, out, prompt, *folders, *pen_flag, "--clip-skip", "2")
    assert code == 0, capsys.readouterr().err
    text = Image.open(out).text
    parameters = text["parameters"]
    assert parameters.startswith(prompt + "\n")  # the prompt as typed, tags included, as A1111 writes it
    assert "Clip skip: 2" in parameters
    ink = addnet_hash(root / "loras" / "styles" / "Ink.safetensors")
    pen = addnet_hash(root / "pen.safetensors")
    assert f'Lora hashes: "pen: {pen}, Ink: {ink}"' in parameters
    embedding = hashlib.sha256((root / "embeddings" / "inkstyle.safetensors").read_bytes()).hexdigest()[:12]
    assert f'TI hashes: "inkstyle: {embedding}"' in parameters
    settings = json.loads(text["diffdiff"])
    assert settings["clip_skip"] == 2 and settings["prompt_style"] == "comfy"
    assert [(item["name"], item["weight"], item["text_weight"]) for item in settings["loras"]] == [
        ("pen", 0.8, 0.3), ("Ink", 0.5, None)]

    # each ingredient changes the picture: without the LoRAs, without the embedding, without clip skip
    for label, changed_prompt, changed_extra in (
        ("no loras", "a (lake:1.2) embedding:inkstyle", ["--clip-skip", "2"]),
        ("no embedding", "a (lake:1.2) <lora:ink:0.5>", [*pen_flag, "--clip-skip", "2"]),
        ("no clip skip", prompt, pen_flag),
    ):
        other = tmp_path / f"{label}.png"
        assert edit(files, other, changed_prompt, *folders, *changed_extra) == 0, capsys.readouterr().err
        assert not np.array_equal(pixels(other), pixels(out)), label


def test_a_lora_at_weight_zero_leaves_the_edit_bit_identical(files, tmp_path, capsys):
    root = files["root"]
    plain, zero = tmp_path / "plain.png", tmp_path / "zero.png"
    assert edit(files, plain, "a lake") == 0
    code = edit(files, zero, "a lake", "--lora", f"{root / 'pen.safetensors'}:0")
    assert code == 0, capsys.readouterr().err
    assert np.array_equal(pixels(plain), pixels(zero))
    half = tmp_path / "half.png"
    assert edit(files, half, "a lake", "--lora", f"{root / 'pen.safetensors'}:0.5") == 0
    assert not np.array_equal(pixels(plain), pixels(half))


def test_the_prompt_style_changes_how_weights_read(files, tmp_path):
    comfy, a1111 = tmp_path / "comfy.png", tmp_path / "a1111.png"
    assert edit(files, comfy, "a ((lake:1.5)) [sky]") == 0
    assert edit(files, a1111, "a ((lake:1.5)) [sky]", "--prompt-style", "a1111") == 0
    assert not np.array_equal(pixels(comfy), pixels(a1111))
    assert json.loads(Image.open(a1111).text["diffdiff"])["prompt_style"] == "a1111"


@pytest.mark.parametrize(("prompt", "extra", "message"), [
    ("a <lora:missing:1>", ["--lora-dir", "{root}/loras"], "missing"),
    ("a <lora:ink:1>", [], "lora"),
    ("a <lora:ink:heavy>", ["--lora-dir", "{root}/loras"], "bad weight 'heavy'"),
    ("a lake", ["--lora", "{root}/nothing.safetensors"], "not found"),
    ("a lake", ["--lora", "{root}/pen.safetensors:x:y"], "x"),
    ("a lake", ["--lora", "{root}/image.png"], "image.png is not a LoRA file"),
    ("a lake", ["--lora", "{root}/old.pt"], "old.pt is a pickle, which can run code"),
    ("a embedding:nothing", ["--embeddings-dir", "{root}/embeddings"], "embedding 'nothing' not found"),
    ("a embedding:inkstyle", [], "--embeddings-dir"),
    ("a lake", ["--clip-skip", "0"], "clip skip must be an integer"),
    ("a lake", ["--clip-skip", "5"], "clip skip 5 is out of range"),
    ("a lake", ["--embeddings-dir", "{root}/none"], "not a folder"),
])
def test_bad_prompt_resources_end_with_one_error_line(files, tmp_path, capsys, prompt, extra, message):
    extra = [item.format(root=files["root"]) for item in extra]
    out = tmp_path / "out.png"
    assert edit(files, out, prompt, *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()
