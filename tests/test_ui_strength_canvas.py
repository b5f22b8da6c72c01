"""The strength painter (diffdiff/ui/static/strength_canvas.html and .css, and the scripts of
`diffdiff.ui.canvas.SCRIPTS`) in a real headless Chromium.

Painting is setting strength: the map is W×H bytes, byte b = strength b/255, a brush at P % paints
round(P·255/100). The pure functions are checked directly; the interactive ones with the real mouse.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffdiff.maps import colour_ramp
from diffdiff.ui.canvas import SCRIPTS, canvas_script

STATIC = Path(__file__).resolve().parents[1] / "diffdiff" / "ui" / "static"
HTML = (STATIC / "strength_canvas.html").read_text(encoding="utf-8")
CSS = (STATIC / "strength_canvas.css").read_text(encoding="utf-8")
SCRIPT_TEXTS = [(STATIC / name).read_text(encoding="utf-8") for name in SCRIPTS]  # each a classic <script>
JS = canvas_script()  # all of them, as Gradio's js_on_load gets them
RAMP = colour_ramp(np.linspace(0, 1, 256)).tolist()
RAMP_NP = np.array(RAMP, dtype=np.uint8)
W, H = 96, 64
MOUNT = "(ramp) => { window.dd = StrengthCanvas.mount(document.querySelector('.dd-canvas'), {ramp}); }"
PAGE = ("<!doctype html><html><head><meta charset='utf-8'><style>" + CSS + "</style></head><body>"
        + HTML + "</body></html>")


# ------------------------------------------------------------------ helpers

def png_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_url(url: str) -> np.ndarray:
    header, data = url.split(",", 1)
    assert header == "data:image/png;base64"
    return np.array(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGBA"))


def test_image(width: int = W, height: int = H) -> Image.Image:
    ys, xs = np.mgrid[0:height, 0:width]
    rgb = np.stack([xs * 255 // max(1, width - 1), ys * 255 // max(1, height - 1),
                    ((xs // 8 + ys // 8) % 2) * 120 + 60], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


test_image.__test__ = False  # a helper, not a test


def js(page, expression: str, arg=None):
    return page.evaluate(expression, arg)


def map_array(page) -> np.ndarray:
    return np.array(js(page, "() => Array.from(dd.mapBytes())"), dtype=np.uint8).reshape(H, W)


def view_pixels(page, x: int, y: int, w: int, h: int) -> np.ndarray:
    """The view canvas's backing pixels in a rectangle, RGBA (h, w, 4)."""
    data = js(page, """([x, y, w, h]) => {
        const bytes = document.querySelector('#dd-view').getContext('2d').getImageData(x, y, w, h).data;
        let text = '';
        for (let i = 0; i < bytes.length; i += 8192) {
            text += String.fromCharCode(...bytes.subarray(i, i + 8192));
        }
        return btoa(text);
    }""", [x, y, w, h])
    return np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(h, w, 4)


def capsule(x0: float, y0: float, x1: float, y1: float, radius: float) -> np.ndarray:
    """Pixels whose centre lies strictly within `radius` of the segment (a hard brush's footprint)."""
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / length2, 0, 1) if length2 else 0.0
    return np.hypot(xs - (x0 + t * dx), ys - (y0 + t * dy)) < radius


class Stage:
    """The mounted canvas with a 96×64 image at a known zoom and offset."""

    def __init__(self, page, zoom: float = 1.0):
        self.page = page
        assert js(page, "(u) => dd.setImage(u)", png_url(test_image())) == {"width": W, "height": H}
        js(page, "(z) => { dd.setZoom(z); dd.render(); }", zoom)
        self.refresh()

    def refresh(self):
        view = js(self.page, "() => dd.view()")
        box = self.page.locator("#dd-view").bounding_box()
        self.zoom, self.ox, self.oy = view["zoom"], view["offsetX"], view["offsetY"]
        self.left, self.top = box["x"], box["y"]

    def at(self, x: float, y: float) -> tuple[float, float]:
        """Page coordinates of image point (x, y)."""
        return self.left + self.ox + x * self.zoom, self.top + self.oy + y * self.zoom

    def drag(self, *points, steps: int = 6):
        mouse = self.page.mouse
        mouse.move(*self.at(*points[0]))
        mouse.down()
        for point in points[1:]:
            mouse.move(*self.at(*point), steps=steps)
        mouse.up()

    def click(self, x: float, y: float):
        self.drag((x, y))


