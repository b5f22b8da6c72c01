"""The page in a real browser (headless Debian chromium under Playwright) against a server on a free
loopback port with the demo model: paint, run, results, cancel, bad uploads, the HTTP API and what the
server will serve. Screenshots go to test-artifacts/."""

import base64
import re
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from diffdiff.demo import DEMO_MODEL
from diffdiff.maps import colour_ramp
from diffdiff.ui.handlers import FILE_ROUTE, Studio
from diffdiff.ui.models import ModelShelf
from diffdiff.ui.server import launch

WIDTH, HEIGHT = 128, 96


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, studio, folder): the page with the demo model, and a folder with a test picture."""
    from diffdiff.demo.scenes import random_attributes, render
    from diffdiff.models import load_model

    model = load_model(DEMO_MODEL, device="cpu")
    folder = tmp_path_factory.mktemp("page")
    studio = Studio(ModelShelf(DEMO_MODEL, None, loader=lambda path, **options: model), folder / "out",
                    preview_every=1)
    scene = render(random_attributes(np.random.default_rng(3)), (HEIGHT, WIDTH), seed=3).pixels
    Image.fromarray(scene).save(folder / "scene.png")
    # the job that gets cancelled: big enough that it is still running whatever the machine's speed
    Image.fromarray(scene).resize((4 * WIDTH, 4 * HEIGHT)).save(folder / "big-scene.png")
    running = launch(studio, "127.0.0.1", _free_port(), block=False, quiet=True)
    yield running.local_url, studio, folder
    running.close()


def _open(page, url):
    page.goto(url)
    page.wait_for_function("window.ddCanvas !== undefined", timeout=60_000)
    # the canvas forwards pasted and dropped files to the upload, which may mount after it
    page.wait_for_selector("#dd-upload input[type=file]", state="attached", timeout=60_000)


def _upload(page, path, width=WIDTH):
    page.set_input_files("#dd-upload input[type=file]", str(path))
    page.wait_for_function(f"window.ddCanvas.size().width === {width}", timeout=30_000)


def _set_range(page, selector, value):
    page.eval_on_selector(selector, """(input, value) => { input.value = value;
        input.dispatchEvent(new Event('input', {bubbles: true}));
        input.dispatchEvent(new Event('change', {bubbles: true})); }""", value)


def _on_view(page, x, y):
    """Where image pixel (x, y)'s centre is on the screen."""
    view = page.evaluate("window.ddCanvas.view()")
    box = page.locator("#dd-view").bounding_box()
    return (box["x"] + view["offsetX"] + (x + 0.5) * view["zoom"],
            box["y"] + view["offsetY"] + (y + 0.5) * view["zoom"])


def _stroke(page, start, end):
    page.mouse.move(*_on_view(page, *start))
    page.mouse.down()
    page.mouse.move(*_on_view(page, *end), steps=12)
    page.mouse.up()


def _map_bytes(page) -> np.ndarray:
    size = page.evaluate("window.ddCanvas.size()")
    values = page.evaluate("Array.from(window.ddCanvas.mapBytes())")
    return np.array(values, dtype=np.uint8).reshape(size["height"], size["width"])


def _status(page) -> str:
    return page.locator("#dd-status-line textarea").input_value()


def _run(page, timeout=120_000):
    page.click("#dd-run")
    page.wait_for_function("document.querySelector('#dd-status-line textarea').value.startsWith('done')",
                           timeout=timeout)


def _set_number(page, elem_id, value):
    field = page.locator(f"#{elem_id} input[type=number]")
    field.fill(str(value))
    field.press("Enter")


def _newest_edit(studio):
    edits = sorted(p for p in studio.output.glob("*-edit-*.png") if not p.name.endswith("-map.png"))
    return edits[-1], edits[-1].with_name(edits[-1].stem + "-map.png")


def _view_pixels(page, width, height) -> np.ndarray:
    """The view canvas's pixels over the image's rectangle (at zoom 1)."""
    view = page.evaluate("window.ddCanvas.view()")
    data = page.evaluate("""([x, y, w, h]) => Array.from(document.querySelector('#dd-view').getContext('2d')
        .getImageData(x, y, w, h).data)""", [view["offsetX"], view["offsetY"], width, height])
    return np.array(data, dtype=np.uint8).reshape(height, width, 4)[..., :3]


