"""The strength canvas as a Gradio component (our JavaScript in static/, a few classic scripts joined in
`SCRIPTS` order into one `js_on_load`, hosted by `gr.HTML`), and the map's form on the wire: a lossless grey
PNG data URL at the image's size, byte b = strength b / 255."""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DiffdiffError
from ..maps import colour_ramp

STATIC = Path(__file__).resolve().parent / "static"
# The canvas's scripts in load order, each defining one top-level const the later ones use: the pure paint
# functions, undo/redo, the view (zoom, pan, drawing), the input (pointer, keys, toolbar), the controller.
SCRIPTS = ("strength_paint.js", "strength_history.js", "strength_view.js", "strength_input.js",
           "strength_canvas.js")
DATA_URL_PREFIX = "data:image/png;base64,"
MOUNT = "window.ddCanvas = StrengthCanvas.mount(element.querySelector('.dd-canvas'), props);"
UPLOAD_ELEM_ID = "dd-upload"  # the page's image upload, which every image goes through to be checked
# A file dropped, pasted or chosen on the canvas goes to the image upload, as if chosen there: the server
# checks it like any upload. The upload is emptied after each image; after a refused one, clear it first
# and wait for its file input to come back.
CLEARED_UPLOAD_WAIT_MS = 10_000
FORWARD_FILES = f"""
window.ddCanvas.onImageFile = async (file) => {{
  const box = document.getElementById('{UPLOAD_ELEM_ID}');
  let input = box && box.querySelector('input[type=file]');
  if (!input && box) {{
    // after an error there are two: the error status's and the file's own (which brings the input back)
    box.querySelectorAll('button[aria-label="Clear"]').forEach((clear) => clear.click());
    const deadline = Date.now() + {CLEARED_UPLOAD_WAIT_MS};  // a busy machine re-renders the box slowly
    while (!input && Date.now() < deadline) {{
      await new Promise((done) => setTimeout(done, 25));
      input = box.querySelector('input[type=file]');
    }}
  }}
  if (!input) return;
  const files = new DataTransfer();
  files.items.add(file);
  input.files = files.files;
  input.dispatchEvent(new Event('change', {{ bubbles: true }}));
}};
"""


def ramp_table() -> list[list[int]]:
    """The 256 colours the canvas paints strengths with: the same ramp as `diffdiff map --preview`."""
    return colour_ramp(np.linspace(0.0, 1.0, 256)).tolist()


def canvas_script() -> str:
    """The files of `SCRIPTS` joined in order: text that defines `StrengthCanvas` (and what it uses), whether
    run as a page's script or as a function's body."""
    return "\n".join((STATIC / name).read_text(encoding="utf-8") for name in SCRIPTS)


def strength_canvas(elem_id: str = "dd-canvas-block"):
    """The canvas component (a `gr.HTML` whose script mounts `StrengthCanvas` as `window.ddCanvas`)."""
    import gradio as gr

    return gr.HTML(
        html_template=(STATIC / "strength_canvas.html").read_text(encoding="utf-8"),
        css_template=(STATIC / "strength_canvas.css").read_text(encoding="utf-8"),
        js_on_load="\n".join([canvas_script(), MOUNT, FORWARD_FILES]),
        apply_default_css=False, elem_id=elem_id, ramp=ramp_table())


def map_from_data_url(text: str | None, size: tuple[int, int]) -> np.ndarray:
    """The (H, W) float32 map a canvas sent, checked against the image's `size` (width, height)."""
    if not text or not text.startswith(DATA_URL_PREFIX):
        raise DiffdiffError("the page sent no strength map; paint one (or upload a map) and run again")
    try:
        raw = base64.b64decode(text[len(DATA_URL_PREFIX):], validate=True)
        with Image.open(io.BytesIO(raw)) as picture:
            if picture.format != "PNG":
                raise DiffdiffError("the strength map must be a PNG")
            picture.load()
            grey = np.asarray(picture.convert("RGB"))[..., 0]
    except (binascii.Error, OSError, ValueError) as exc:
        raise DiffdiffError(f"the page sent an unreadable strength map ({exc})") from None
    if (grey.shape[1], grey.shape[0]) != tuple(size):
        raise DiffdiffError(f"the strength map is {grey.shape[1]}x{grey.shape[0]} but the image is "
                            f"{size[0]}x{size[1]}")
    return grey.astype(np.float32) / 255.0


def map_to_data_url(strength_map: np.ndarray) -> str:
    """A map in [0, 1] as the canvas reads it (rounded to bytes)."""
    grey = np.round(np.clip(strength_map, 0.0, 1.0) * 255.0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    return DATA_URL_PREFIX + base64.b64encode(buffer.getvalue()).decode("ascii")