@pytest.fixture
def canvas(page):
    page.set_content(PAGE)
    for text in SCRIPT_TEXTS:  # one classic script per file, in load order
        page.add_script_tag(content=text)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    js(page, MOUNT, RAMP)
    yield page
    assert not errors, errors


@pytest.fixture
def stage(canvas):
    return Stage(canvas)


def brush(page, **settings):
    return js(page, "(s) => dd.setBrush(s)", settings)


# ------------------------------------------------------------------ pure functions

def test_template_files_have_no_template_syntax():
    for text in (HTML, CSS):
        assert "${" not in text and "{{" not in text and "`" not in text and "\\" not in text
    for name, text in zip(SCRIPTS, SCRIPT_TEXTS):
        assert "${" not in text and "{{" not in text, name
        assert text.startswith("// "), name  # each says its job first
    assert HTML.lstrip().startswith('<div class="dd-canvas">')


def test_percent_bytes_and_combine(canvas):
    result = js(canvas, """() => {
        const S = StrengthCanvas, out = {};
        out.bytes = [0, 40, 50, 80, 100].map(S.percentToByte);
        out.percents = [0, 102, 128, 204, 255].map(S.byteToPercent);
        out.flat = S.MODES.map(m => S.combine(102, 102, 1, m));
        out.full = S.MODES.map(m => [S.combine(50, 200, 1, m), S.combine(200, 50, 1, m)]);
        out.half = S.MODES.map(m => [S.combine(100, 200, 0.5, m), S.combine(200, 100, 0.5, m)]);
        out.none = S.MODES.map(m => S.combine(77, 200, 0, m));
        const grid = [];
        for (let b = 0; b < 256; b += 15) for (let v = 0; v < 256; v += 15) for (const c of [0, 0.3, 0.7, 1])
            grid.push([b, v, c, S.combine(b, v, c, 'max'), S.combine(b, v, c, 'min'),
                       S.combine(b, v, c, 'replace')]);
        out.grid = grid;
        try { S.combine(1, 2, 1, 'add'); out.bad = 'accepted'; } catch (e) { out.bad = 'rejected'; }
        return out;
    }""")
    assert result["bytes"] == [0, 102, 128, 204, 255]
    assert 102 / 255 == pytest.approx(0.4, abs=1e-12)
    assert result["percents"] == [0, 40, 50, 80, 100]
    assert result["flat"] == [102, 102, 102]  # 40 % over 40 % is 40 % in every mode
    assert result["full"] == [[200, 50], [200, 200], [50, 50]]  # replace, max, min
    assert result["half"] == [[150, 150], [150, 200], [100, 150]]
    assert result["none"] == [77, 77, 77]
    grid = np.array(result["grid"], dtype=float)
    before, value, c, high, low, replaced = grid.T
    assert (high >= before).all() and (high <= np.maximum(before, value)).all()  # max never lowers
    assert (low <= before).all() and (low >= np.minimum(before, value)).all()  # min never raises
    np.testing.assert_array_equal(replaced, np.floor(before + (value - before) * c + 0.5))
    assert result["bad"] == "rejected"


def test_coverage_edges(canvas):
    result = js(canvas, """() => {
        const c = StrengthCanvas.coverage;
        const soft = []; for (let d = 0; d <= 10; d += 0.5) soft.push(c(d, 10, 0));
        return {hard: [c(0, 10, 1), c(9.99, 10, 1), c(10, 10, 1), c(10.01, 10, 1), c(25, 10, 1)],
                half: [c(4.9, 10, 0.5), c(5, 10, 0.5), c(7.5, 10, 0.5), c(9.99, 10, 0.5), c(10, 10, 0.5)],
                soft, zero: c(0, 0, 1)};
    }""")
    assert result["hard"] == [1, 1, 0, 0, 0]
    assert result["half"][:2] == [1, 1] and result["half"][2] == pytest.approx(0.5)
    assert 0 < result["half"][3] < 0.01 and result["half"][4] == 0
    soft = result["soft"]
    assert soft[0] == 1 and soft[-1] == 0
    assert all(0 < v < 1 for v in soft[1:-1])
    assert all(a > b for a, b in zip(soft, soft[1:]))  # strictly falling from the centre
    assert result["zero"] == 0


