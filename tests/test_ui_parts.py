"""The functions behind the page's controls, without a browser: the map on the wire, uploads, map tools,
settings, results and history, the model shelf, the HTTP endpoint's signature and the exposure warning."""

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from diffdiff.errors import DiffdiffError
from diffdiff.maps import blur, detail_map, feather, grow, invert, levels, load_depth_estimator, shrink
from diffdiff.ui import results
from diffdiff.ui.canvas import map_from_data_url, map_to_data_url, ramp_table
from diffdiff.ui.map_tools import LAY_MODES, MAP_TOOLS, apply_map_tool
from diffdiff.ui.models import ModelShelf
from diffdiff.ui.server import exposure_warning
from diffdiff.ui.settings import FAMILY_SETTINGS, SETTINGS, control_values, request_keywords
from diffdiff.ui.uploads import UploadError, read_upload


def _png_bytes(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _data_url(array) -> str:
    return "data:image/png;base64," + base64.b64encode(_png_bytes(array)).decode()


def test_the_map_on_the_wire_is_bytes_over_255_both_ways():
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    received = map_from_data_url(_data_url(grey), (16, 16))
    assert received.dtype == np.float32 and np.array_equal(np.round(received * 255), grey)
    assert received[6, 6] == np.float32(102 / 255) and abs(received[6, 6] - 0.4) < 1e-7  # the 40 % brush
    assert np.array_equal(map_from_data_url(map_to_data_url(received), (16, 16)), received)
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])  # what a canvas's toDataURL holds
    assert np.array_equal(map_from_data_url(_data_url(rgba), (16, 16)), received)


@pytest.mark.parametrize("text, message", [
    (None, "no strength map"), ("", "no strength map"), ("data:image/png;base64,@@@", "unreadable"),
    ("data:image/png;base64," + base64.b64encode(b"not a png").decode(), "unreadable"),
])
def test_a_bad_map_from_the_page_is_one_clear_error(text, message):
    with pytest.raises(DiffdiffError, match=message):
        map_from_data_url(text, (16, 16))


def test_a_map_of_another_size_is_refused():
    with pytest.raises(DiffdiffError, match="8x16 but the image is 16x16"):
        map_from_data_url(_data_url(np.zeros((16, 8), np.uint8)), (16, 16))


def test_the_canvas_ramp_is_the_preview_ramp():
    from diffdiff.maps import colour_ramp

    table = ramp_table()
    assert len(table) == 256
    for byte in (0, 64, 102, 128, 255):
        assert table[byte] == colour_ramp(np.float64(byte / 255)).tolist()


def _bomb(path, width=100_000, height=100_000):
    """A 1×1 PNG whose header claims width × height pixels."""
    data = bytearray(_png_bytes(np.zeros((1, 1, 3), np.uint8)))
    ihdr = 8 + 8  # signature, then length and type
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:ihdr + 13])) & 0xFFFFFFFF
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def test_uploads_that_are_not_usable_images_are_refused_in_one_line(tmp_path):
    garbage = tmp_path / "photo.png"
    garbage.write_bytes(b"this is not an image")
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 48), "red").save(good)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:60])
    bomb = _bomb(tmp_path / "bomb.png")
    for path, message in ((garbage, "photo.png"), (truncated, "cut.png"), (bomb, "bomb.png.*pixel limit")):
        with pytest.raises(UploadError, match=message) as caught:
            read_upload(path)
        assert "\n" not in str(caught.value) and str(tmp_path) not in str(caught.value)
    with pytest.raises(UploadError, match="no image"):
        read_upload(None)
    with pytest.raises(UploadError, match="1,000-pixel limit"):
        read_upload(good, max_pixels=1000)
    assert read_upload(good).size == (64, 48)


def _square_map():
    strength = np.zeros((64, 64), np.float32)
    strength[20:40, 24:44] = 0.8
    return strength


@pytest.mark.parametrize("name, values, expected", [
    ("invert", {}, lambda m, image: invert(m)),
    ("blur", {"sigma": 3}, lambda m, image: blur(m, 3)),
    ("grow", {"pixels": 4}, lambda m, image: grow(m, 4)),
    ("shrink", {"pixels": 4}, lambda m, image: shrink(m, 4)),
    ("feather", {"radius": 6}, lambda m, image: feather(m, 6)),
    ("levels", {"black": 0.1, "white": 0.7, "gamma": 2.0}, lambda m, image: levels(m, 0.1, 0.7, 2.0)),
    ("detail", {"scale": 4}, lambda m, image: detail_map(image, 4)),
    ("detail", {"scale": 4, "lay": "max"}, lambda m, image: np.maximum(m, detail_map(image, 4))),
])
def test_each_map_tool_is_the_maps_function_on_the_current_map(name, values, expected):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    current = _square_map()
    made = apply_map_tool(name, current, image, values)
    assert made.shape == current.shape and made.dtype == np.float32
    assert np.allclose(made, expected(current, image), atol=1e-6)
    assert not np.array_equal(made, current)


def test_map_tool_errors_name_the_problem():
    image = Image.new("RGB", (64, 64))
    with pytest.raises(DiffdiffError, match="unknown map tool 'sharpen'"):
        apply_map_tool("sharpen", _square_map(), image)
    with pytest.raises(DiffdiffError, match="takes no radius"):
        apply_map_tool("invert", _square_map(), image, {"radius": 3})
    with pytest.raises(DiffdiffError, match="unknown way to lay"):
        apply_map_tool("detail", _square_map(), image, {"lay": "sideways"})
    with pytest.raises(DiffdiffError, match="--depth-model"):
        apply_map_tool("depth", _square_map(), image)
    with pytest.raises(DiffdiffError, match="label image"):
        apply_map_tool("regions", _square_map(), image)
    assert set(LAY_MODES) >= {"replace", "max", "min", "multiply"}
    assert set(MAP_TOOLS) == {"invert", "blur", "grow", "shrink", "feather", "levels", "detail", "depth",
                              "regions"}


