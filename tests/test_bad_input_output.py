"""Outputs that exist already: Python callers are told about overwrite=True, CLI users about --overwrite."""

import pytest
from PIL import Image

from diffdiff import imageio
from diffdiff.atomic import CLI_OVERWRITE_HINT, atomic_write, check_writable
from diffdiff.cli.main import main
from diffdiff.errors import DiffdiffError
from diffdiff.maps import save_map


def test_python_callers_get_the_keyword_not_only_the_flag(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"x")
    neutral = rf"^{target} exists; pass overwrite=True \(--overwrite on the command line\) to replace it$"
    with pytest.raises(DiffdiffError, match=neutral):  # what EditResult.save calls
        imageio.save_png(target, Image.new("RGB", (4, 4)))
    with pytest.raises(DiffdiffError, match=neutral):
        save_map(target, [[0.5]])
    with pytest.raises(DiffdiffError, match=neutral):
        atomic_write(target, lambda tmp: tmp.write_bytes(b"y"))
    assert target.read_bytes() == b"x"


def test_the_cli_keeps_its_own_wording(tmp_path, capsys):
    target = tmp_path / "out.png"
    target.write_bytes(b"x")
    with pytest.raises(DiffdiffError, match=rf"^{target} exists; pass --overwrite to replace it$"):
        check_writable(target, hint=CLI_OVERWRITE_HINT)
    with pytest.raises(DiffdiffError, match=rf"^{target} exists; pass --overwrite to replace it$"):
        imageio.check_outputs(target, 1)  # the edit and upscale verbs' pre-flight check
    source = tmp_path / "m.png"
    Image.new("L", (4, 4)).save(source)
    assert main(["map", "invert", str(source), "-o", str(target)]) == 2
    assert capsys.readouterr().err == f"error: {target} exists; pass --overwrite to replace it\n"


def test_make_tiny_model_hint_follows_the_caller(tmp_path, capsys):
    from diffdiff.models.tiny import make_tiny_model

    target = tmp_path / "tiny.safetensors"
    target.write_bytes(b"x")
    with pytest.raises(DiffdiffError, match=r"exists; pass overwrite=True \(--overwrite on the command"):
        make_tiny_model(target, "sd1", single_file=True)
    assert main(["make-tiny-model", str(target), "--single-file"]) == 2
    assert capsys.readouterr().err == f"error: {target} exists; pass --overwrite to replace it\n"