def test_paint_segment_takes_the_max(canvas):
    result = js(canvas, """() => {
        const S = StrengthCanvas, w = 40, h = 30;
        const once = new Float32Array(w * h), twice = new Float32Array(w * h);
        const rect = S.paintSegment(once, w, h, 10, 12, 25, 15, 6, 0.3);
        S.paintSegment(twice, w, h, 10, 12, 25, 15, 6, 0.3);
        S.paintSegment(twice, w, h, 10, 12, 25, 15, 6, 0.3);
        S.paintSegment(twice, w, h, 25, 15, 10, 12, 6, 0.3);
        const low = new Float32Array(w * h).fill(0.2), high = new Float32Array(w * h).fill(0.9);
        S.paintSegment(low, w, h, 10, 12, 25, 15, 6, 0.3);
        S.paintSegment(high, w, h, 10, 12, 25, 15, 6, 0.3);
        const edge = S.paintSegment(new Float32Array(w * h), w, h, 2, 3, 2, 3, 6, 1);
        const outside = S.paintSegment(new Float32Array(w * h), w, h, -50, -50, -40, -40, 5, 1);
        return {rect, edge, outside, once: Array.from(once), twice: Array.from(twice),
                low: Array.from(low), high: Array.from(high)};
    }""")
    once = np.array(result["once"]).reshape(30, 40)
    assert result["twice"] == result["once"]  # repainting and painting back never accumulate
    np.testing.assert_allclose(result["low"], np.maximum(once.ravel(), 0.2), rtol=0, atol=1e-7)
    np.testing.assert_allclose(result["high"], np.maximum(once.ravel(), 0.9), rtol=0, atol=1e-7)
    x, y, w, h = (result["rect"][k] for k in "xywh")
    assert (x, y, x + w, y + h) == (4, 6, 31, 21)  # the segment's box grown by the radius
    outside_rect = np.ones_like(once, dtype=bool)
    outside_rect[y:y + h, x:x + w] = False
    assert (once[outside_rect] == 0).all() and once.max() == 1 and 0 < once[once > 0].min() < 1
    assert result["edge"] == {"x": 0, "y": 0, "w": 8, "h": 9}  # clipped to the image
    assert result["outside"]["w"] == 0 or result["outside"]["h"] == 0


def test_apply_stroke_uses_the_map_before_the_stroke(canvas):
    result = js(canvas, """() => {
        const S = StrengthCanvas, w = 20, h = 10;
        const before = new Uint8Array(w * h).fill(30), cov = new Float32Array(w * h), target = before.slice();
        const r1 = S.paintSegment(cov, w, h, 5, 5, 10, 5, 4, 0);  // a soft brush, replace mode
        S.applyStroke(target, before, cov, w, 200, 'replace', r1);
        const first = Array.from(target);
        const r2 = S.paintSegment(cov, w, h, 5, 5, 10, 5, 4, 0);  // the pointer passes again
        S.applyStroke(target, before, cov, w, 200, 'replace', r2);
        return {first, second: Array.from(target), cov: Array.from(cov)};
    }""")
    assert result["first"] == result["second"]
    cov = np.array(result["cov"])
    assert ((cov > 0) & (cov < 1)).sum() > 10
    np.testing.assert_array_equal(result["second"], np.floor(30 + 170 * cov + 0.5))


