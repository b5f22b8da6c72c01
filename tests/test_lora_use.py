"""The LoRA flag, A1111's <lora:NAME:W> lookup and A1111's short LoRA hash."""

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diffdiff.errors import DiffdiffError
from diffdiff.lora import LoraUse, find_lora, lora_short_hash, parse_lora_flag


@pytest.mark.parametrize(
    "flag, path, weight, text_weight",
    [
        ("style.safetensors", "style.safetensors", 1.0, None),
        ("style.safetensors:0.6", "style.safetensors", 0.6, None),
        ("style.safetensors:0.6:-0.25", "style.safetensors", 0.6, -0.25),
        ("C:\\loras\\ink.safetensors:1.5", "C:\\loras\\ink.safetensors", 1.5, None),
        ("/data/a:b/ink.safetensors:0.5:0", "/data/a:b/ink.safetensors", 0.5, 0.0),
        ("/data/a:b/ink", "/data/a:b/ink", 1.0, None),
        ("ink:0.3", "ink", 0.3, None),
        ("old.pt:1e-1", "old.pt", 0.1, None),
    ],
)
def test_parse_lora_flag(flag, path, weight, text_weight):
    use = parse_lora_flag(flag)
    assert use == LoraUse(Path(path), weight, text_weight)
    assert use.name == Path(path).stem


@pytest.mark.parametrize(
    "flag, said",
    [
        ("style.safetensors:abc", "bad LoRA weight 'abc'"),
        ("style.safetensors:", "bad LoRA weight ''"),
        ("style.safetensors:0.5:x", "after the file name expected at most two numbers"),
        ("style.safetensors:1:2:3", "after the file name expected at most two numbers"),
        ("style.safetensors:nan", "bad LoRA weight 'nan'"),
        (":0.5", "names no file"),
    ],
)
def test_parse_lora_flag_refuses_bad_numbers(flag, said):
    with pytest.raises(DiffdiffError) as caught:
        parse_lora_flag(flag)
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_lora_use_defaults():
    use = LoraUse(Path("x/My Style.safetensors"), 0.5)
    assert use.name == "My Style" and use.text_weight is None and use.text_strength == 0.5
    assert LoraUse(Path("a.safetensors"), 0.5, 0.0).text_strength == 0.0


@pytest.fixture
def lora_dir(tmp_path):
    for name in (
        "Ink.safetensors",
        "styles/Watercolor.safetensors",
        "styles/ink2.safetensors",
        "a/twin.safetensors",
        "b/twin.safetensors",
        "notes.txt",
        "old.pt",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_find_lora(lora_dir):
    assert find_lora("Ink", lora_dir) == lora_dir / "Ink.safetensors"
    assert find_lora("ink", lora_dir) == lora_dir / "Ink.safetensors"
    assert find_lora("watercolor", lora_dir) == lora_dir / "styles/Watercolor.safetensors"
    assert find_lora("a/twin", lora_dir) == lora_dir / "a/twin.safetensors"
    assert find_lora("INK2.safetensors", lora_dir) == lora_dir / "styles/ink2.safetensors"


@pytest.mark.parametrize(
    "name, folder, said",
    [
        ("twin", "dir", "LoRA name 'twin' is ambiguous"),
        ("missing", "dir", "no LoRA named 'missing' in"),
        ("old", "dir", "no LoRA named 'old' in"),
        ("Ink", None, "<lora:Ink> needs a LoRA folder"),
        ("Ink", "nowhere", "LoRA folder not found"),
    ],
)
def test_find_lora_errors(lora_dir, name, folder, said):
    given = {"dir": lora_dir, None: None, "nowhere": lora_dir / "nowhere"}[folder]
    with pytest.raises(DiffdiffError) as caught:
        find_lora(name, given)
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_lora_short_hash_skips_the_safetensors_header(tmp_path):
    path = tmp_path / "h.safetensors"
    save_file({"a.lora_down.weight": torch.arange(12.0).reshape(3, 4)}, str(path), metadata={"ss_note": "hi"})
    data = path.read_bytes()
    header_length = int.from_bytes(data[:8], "little")
    by_hand = hashlib.sha256(data[8 + header_length :]).hexdigest()[:12]
    assert lora_short_hash(path) == by_hand
    assert by_hand != hashlib.sha256(data).hexdigest()[:12]
    # a different header over the same tensors keeps the hash (why A1111 hashes past the header)
    save_file(
        {"a.lora_down.weight": torch.arange(12.0).reshape(3, 4)}, str(path), metadata={"ss_note": "other"}
    )
    assert lora_short_hash(path) == by_hand


def test_lora_short_hash_of_other_files_is_of_all_bytes(tmp_path):
    path = tmp_path / "old.pt"
    path.write_bytes(b"pickled bytes")
    assert lora_short_hash(path) == hashlib.sha256(b"pickled bytes").hexdigest()[:12]
    with pytest.raises(DiffdiffError, match="cannot read LoRA"):
        lora_short_hash(tmp_path / "gone.safetensors")
