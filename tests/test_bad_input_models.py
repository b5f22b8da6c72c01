"""Bad model inputs: unreadable files, missing local folders, odd pickles → one true line each."""

import os
import pickle
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from diffdiff.cli.main import main
from diffdiff.errors import DiffdiffError
from diffdiff.maps import load_depth_estimator
from diffdiff.models import folder as folder_module
from diffdiff.models import load_model, single_file
from diffdiff.models.loading import load_separate_vae


def _deny(monkeypatch, module, path):
    """Make `open(path)` in `module` fail as for a file without read permission (tests run as root)."""
    real_open = open

    def fake_open(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(path):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(module, "open", fake_open, raising=False)


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(4)}, str(path))
    return path


def test_an_unreadable_checkpoint_says_permission_denied_not_missing(weights, monkeypatch):
    _deny(monkeypatch, single_file, weights)
    message = rf"^cannot read {weights}: permission denied$"
    with pytest.raises(DiffdiffError, match=message):
        single_file.read_checkpoint(weights)
    with pytest.raises(DiffdiffError, match=message):
        load_model(weights, device="cpu")
    with pytest.raises(DiffdiffError, match=message):  # --vae FILE goes the same way
        load_separate_vae(weights, weights.parent, allow_pickle=False, dtype=torch.float32)


def test_an_unreadable_pickle_says_permission_denied(tmp_path, monkeypatch):
    path = tmp_path / "model.ckpt"
    torch.save({"w": torch.zeros(1)}, path)
    _deny(monkeypatch, single_file, path)
    with pytest.raises(DiffdiffError, match=r"permission denied$"):
        single_file.read_checkpoint(path, allow_pickle=True)


def test_an_unreadable_file_in_a_diffusers_folder_is_named(tmp_path):
    (tmp_path / "unet").mkdir()
    weights = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"")

    class Denied:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            raise PermissionError(13, "Permission denied", str(weights))

    with pytest.raises(DiffdiffError, match=rf"^cannot read {weights}: permission denied$"):
        folder_module.from_pretrained_component(Denied, tmp_path, "unet", torch.float32, False)


def test_a_local_looking_model_path_is_not_looked_up_in_the_hub_cache(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DiffdiffError, match="not found: models/sd15$"):
        load_model("models/sd15", device="cpu")


# --- depth model folders ------------------------------------------------------------------------------


def test_a_missing_depth_model_folder_says_so(tmp_path, monkeypatch, capsys):
    with pytest.raises(DiffdiffError, match=rf"^depth model folder {tmp_path / 'absent'} does not exist$"):
        load_depth_estimator(tmp_path / "absent")
    (tmp_path / "models").mkdir()  # "models/depth" is then a relative path, not a hub id
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DiffdiffError, match="^depth model folder models/depth does not exist$"):
        load_depth_estimator("models/depth")
    image = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    assert main(["map", "depth", str(image), "--model", "models/depth", "-o", str(tmp_path / "d.png")]) == 2
    assert capsys.readouterr().err == "error: depth model folder models/depth does not exist\n"


def test_an_uncached_hub_id_still_gets_the_fetch_hint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DiffdiffError, match="neither a local folder nor in the local Hugging Face cache"):
        load_depth_estimator("someone/depth-model")


def test_a_depth_model_given_as_a_file_or_unreadable_folder(tmp_path, monkeypatch):
    file = tmp_path / "depth.safetensors"
    file.write_bytes(b"x")
    with pytest.raises(DiffdiffError, match="is a file, not a model folder"):
        load_depth_estimator(file)
    folder = tmp_path / "depth"
    folder.mkdir()
    from diffdiff.maps import depth

    monkeypatch.setattr(depth.os, "access", lambda path, mode: os.fspath(path) != os.fspath(folder))
    with pytest.raises(DiffdiffError, match=rf"^cannot read {folder}: permission denied$"):
        load_depth_estimator(folder)


# --- pickles that are not weights -----------------------------------------------------------------------


@pytest.mark.parametrize("content, found", [
    ({"a": 1, "b": [1, 2]}, "a plain Python pickle"),
    ([1, 2, 3], "a plain Python pickle"),
])
def test_a_plain_pickle_gives_one_line_and_no_library_warnings(tmp_path, content, found):
    path = tmp_path / "notes.ckpt"
    path.write_bytes(pickle.dumps(content, protocol=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "Detected pickle protocol 4" warning must not escape
        with pytest.raises(DiffdiffError, match=found) as error:
            single_file.read_checkpoint(path, allow_pickle=True)
    assert "\n" not in str(error.value) and "weights_only" not in str(error.value)


def test_torch_saved_objects_that_are_not_state_dicts_are_named(tmp_path):
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], listed)
    with pytest.raises(DiffdiffError, match=r"list.pt holds a list, not a state dict"):
        single_file.read_checkpoint(listed, allow_pickle=True)
    no_tensors = tmp_path / "settings.pt"
    torch.save({"epoch": 3, "lr": 0.1}, no_tensors)
    with pytest.raises(DiffdiffError, match=r"settings.pt holds a dict with no tensors \(keys: epoch, lr\)"):
        single_file.read_checkpoint(no_tensors, allow_pickle=True)
    with_numpy = tmp_path / "numpy.pt"
    torch.save({"w": np.zeros(3)}, with_numpy)
    with pytest.raises(DiffdiffError, match=r"numpy.pt refers to numpy\S*_reconstruct") as error:
        single_file.read_checkpoint(with_numpy, allow_pickle=True)
    assert "\n" not in str(error.value) and "\x1b" not in str(error.value)


def test_cli_allow_pickle_on_a_plain_pickle_prints_one_line(tmp_path, capsys):
    model = tmp_path / "notes.ckpt"
    model.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    image = tmp_path / "in.png"
    Image.new("RGB", (64, 64)).save(image)
    code = main(["edit", str(image), "--map", "0.5", "--prompt", "x", "--model", str(model), "--allow-pickle",
                 "-o", str(tmp_path / "out.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "plain Python pickle" in err