def test_flood_fill_region(canvas):
    # A 12×8 map: a wall of 200 at x = 5, a closed box of 50 on the right.
    grid = np.zeros((8, 12), dtype=np.uint8)
    grid[:, 5] = 200
    grid[2:6, 8:11] = 50
    result = js(canvas, """(g) => {
        const S = StrengthCanvas, a = Uint8Array.from(g), b = Uint8Array.from(g), c = Uint8Array.from(g);
        const left = S.floodFill(a, 12, 8, 1, 1, 102);
        const box = S.floodFill(b, 12, 8, 9.5, 3.2, 255);
        const same = S.floodFill(c, 12, 8, 0, 0, 0);
        const off = S.floodFill(c, 12, 8, 12, 0, 9);
        return {a: Array.from(a), b: Array.from(b), left, box, same, off};
    }""", grid.ravel().tolist())
    a = np.array(result["a"]).reshape(8, 12)
    expected = grid.copy()
    expected[:, :5] = 102
    np.testing.assert_array_equal(a, expected)
    assert result["left"] == {"x": 0, "y": 0, "w": 5, "h": 8}
    b = np.array(result["b"]).reshape(8, 12)
    expected = grid.copy()
    expected[2:6, 8:11] = 255
    np.testing.assert_array_equal(b, expected)
    assert result["box"] == {"x": 8, "y": 2, "w": 3, "h": 4}
    assert result["same"] is None and result["off"] is None


def test_gradients_end_values_and_monotonic(canvas):
    result = js(canvas, """(ramp) => {
        const S = StrengthCanvas;
        return {lin: Array.from(S.linearGradient(40, 10, 10, 5, 30, 5, 255, 0)),
                diag: Array.from(S.linearGradient(30, 30, 5, 5, 25, 25, 20, 220)),
                rad: Array.from(S.radialGradient(40, 40, 20.5, 20.5, 15, 204, 51)),
                ramp: [S.rampColour(ramp, 0), S.rampColour(ramp, 102), S.rampColour(ramp, 255)]};
    }""", RAMP)
    lin = np.array(result["lin"]).reshape(10, 40)
    assert (lin[:, :10] == 255).all() and (lin[:, 30:] == 0).all()  # at/before start, at/after end
    assert (np.diff(lin, axis=1) <= 0).all() and (np.diff(lin[:, 9:31], axis=1) < 0).all()
    assert (lin == lin[0]).all()  # constant across the drag direction
    np.testing.assert_allclose(lin[0, 20], 255 * (1 - 10.5 / 20), atol=1e-3)
    diag = np.array(result["diag"]).reshape(30, 30)
    assert diag[0, 0] == 20 and diag[29, 29] == 220
    assert (np.diff(np.diag(diag)) >= 0).all()
    rad = np.array(result["rad"]).reshape(40, 40)
    assert rad[20, 20] == 204 and rad[0, 0] == 51 and rad[20, 36] == 51
    assert (np.diff(rad[20, 20:]) <= 0).all() and (np.diff(rad[20, :21]) >= 0).all()
    assert result["ramp"] == [RAMP[0], RAMP[102], RAMP[255]]


# ------------------------------------------------------------------ the component

def test_gradio_style_mount_and_controls(page):
    """Mounted the way Gradio runs js_on_load (the file's text as a function body), then the controls."""
    page.set_content(PAGE)
    body = JS + "\nwindow.ddCanvas = StrengthCanvas.mount(element.querySelector('.dd-canvas'), props);\n"
    page.evaluate("""([body, ramp]) => {
        const element = document.body;
        Function('element', 'trigger', 'props', body)(element, () => {}, {ramp});
    }""", [body, RAMP])
    assert page.evaluate("() => typeof window.StrengthCanvas") == "undefined"  # stays inside the function
    assert page.evaluate("() => typeof window.ddCanvas.setImage") == "function"
    hint = page.locator(".dd-hint")
    assert hint.is_visible() and "Drop, paste or choose an image" in hint.inner_text()
    assert page.locator("#dd-status").inner_text() == "No image"
    page.evaluate("() => { window.dd = window.ddCanvas; }")
    st = Stage(page)
    assert not hint.is_visible()
    assert page.locator("#dd-status").inner_text().startswith(f"{W}×{H} · zoom 100 %")
    page.locator("#dd-value").fill("40")
    assert page.locator("#dd-value-out").inner_text() == "40 %"
    page.locator("#dd-mode").select_option("min")
    page.locator("#dd-tool-eraser").click()
    assert js(page, "() => dd.brush()") == {"value": 40, "size": 40, "hardness": 50, "mode": "min"}
    assert "active" in page.locator("#dd-tool-eraser").get_attribute("class")
    assert "active" not in page.locator("#dd-tool-brush").get_attribute("class")
    page.mouse.move(*st.at(20, 20))  # hover the stage: the keys apply
    page.keyboard.press("b")
    assert "active" in page.locator("#dd-tool-brush").get_attribute("class")
    page.keyboard.press("g")
    assert "active" in page.locator("#dd-tool-fill").get_attribute("class")
    page.keyboard.press("]")
    assert js(page, "() => dd.brush().size") == 44
    page.locator("#dd-show").select_option("map")
    assert js(page, "() => dd.view().show") == "map"
    for name in ("brush", "eraser", "fill", "linear", "radial", "pan"):
        assert page.locator(f"#dd-tool-{name}").get_attribute("title")
    legend = np.array(js(page, """() => { const c = document.querySelector('#dd-legend');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, 1).data); }"""), dtype=np.uint8)
    legend = legend.reshape(-1, 4)[:, :3]
    assert legend[0].tolist() == RAMP[0] and legend[-1].tolist() == RAMP[255]
    assert {tuple(c) for c in legend.tolist()} <= {tuple(c) for c in RAMP}  # only the ramp's colours