def test_paint_two_strokes_at_40_percent_run_and_see_the_result(served, page, screenshot):
    url, studio, folder = served
    _open(page, url)
    _upload(page, folder / "scene.png")
    page.click("#dd-tool-brush")
    _set_range(page, "#dd-value", 40)
    _set_range(page, "#dd-size", 20)
    _set_range(page, "#dd-hardness", 100)
    _stroke(page, (10, 30), (115, 30))
    _stroke(page, (60, 5), (60, 90))  # crosses the first stroke
    painted = _map_bytes(page)
    assert painted[30, 60] == 102 and painted[30, 20] == 102 and painted[80, 60] == 102
    assert painted[90, 5] == 0 and painted.max() == 102 and set(np.unique(painted)) == {0, 102}
    screenshot("painted")

    page.fill("#dd-prompt textarea", "a night sky with stars")
    _set_number(page, "dd-steps", 4)
    _run(page)
    result, sent_map = _newest_edit(studio)
    sent = np.asarray(Image.open(sent_map))
    assert np.array_equal(sent, painted)  # the map the page sent is the canvas's map, pixel for pixel
    assert np.float32(sent[30, 60]) / np.float32(255) == np.float32(0.4)
    before = np.asarray(Image.open(folder / "scene.png").convert("RGB"))
    after = np.asarray(Image.open(result).convert("RGB"))
    assert np.array_equal(after[sent == 0], before[sent == 0])
    assert np.abs(after[sent > 0].astype(int) - before[sent > 0]).max() > 0
    page.wait_for_selector("#dd-results img")
    assert page.locator("#dd-results img").count() >= 1
    screenshot("result")

    page.evaluate("window.ddCanvas.setView({show: 'map'}); window.ddCanvas.setZoom(1)")
    page.wait_for_timeout(300)
    shown = _view_pixels(page, WIDTH, HEIGHT)
    assert np.array_equal(shown, colour_ramp(sent / 255.0))  # what the canvas shows is what was sent