def test_regions_and_depth_make_maps_from_the_image(tiny_depth_model):
    image = Image.new("RGB", (64, 64), (90, 120, 150))
    labels = Image.new("RGB", (64, 64), (255, 255, 255))
    labels.paste((0, 0, 255), (0, 0, 32, 64))
    made = apply_map_tool("regions", _square_map(), image,
                          {"labels": labels, "table": "#ffffff=0.25, #0000ff=1"})
    assert np.allclose(made[:, :32], 1.0) and np.allclose(made[:, 32:], 0.25)
    with pytest.raises(DiffdiffError, match="label image is 32x32"):
        apply_map_tool("regions", _square_map(), image, {"labels": labels.resize((32, 32))})
    estimator = load_depth_estimator(tiny_depth_model)
    near = apply_map_tool("depth", _square_map(), image, {"lay": "replace"}, estimator=estimator)
    far = apply_map_tool("depth", _square_map(), image, {"far": True}, estimator=estimator)
    assert near.shape == (64, 64) and np.allclose(far, 1.0 - near, atol=1e-5)


def test_settings_make_request_keywords_and_history_restores_them():
    from diffdiff.request import EditRequest

    values = [s.default for s in SETTINGS]
    keywords = request_keywords(values)
    assert keywords["tile"] == "auto" and keywords["steps"] == 20 and keywords["composite"] is True
    changed = request_keywords({**dict(zip(keywords, values)), "tile": "512", "steps": 7.0, "seed": 12.0})
    assert changed["steps"] == 7 and changed["seed"] == 12
    with pytest.raises(DiffdiffError, match="Steps must be a whole number"):
        request_keywords({"steps": 7.5})
    request = EditRequest.build(Image.new("RGB", (64, 64)), 0.5, "x", **changed)
    assert request.tiling.tile == 512 and request.sampling.steps == 7 and request.sampling.seed == 12
    assert control_values(request.record()) == [str(changed[s.keyword]) if s.kind == "choice"
                                                 else changed[s.keyword] for s in SETTINGS]


class _Outcome:
    def __init__(self, paths, seed=5):
        self.paths, self.map_path, self.input_path = paths, "m.png", "in.png"
        self.settings, self.seconds, self.model = {"prompt": "p", "seed": seed, "steps": 3}, 1.234, "demo"


def test_variations_keep_discard_and_history():
    state = results.add_outcome(results.new_state(), _Outcome(["a.png", "b.png", "c.png"]))
    assert results.gallery(state) == [("a.png", "seed 5"), ("b.png", "seed 6"), ("c.png", "seed 7")]
    assert results.selected(state)["path"] == "a.png"
    state = results.keep(results.select(state, 2))
    state = results.keep(state)
    assert state["kept"] == ["c.png"]
    state = results.discard(state)
    assert [v["path"] for v in state["variations"]] == ["a.png", "b.png"] and state["kept"] == []
    assert results.selected(state)["path"] == "b.png"
    state = results.add_outcome(state, _Outcome(["d.png"], seed=9))
    rows = results.history_rows(state)
    assert [row[0] for row in rows] == [2, 1]
    assert rows[0][6] == 9 and rows[0][2] == "demo" and rows[0][8] == 1.2
    assert results.history_entry(state, 1)["settings"]["seed"] == 5
    assert results.history_entry(state, 5) is None


def test_the_model_shelf_offers_names_and_loads_each_once(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("b.safetensors", "a.safetensors"):
        (folder / name).write_bytes(b"x")
    (folder / "notes.txt").write_text("not a model")
    (folder / "pipeline").mkdir()
    (folder / "pipeline" / "model_index.json").write_text("{}")
    loads = []
    shelf = ModelShelf(folder / "b.safetensors", folder,
                       loader=lambda path, **options: loads.append(path.name) or path)
    assert shelf.names() == ["b.safetensors", "a.safetensors", "pipeline"]
    assert shelf.get().name == "b.safetensors" and shelf.get("b.safetensors").name == "b.safetensors"
    shelf.get("pipeline")
    assert loads == ["b.safetensors", "pipeline"]
    with pytest.raises(DiffdiffError, match="unknown model '/etc/passwd'"):
        shelf.get("/etc/passwd")
    with pytest.raises(DiffdiffError, match="does not exist"):
        ModelShelf(None, tmp_path / "missing")


def test_the_http_endpoint_takes_the_pages_settings_with_the_pages_defaults():
    import inspect

    from diffdiff.ui.api import FIXED, make_api_edit

    parameters = inspect.signature(make_api_edit(studio=None)).parameters
    assert list(parameters) == [name for name, *_ in FIXED] + [s.keyword for s in SETTINGS]
    for setting in SETTINGS:  # the family-dependent ones are left to the chosen model's family
        expected = None if setting in FAMILY_SETTINGS else setting.default
        assert parameters[setting.keyword].default == expected


def test_listening_beyond_loopback_warns_what_it_exposes():
    assert exposure_warning("127.0.0.1", 7860) is None
    warning = exposure_warning("0.0.0.0", 7860)
    assert "0.0.0.0" in warning and "7860" in warning and "without a login" in warning