def test_overlapping_strokes_stay_flat(stage):
    page = stage.page
    brush(page, value=40, size=10, hardness=100, mode="max")
    stage.drag((10, 20), (70, 20), steps=1)  # one fast move: the segment between is painted, no gaps
    stage.drag((40, 4), (40, 56))
    stage.drag((12, 20), (68, 20), (12, 20))  # back and forth over the first stroke
    m = map_array(page)
    painted = capsule(10, 20, 70, 20, 5) | capsule(40, 4, 40, 56, 5)
    np.testing.assert_array_equal(m, np.where(painted, 102, 0))
    assert m[20, 40] == 102 and m[20, 15] == 102 and m[50, 40] == 102 and m[60, 90] == 0


def test_max_and_min_modes(stage):
    page = stage.page
    brush(page, value=40, size=10, hardness=100, mode="max")
    stage.drag((10, 20), (70, 20))
    brush(page, value=80)
    stage.drag((40, 4), (40, 56))
    first, second = capsule(10, 20, 70, 20, 5), capsule(40, 4, 40, 56, 5)
    expected = np.zeros((H, W), dtype=np.uint8)
    expected[first] = 102
    expected[second] = 204
    m = map_array(page)
    np.testing.assert_array_equal(m, expected)
    assert m[20, 40] == 204  # the overlap is raised to 80 %
    brush(page, value=40)  # max never lowers
    stage.drag((40, 30), (40, 50))
    np.testing.assert_array_equal(map_array(page), expected)
    brush(page, mode="min")  # min lowers to 40 % but never raises the 0 around
    stage.drag((30, 40), (50, 40))
    third = capsule(30, 40, 50, 40, 5)
    expected[third & (expected > 102)] = 102
    np.testing.assert_array_equal(map_array(page), expected)


def test_eraser(stage):
    page = stage.page
    brush(page, value=80, size=16, hardness=100)
    stage.drag((10, 30), (80, 30))
    page.locator("#dd-tool-eraser").click()
    brush(page, size=8)
    stage.drag((40, 10), (40, 50))
    expected = np.where(capsule(10, 30, 80, 30, 8) & ~capsule(40, 10, 40, 50, 4), 204, 0)
    np.testing.assert_array_equal(map_array(page), expected)


def test_soft_brush_edges(stage):
    page = stage.page
    brush(page, value=40, size=30, hardness=0)
    stage.click(48, 32)
    m = map_array(page).astype(int)
    assert m.max() <= 102 and m[31:33, 47:49].min() >= 95  # never above the value
    between = (m > 0) & (m < 102)
    assert between.sum() > 100  # a soft edge of intermediate strengths
    assert (m[~capsule(48, 32, 48, 32, 15)] == 0).all()
    row = m[32, 48:]
    assert (np.diff(row) <= 0).all()  # falls from the centre outwards
    brush(page, hardness=100)
    stage.click(48, 32)
    m2 = map_array(page)
    assert m2.max() == 102 and (m2 >= m).all()
    # Soft strokes in replace mode over existing strength: going back and forth equals one pass.
    brush(page, value=90, size=20, hardness=0, mode="replace")
    stage.drag((10, 40), (80, 40))
    once = map_array(page)
    js(page, "() => dd.undo()")
    stage.drag((10, 40), (80, 40), (10, 40), (80, 40))
    np.testing.assert_array_equal(map_array(page), once)
    assert ((once > 102) & (once < 229)).sum() > 50