def test_results_keep_download_use_as_input_history_and_map_tools(served, page):
    url, studio, folder = served
    _open(page, url)
    _upload(page, folder / "scene.png")
    half = np.zeros((HEIGHT // 2, WIDTH // 2), np.uint8)  # a map file at half size: resized to the image
    half[:, : WIDTH // 4] = 255
    Image.fromarray(half).save(folder / "half-map.png")
    page.set_input_files("#dd-map-upload input[type=file]", str(folder / "half-map.png"))
    page.wait_for_function("window.ddCanvas.canUndo()", timeout=30_000)
    loaded = _map_bytes(page)
    assert (loaded[:, : WIDTH // 2 - 2] == 255).all() and (loaded[:, WIDTH // 2 + 2:] == 0).all()
    _set_range(page, "#dd-value", 100)
    page.click("#dd-fill-all")
    page.fill("#dd-prompt textarea", "snow")
    _set_number(page, "dd-steps", 3)
    _set_number(page, "dd-batch", 2)
    _run(page)
    page.wait_for_selector("#dd-results img")
    assert page.locator("#dd-results img").count() == 2
    page.locator("#dd-results img").nth(1).click()
    page.click("#dd-keep")
    page.wait_for_function("document.querySelectorAll('#dd-kept a').length === 1", timeout=15_000)
    assert page.locator("#dd-kept a").first.get_attribute("href").endswith("-1.png")  # the second one
    with page.expect_download() as download:
        page.click("#dd-download")
    saved = Image.open(download.value.path())
    parameters = saved.text["parameters"]  # the selected variation's own settings: seed 0 + 1
    assert saved.format == "PNG" and "snow" in parameters and re.search(r"Seed: 1\b", parameters)

    _set_number(page, "dd-steps", 9)
    page.locator("#dd-history [role=gridcell]").first.click()  # the newest run's row
    page.wait_for_function("document.querySelector('#dd-steps input[type=number]').value === '3'",
                           timeout=15_000)

    # The map was all 255 before too, so wait until the new image has been set and its map put back: count
    # the canvas's finished setMap calls (the page's script looks setMap up when it runs).
    page.evaluate("""() => { const canvas = window.ddCanvas, setMap = canvas.setMap; window.ddMapsSet = 0;
        canvas.setMap = (map) => setMap(map).then((done) => { window.ddMapsSet += 1; return done; }); }""")
    page.click("#dd-use-as-input")
    page.wait_for_function("window.ddMapsSet === 1", timeout=15_000)
    assert _map_bytes(page).min() == 255

    page.get_by_text("Map tools").click()
    page.click("#dd-map-invert")
    page.wait_for_function("Math.max(...window.ddCanvas.mapBytes()) === 0", timeout=15_000)


def _long_job(page, url, folder, prompt="fog", steps=150, picture="big-scene.png"):
    _open(page, url)
    _upload(page, folder / picture, width=Image.open(folder / picture).width)
    _set_range(page, "#dd-value", 100)
    page.click("#dd-fill-all")
    page.fill("#dd-prompt textarea", prompt)
    _set_number(page, "dd-steps", steps)


def test_jobs_queue_show_live_previews_and_cancel_stops_a_long_one(served, browser, page, screenshot):
    url, studio, folder = served
    _long_job(page, url, folder)
    written = set(studio.output.glob("*.png"))
    page.click("#dd-run")
    page.wait_for_function("document.querySelector('#dd-status-line textarea').value.startsWith('step')",
                           timeout=60_000)
    page.wait_for_selector("#dd-preview img", timeout=30_000)  # a live preview of the running job

    other_context = browser.new_context(viewport={"width": 1280, "height": 900})
    other = other_context.new_page()
    _long_job(other, url, folder, prompt="rain", steps=3, picture="scene.png")
    other.click("#dd-run")
    other.locator("#dd-status-line", has_text="queue").wait_for(timeout=30_000)  # waits its turn
    screenshot("running")

    page.click("#dd-cancel")
    page.wait_for_function("document.querySelector('#dd-status-line textarea').value === 'cancelled'",
                           timeout=15_000)
    other.wait_for_function("document.querySelector('#dd-status-line textarea').value.startsWith('done')",
                            timeout=120_000)  # the queue moved on
    other_context.close()
    new = set(studio.output.glob("*.png")) - written
    assert new and all("-edit-" in p.name for p in new)
    assert len([p for p in new if p.name.endswith("-map.png")]) == 1  # the cancelled job wrote nothing


def test_an_image_pasted_on_the_canvas_goes_through_the_upload_checks(served, page):
    url, studio, folder = served
    _open(page, url)
    garbage = folder / "pasted-garbage.png"
    garbage.write_bytes(b"not a picture at all")
    paste = """async ([data, name]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const files = new DataTransfer();
        files.items.add(new File([bytes], name, {type: 'image/png'}));
        document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: files, bubbles: true}));
    }"""
    narrow = folder / "pasted-narrow.png"  # the first picture has another width, so each paste shows
    Image.open(folder / "scene.png").resize((WIDTH // 2, HEIGHT)).save(narrow)
    for path in (narrow, garbage, folder / "scene.png"):
        page.evaluate("() => window.ddCanvas.clear()")
        page.evaluate(paste, [base64.b64encode(path.read_bytes()).decode(), path.name])
        if path == garbage:
            page.locator(".toast-body", has_text="pasted-garbage.png").first.wait_for(timeout=30_000)
        else:
            width = Image.open(path).width
            page.wait_for_function(f"window.ddCanvas.size().width === {width}", timeout=30_000)
    stored = sorted(studio.inputs.glob("*.png"))
    assert np.array_equal(np.asarray(Image.open(stored[-1])), np.asarray(Image.open(folder / "scene.png")))


def _bomb(path):
    from test_ui_parts import _bomb as make

    return make(path)


def test_a_bad_upload_shows_an_error_and_the_server_stays_up(served, page, screenshot):
    url, studio, folder = served
    _open(page, url)
    garbage = folder / "garbage.png"
    garbage.write_bytes(b"definitely not a picture")
    truncated = folder / "truncated.png"
    truncated.write_bytes((folder / "scene.png").read_bytes()[:100])
    for bad, message in ((garbage, "garbage.png"), (truncated, "truncated.png"),
                         (_bomb(folder / "bomb.png"), "pixel limit")):
        page.set_input_files("#dd-upload input[type=file]", str(bad))
        toast = page.locator(".toast-body", has_text=message)
        toast.first.wait_for(timeout=30_000)
        assert "Traceback" not in toast.first.inner_text()
        screenshot(f"error-{bad.stem}")
        _open(page, url)
    _upload(page, folder / "scene.png")  # still serving


def test_the_server_serves_its_output_folder_and_nothing_else(served):
    url, studio, folder = served
    inside = studio.output / "probe.txt"
    inside.write_text("ours")
    outside = folder / "secret.txt"
    outside.write_text("not the page's")

    def status(path):
        try:
            with urllib.request.urlopen(url.rstrip("/") + FILE_ROUTE + str(path)) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert status(inside) == 200
    assert status(outside) in (403, 404) and status("/etc/passwd") in (403, 404)


def test_the_http_api_edits_with_a_client(served, tmp_path):
    from gradio_client import Client, handle_file

    url, studio, folder = served
    grey = np.zeros((HEIGHT, WIDTH), np.uint8)
    grey[:40, :] = 255
    Image.fromarray(grey).save(tmp_path / "map.png")
    client = Client(url, verbose=False, download_files=str(tmp_path))
    files = client.predict(handle_file(str(folder / "scene.png")), handle_file(str(tmp_path / "map.png")),
                           "a night sky", steps=3, api_name="/edit")
    assert len(files) == 1
    before = np.asarray(Image.open(folder / "scene.png").convert("RGB"))
    written = files[0]["path"] if isinstance(files[0], dict) else files[0]
    after = np.asarray(Image.open(written).convert("RGB"))
    assert np.array_equal(after[40:], before[40:]) and not np.array_equal(after[:40], before[:40])
