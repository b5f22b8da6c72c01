"""The README's picture of the page: serve `diffdiff ui` with the demo model, load the demo's landscape and
sky map in headless Chromium, paint a soft stroke, run the demo's edit, and save the whole page.

Usage: .venv/bin/python scripts/ui_screenshot.py [-o docs/images/ui-page.png]
Needs Debian's chromium (/usr/bin/chromium) and the test extra (Playwright); takes about a minute on a CPU.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402 - the tests' browser settings, stated once

WIDTH = 1100  # pixels of the saved picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=str(ROOT / "docs/images/ui-page.png"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from diffdiff.demo import DEMO_MODEL
    from diffdiff.ui.handlers import Studio
    from diffdiff.ui.models import ModelShelf
    from diffdiff.ui.server import launch

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    studio = Studio(ModelShelf(DEMO_MODEL, None, device="cpu"), Path(tempfile.mkdtemp()) / "out")
    studio.shelf.get()
    running = launch(studio, "127.0.0.1", port, block=False, quiet=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(running.local_url)
        page.wait_for_function("window.ddCanvas !== undefined", timeout=60_000)
        page.set_input_files("#dd-upload input[type=file]", str(ROOT / "examples/demo.png"))
        page.wait_for_function("window.ddCanvas.size().width === 512", timeout=60_000)
        page.set_input_files("#dd-map-upload input[type=file]", str(ROOT / "examples/sky-map.png"))
        page.wait_for_function("window.ddCanvas.canUndo()", timeout=60_000)
        page.evaluate("window.ddCanvas.setBrush({value: 35, size: 90, hardness: 0, mode: 'max'})")
        box = page.locator("#dd-view").bounding_box()
        view = page.evaluate("window.ddCanvas.view()")

        def at(x, y):
            zoom = view["zoom"]
            return box["x"] + view["offsetX"] + x * zoom, box["y"] + view["offsetY"] + y * zoom

        page.mouse.move(*at(60, 440))  # a soft 35 % stroke over the lake's near shore
        page.mouse.down()
        page.mouse.move(*at(300, 440), steps=20)
        page.mouse.up()
        page.fill("#dd-prompt textarea", "a night sky with stars")
        for elem_id, value in (("dd-steps", 20), ("dd-cfg", 6), ("dd-seed", 1)):
            field = page.locator(f"#{elem_id} input[type=number]")
            field.fill(str(value))
            field.press("Enter")
        page.click("#dd-run")
        page.wait_for_function("document.querySelector('#dd-status-line textarea').value.startsWith('done')",
                               timeout=600_000)
        page.wait_for_timeout(1500)
        shot = Path(tempfile.mkdtemp()) / "page.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    running.close()
    picture = Image.open(shot).convert("RGB")
    picture = picture.resize((WIDTH, round(picture.height * WIDTH / picture.width)), Image.Resampling.LANCZOS)
    picture.save(args.output, optimize=True)
    print(f"wrote {args.output} ({picture.width}x{picture.height})")


if __name__ == "__main__":
    main()