def test_fill_tool(stage):
    page = stage.page
    brush(page, value=80, size=6, hardness=100)
    stage.drag((48, -10), (48, 80))  # a wall across the whole image
    wall = capsule(48, -10, 48, 80, 3)
    brush(page, value=40)
    page.locator("#dd-tool-fill").click()
    stage.click(10.5, 10.5)
    expected = np.zeros((H, W), dtype=np.uint8)
    expected[wall] = 204
    expected[:, :45] = 102
    np.testing.assert_array_equal(map_array(page), expected)
    stage.click(10.5, 10.5)  # 40 % over 40 %: nothing changes, no undo step
    js(page, "() => dd.undo()")
    assert (map_array(page) != 102).all()


def test_linear_and_radial_gradient_by_dragging(stage):
    page = stage.page
    brush(page, value=100, mode="replace")
    js(page, "() => dd.setGradientEnd(0)")
    page.locator("#dd-tool-linear").click()
    stage.drag((10, 32), (86, 32))
    m = map_array(page).astype(int)
    assert (m == m[0]).all()
    assert (m[:, :10] == 255).all() and (m[:, 86:] == 0).all()
    assert (np.diff(m[0]) <= 0).all()
    xs = np.arange(W) + 0.5
    expected = 255 * (1 - np.clip((xs - 10) / 76, 0, 1))
    assert np.abs(m[0] - expected).max() <= 1
    brush(page, value=60, mode="max")
    js(page, "() => dd.setGradientEnd(20)")
    page.locator("#dd-tool-radial").click()
    stage.drag((70, 32), (70, 52))
    m2 = map_array(page).astype(int)
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    radial = 153 + (51 - 153) * np.clip(np.hypot(xs - 70, ys - 32) / 20, 0, 1)
    assert np.abs(m2 - np.maximum(m, radial)).max() <= 1  # laid on in max mode
    assert abs(m2[32, 70] - 153) <= 5 and (m2 >= m).all()


def test_undo_redo_and_on_change(stage):
    page = stage.page
    js(page, "() => { window.changes = 0; dd.onChange = () => { window.changes += 1; }; }")
    assert js(page, "() => [dd.canUndo(), dd.canRedo()]") == [False, False]
    brush(page, value=40, size=10, hardness=60)
    stage.drag((10, 20), (70, 25))
    one = map_array(page)
    brush(page, value=90, mode="replace")
    stage.drag((30, 5), (35, 60))
    two = map_array(page)
    js(page, "() => dd.fillAll()")
    assert (map_array(page) == 230).all()
    js(page, "() => dd.clear()")
    assert (map_array(page) == 0).all()
    assert js(page, "() => window.changes") == 4
    for expected in (np.full((H, W), 230), two, one, np.zeros((H, W))):
        assert js(page, "() => dd.undo()") is True
        np.testing.assert_array_equal(map_array(page), expected)
    assert js(page, "() => [dd.canUndo(), dd.canRedo(), dd.undo()]") == [False, True, False]
    page.locator("#dd-redo").click()
    np.testing.assert_array_equal(map_array(page), one)
    stage.page.mouse.move(*stage.at(50, 50))  # hovering: keyboard shortcuts
    page.keyboard.press("Control+Shift+Z")
    np.testing.assert_array_equal(map_array(page), two)
    page.keyboard.press("Control+z")
    np.testing.assert_array_equal(map_array(page), one)
    page.keyboard.press("Control+y")
    np.testing.assert_array_equal(map_array(page), two)
    assert js(page, "() => window.changes") == 4 + 4 + 1 + 3
    js(page, "() => dd.undo()")
    stage.drag((80, 5), (80, 60))  # a new change drops the redo steps
    assert js(page, "() => dd.canRedo()") is False
    assert page.locator("#dd-redo").is_disabled() and page.locator("#dd-undo").is_enabled()
    js(page, "() => { for (let i = 0; i < 60; i++) { dd.setBrush({value: 10 + i % 2}); dd.fillAll(); } }")
    assert js(page, "() => { let n = 0; while (dd.undo()) n += 1; return n; }") == 50


