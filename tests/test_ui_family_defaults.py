"""The page's sampling controls follow the chosen model's family: read from the file, not loaded."""

import json
import socket

import numpy as np
import pytest
from PIL import Image

from diffdiff.models import family_of, make_tiny_model
from diffdiff.ui.handlers import Studio
from diffdiff.ui.models import ModelShelf
from diffdiff.ui.server import launch
from diffdiff.ui.settings import FAMILY_SETTINGS, family_control_values

FAMILIES = ("sd1", "sd2-v", "sdxl", "sd3", "flux", "flux-schnell", "flux-fill", "z-image")


@pytest.fixture(scope="module")
def shelf_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shelf")
    make_tiny_model(folder / "a-sd1.safetensors", "sd1", single_file=True)
    make_tiny_model(folder / "b-schnell", "flux-schnell")
    return folder


@pytest.mark.parametrize("family", FAMILIES)
def test_family_of_reads_every_form_without_loading(family, tmp_path):
    folder = make_tiny_model(tmp_path / "folder", family)
    single = make_tiny_model(tmp_path / "single", family, single_file=True)
    assert family_of(folder) == family_of(single) == family


def test_the_controls_take_each_familys_defaults(shelf_folder):
    assert [setting.keyword for setting in FAMILY_SETTINGS] == ["sampler", "scheduler", "steps", "cfg"]
    assert family_control_values("sd1") == ["euler", "normal", 20, 7.0]
    assert family_control_values("flux-schnell") == ["euler", "simple", 4, 1.0]
    shelf = ModelShelf(None, shelf_folder)
    assert shelf.names() == ["a-sd1.safetensors", "b-schnell"]
    assert shelf.family() == "sd1" and shelf.family("b-schnell") == "flux-schnell"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_choosing_a_flux_model_on_the_page_sets_its_defaults_and_runs(shelf_folder, page, tmp_path):
    picture = tmp_path / "picture.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(picture)
    studio = Studio(ModelShelf(None, shelf_folder, device="cpu"), tmp_path / "out")
    running = launch(studio, "127.0.0.1", _free_port(), block=False, quiet=True)
    try:
        page.goto(running.local_url)
        page.wait_for_function("window.ddCanvas !== undefined", timeout=60_000)
        steps = page.locator("#dd-steps input[type=number]")
        assert steps.input_value() == "20"
        page.click("#dd-model input")
        page.get_by_role("option", name="b-schnell").click()
        page.wait_for_function("document.querySelector('#dd-steps input[type=number]').value === '4'",
                               timeout=30_000)
        assert page.locator("#dd-cfg input[type=number]").input_value() == "1"
        page.set_input_files("#dd-upload input[type=file]", str(picture))
        page.wait_for_function("window.ddCanvas.size().width === 64", timeout=30_000)
        page.fill("#dd-prompt textarea", "a boat")
        page.click("#dd-run")
        page.wait_for_function(
            "document.querySelector('#dd-status-line textarea').value.startsWith('done')", timeout=120_000)
        edits = sorted(p for p in studio.output.glob("*-edit-*.png") if not p.name.endswith("-map.png"))
        settings = json.loads(Image.open(edits[-1]).text["diffdiff"])
        assert (settings["family"], settings["steps"], settings["cfg"]) == ("flux-schnell", 4, 1.0)
    finally:
        running.close()


def test_the_http_api_takes_the_models_family_defaults(shelf_folder, tmp_path):
    from gradio_client import Client, handle_file

    picture = tmp_path / "picture.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(picture)
    Image.fromarray(np.full((32, 48), 200, np.uint8)).save(tmp_path / "map.png")
    studio = Studio(ModelShelf(None, shelf_folder, device="cpu"), tmp_path / "out")
    running = launch(studio, "127.0.0.1", _free_port(), block=False, quiet=True)
    try:
        client = Client(running.local_url, verbose=False, download_files=str(tmp_path))
        cases = (("b-schnell", ("flux-schnell", 4, 1.0)), ("a-sd1.safetensors", ("sd1", 2, 7.0)))
        for model, expected in cases:
            steps = {} if model == "b-schnell" else {"steps": 2}
            files = client.predict(handle_file(str(picture)), handle_file(str(tmp_path / "map.png")),
                                   "a boat", model=model, api_name="/edit", **steps)
            written = files[0]["path"] if isinstance(files[0], dict) else files[0]
            settings = json.loads(Image.open(written).text["diffdiff"])
            assert (settings["family"], settings["steps"], settings["cfg"]) == expected
    finally:
        running.close()