def test_zoom_and_pan_then_paint_lands_on_the_right_pixel(stage):
    page = stage.page
    brush(page, value=100, size=3, hardness=100)
    js(page, "() => { const v = dd.view(); dd.setZoom(4, v.offsetX + 30, v.offsetY + 20); }")
    js(page, "() => dd.panBy(-50, 30)")
    stage.refresh()
    assert stage.zoom == 4
    before = map_array(page)
    stage.click(20.5, 10.5)  # the centre of pixel (20, 10)
    m = map_array(page)
    ys, xs = np.nonzero(m)
    assert len(xs) == 9 and (xs.mean(), ys.mean()) == (20, 10)
    assert (before == 0).all()
    view = js(page, "() => dd.view()")
    # Pan with the pan tool, then with Space held, then with the middle button: the map never changes.
    page.locator("#dd-tool-pan").click()
    stage.drag((30, 30), (20, 25))
    page.locator("#dd-tool-brush").click()
    page.mouse.move(*stage.at(30, 30))
    page.keyboard.down("Space")
    page.mouse.down()
    page.mouse.move(*stage.at(35, 20), steps=3)
    page.mouse.up()
    page.keyboard.up("Space")
    start = stage.at(30, 30)
    page.mouse.move(*start)
    page.mouse.down(button="middle")
    page.mouse.move(start[0] + 13, start[1] - 7, steps=3)
    page.mouse.up(button="middle")
    moved = js(page, "() => dd.view()")
    zoom = view["zoom"]
    assert moved["zoom"] == zoom
    dx = moved["offsetX"] - view["offsetX"]
    dy = moved["offsetY"] - view["offsetY"]
    assert abs(dx - (-10 + 5) * zoom - 13) <= 2 and abs(dy - (-5 - 10) * zoom + 7) <= 2
    np.testing.assert_array_equal(map_array(page), m)
    stage.refresh()
    stage.click(70.5, 50.5)
    ys, xs = np.nonzero(map_array(page) != m)
    assert len(xs) == 9 and (xs.mean(), ys.mean()) == (70, 50)


def test_wheel_zooms_about_the_cursor(stage):
    page = stage.page
    js(page, "() => { dd.setZoom(2); dd.render(); }")
    stage.refresh()
    point = stage.at(30, 20)
    page.mouse.move(*point)
    page.mouse.wheel(0, -300)
    page.wait_for_function("() => dd.view().zoom > 2")
    stage.refresh()
    after = stage.at(30, 20)
    assert abs(after[0] - point[0]) <= 1 and abs(after[1] - point[1]) <= 1
    assert stage.zoom > 2
    js(page, "() => dd.fit()")
    view = js(page, "() => dd.view()")
    box = page.locator("#dd-view").bounding_box()
    assert view["zoom"] == pytest.approx(min(box["width"] / W, box["height"] / H), rel=1e-6)


def test_export_and_set_map_round_trip(stage):
    page = stage.page
    brush(page, value=70, size=20, hardness=30)
    stage.drag((5, 5), (90, 60))
    exported = decode_url(js(page, "() => dd.exportMap()"))
    m = map_array(page)
    assert exported.shape == (H, W, 4) and m.max() == 179
    for channel in range(3):
        np.testing.assert_array_equal(exported[..., channel], m)
    assert (exported[..., 3] == 255).all()

    grey = np.random.default_rng(3).integers(0, 256, size=(H, W), dtype=np.uint8)
    js(page, "() => { window.changes = 0; dd.onChange = () => { window.changes += 1; }; }")
    js(page, "(u) => dd.setMap(u)", png_url(Image.fromarray(grey, "L")))
    np.testing.assert_array_equal(map_array(page), grey)
    np.testing.assert_array_equal(decode_url(js(page, "() => dd.exportMap()"))[..., 0], grey)
    assert js(page, "() => window.changes") == 1
    js(page, "() => dd.undo()")
    np.testing.assert_array_equal(map_array(page), m)

    wrong = png_url(Image.fromarray(np.zeros((H, W + 1), dtype=np.uint8), "L"))
    error = js(page, "(u) => dd.setMap(u).then(() => 'resolved', (e) => e instanceof Error && e.message)",
               wrong)
    assert error and "97×64" in error and "96×64" in error
    np.testing.assert_array_equal(map_array(page), m)


def test_map_view_shows_the_ramp_colours(stage):
    page = stage.page
    grey = np.random.default_rng(5).integers(0, 256, size=(H, W), dtype=np.uint8)
    js(page, "(u) => dd.setMap(u)", png_url(Image.fromarray(grey, "L")))
    js(page, "() => dd.setView({show: 'map'})")
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    view = js(page, "() => dd.view()")
    assert view["zoom"] == 1 and view["show"] == "map"
    width, height, css_width, css_height = js(page, """() => { const c = document.querySelector('#dd-view');
        return [c.width, c.height, c.clientWidth, c.clientHeight]; }""")
    assert (width, height) == (css_width, css_height) and 500 <= css_height <= 540
    shown = view_pixels(page, view["offsetX"], view["offsetY"], W, H)
    np.testing.assert_array_equal(shown[..., :3], RAMP_NP[grey])
    assert (shown[..., 3] == 255).all()
    # Zoomed in, every map pixel is a crisp block of its colour.
    js(page, "() => { const v = dd.view(); dd.setZoom(3, v.offsetX, v.offsetY); dd.render(); }")
    view3 = js(page, "() => dd.view()")
    assert view3["zoom"] == 3 and (view3["offsetX"], view3["offsetY"]) == (view["offsetX"], view["offsetY"])
    blocks = view_pixels(page, view["offsetX"], view["offsetY"], 3 * W, 3 * H)
    np.testing.assert_array_equal(blocks[..., :3], RAMP_NP[grey.repeat(3, axis=0).repeat(3, axis=1)])
    js(page, "() => { dd.setZoom(1, dd.view().offsetX, dd.view().offsetY); }")
    # The overlay blends the same colours over the image; "image" shows the image alone.
    js(page, "() => { dd.setView({show: 'image'}); dd.render(); }")
    image_only = view_pixels(page, view["offsetX"], view["offsetY"], W, H)
    np.testing.assert_array_equal(image_only[..., :3], np.array(test_image()))


def test_pasted_and_dropped_images_go_to_on_image_file(stage):
    page = stage.page
    url = png_url(test_image(20, 10))
    result = js(page, """async (url) => {
        const got = [];
        const blob = await (await fetch(url)).blob();
        const make = (name, type, data) => {
            const dt = new DataTransfer();
            dt.items.add(new File([data], name, {type}));
            return dt;
        };
        const paste = (dt) => document.dispatchEvent(
            new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
        const drop = (dt) => document.querySelector('.dd-stage').dispatchEvent(
            new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
        paste(make('nobody.png', 'image/png', blob));  // onImageFile is null: nothing happens
        const sizeBefore = dd.size();
        dd.onImageFile = (file) => got.push([file.name, file.type, file.size]);
        paste(make('pasted.png', 'image/png', blob));
        paste(make('notes.txt', 'text/plain', 'hello'));
        drop(make('dropped.png', 'image/png', blob));
        drop(make('notes.txt', 'text/plain', 'hello'));
        return {got, size: blob.size, sizeBefore, sizeAfter: dd.size()};
    }""", url)
    size = result["size"]
    assert result["got"] == [["pasted.png", "image/png", size], ["dropped.png", "image/png", size]]
    assert result["sizeBefore"] == result["sizeAfter"] == {"width": W, "height": H}  # not loaded by itself


def test_screenshot_of_a_painted_map(stage, screenshot):
    page = stage.page
    js(page, "() => dd.fit()")
    stage.refresh()
    brush(page, value=100, size=14, hardness=70)
    stage.drag((10, 50), (30, 20), (60, 40), (86, 12))
    brush(page, value=40, size=24, hardness=0)
    stage.drag((20, 10), (80, 55))
    page.mouse.move(*stage.at(50, 30))
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    status = page.locator("#dd-status").inner_text()
    assert status.startswith(f"{W}×{H} · zoom ") and "strength here" in status
    path = screenshot("painted")
    assert Path(path).stat().st_size > 5000
