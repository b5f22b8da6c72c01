"""The page: Gradio's layout of the canvas, the settings, the run and the results, and which `Studio`
method each control calls. The canvas's map reaches the server as a hidden text field that a line of
JavaScript fills from `window.ddCanvas.exportMap()` just before each event that needs it."""

from __future__ import annotations

import functools
import random

import gradio as gr

from ..errors import DiffdiffError, one_line
from ..request.parts import MAX_SEED
from . import results
from .canvas import UPLOAD_ELEM_ID, strength_canvas
from .handlers import Outcome
from .jobs import JobCancelled
from .map_tools import MAP_TOOLS
from .settings import FAMILY_SETTINGS, SETTING_KEYWORDS, SETTINGS, control_values, family_control_values

TITLE = "diffdiff: paint where to change"
HELP = ("Upload, drop or paste an image, then paint on it: the brush value **is** the strength "
        "(0 % keeps a pixel exactly, 100 % changes it fully). Write what the painted area should become "
        "and press **Run**.")
SET_IMAGE = "(url) => window.ddCanvas.setImage(url)"
SET_IMAGE_KEEP_MAP = ("async (url) => { const map = window.ddCanvas.exportMap(); "
                      "await window.ddCanvas.setImage(url); "
                      "try { await window.ddCanvas.setMap(map); } catch (error) { } }")
SET_MAP = "(map) => window.ddCanvas.setMap(map)"


def with_map(position: int) -> str:
    """JavaScript that replaces input `position` with the canvas's map before the event is sent."""
    return f"(...values) => {{ values[{position}] = window.ddCanvas.exportMap(); return values; }}"


def shown(exc: BaseException) -> gr.Error:
    """An error as the page shows it: one line in a toast, no traceback in the server's log."""
    return exc if isinstance(exc, gr.Error) else gr.Error(one_line(exc), print_exception=False)


def in_one_line(function):
    """`function`, with any error it raises shown in the page as one line (the server goes on)."""

    @functools.wraps(function)
    def shown_errors(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure of an event is one line in the page
            raise shown(exc) from None

    return shown_errors


def _control(setting):
    elem_id = f"dd-{setting.keyword}"
    if setting.kind == "choice":
        return gr.Dropdown(list(setting.choices), value=setting.default, label=setting.label, elem_id=elem_id)
    if setting.kind == "slider":
        return gr.Slider(setting.low, setting.high, value=setting.default, step=setting.step,
                         label=setting.label, elem_id=elem_id)
    if setting.kind == "check":
        return gr.Checkbox(value=setting.default, label=setting.label, elem_id=elem_id)
    return gr.Number(value=setting.default, label=setting.label, precision=0, elem_id=elem_id)


def _tool_input(parameter):
    elem_id = f"dd-param-{parameter.name}"
    if parameter.kind == "image":
        return gr.File(label=parameter.label, file_types=["image"], type="filepath", height=60)
    if parameter.kind == "choice":
        return gr.Dropdown(list(parameter.choices), value=parameter.default, label=parameter.label)
    if parameter.kind == "text":
        return gr.Textbox(value=parameter.default, label=parameter.label)
    return gr.Number(value=parameter.default, label=parameter.label, elem_id=elem_id, min_width=80)


def build_page(studio) -> gr.Blocks:
    """The Blocks app for `studio`."""
    with gr.Blocks(title=TITLE, analytics_enabled=False) as page:
        state = gr.State(results.new_state())
        image_path = gr.Textbox(visible=False)
        image_url = gr.Textbox(visible=False)
        map_data = gr.Textbox(visible=False)
        map_out = gr.Textbox(visible=False)
        gr.Markdown(f"## {TITLE}\n{HELP}")
        with gr.Row():
            with gr.Column(scale=3):
                strength_canvas()
                with gr.Row():
                    upload = gr.File(label="Image (or drop / paste onto the canvas)", file_types=["image"],
                                     type="filepath", elem_id=UPLOAD_ELEM_ID, height=90)
                    map_upload = gr.File(label="Load a map file", file_types=["image"], type="filepath",
                                         elem_id="dd-map-upload", height=90)
                tool_inputs = {}
                with gr.Accordion("Map tools (act on the painted map)", open=False):
                    for name, tool in MAP_TOOLS.items():
                        with gr.Row(equal_height=True):
                            button = gr.Button(tool.label, elem_id=f"dd-map-{name}", scale=0, min_width=150)
                            gr.Markdown(tool.hint)
                            tool_inputs[name] = (button, [_tool_input(p) for p in tool.parameters])
            with gr.Column(scale=2):
                prompt = gr.Textbox(label="Prompt (what the painted area becomes)", lines=2,
                                    elem_id="dd-prompt")
                negative = gr.Textbox(label="Negative prompt", elem_id="dd-negative")
                model = gr.Dropdown(studio.shelf.names(), value=studio.shelf.default_name(), label="Model",
                                    elem_id="dd-model")
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="dd-run")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="dd-cancel")
                status = gr.Textbox(label="Progress", interactive=False, elem_id="dd-status-line")
                preview = gr.Image(label="Live preview (cheap projection of the current estimate)",
                                   interactive=False, elem_id="dd-preview", height=220, type="pil")
                with gr.Accordion("Settings", open=True):
                    controls = [_control(setting) for setting in SETTINGS]
                    random_seed = gr.Button("Random seed", size="sm", elem_id="dd-random-seed")
        with gr.Row():
            with gr.Column(scale=3):
                grid = gr.Gallery(label="Variations (click one to select it)", columns=4, height=300,
                                  elem_id="dd-results", type="filepath", allow_preview=False,
                                  object_fit="contain", fit_columns=False)
                with gr.Row():
                    keep = gr.Button("Keep", elem_id="dd-keep")
                    discard = gr.Button("Discard", elem_id="dd-discard")
                    use_as_input = gr.Button("Use as input", elem_id="dd-use-as-input")
                    download = gr.DownloadButton("Download PNG (with its settings)", elem_id="dd-download",
                                                 value=None)
                kept = gr.File(label="Kept", file_count="multiple", interactive=False, elem_id="dd-kept")
            with gr.Column(scale=2):
                slider = gr.ImageSlider(label="Before / after", type="filepath", elem_id="dd-before-after")
        history = gr.Dataframe(headers=list(results.HISTORY_COLUMNS), interactive=False, elem_id="dd-history",
                               label="This session's runs (click one to restore its settings)")

        _wire_image(studio, upload, map_upload, image_path, image_url, map_out)
        _wire_tools(studio, tool_inputs, image_path, map_data, map_out)
        run_inputs = [image_path, map_data, prompt, negative, model, *controls, state]
        run_outputs = [status, preview, grid, state, history, slider, download]
        # the run's own stream ends with its last word ("cancelled" too), so nothing overwrites it later
        run.click(_submitter(studio), None, None, queue=False, api_visibility="private").then(
            _runner(studio), run_inputs, run_outputs, js=with_map(1), concurrency_limit=1,
            concurrency_id="edit", api_visibility="private")
        cancel.click(_canceller(studio), None, status, queue=False, api_visibility="private")
        seed = controls[SETTING_KEYWORDS.index("seed")]
        random_seed.click(lambda: random.randint(0, MAX_SEED), None, seed, queue=False)
        _wire_results(studio, state, grid, keep, discard, use_as_input, download, kept, slider, image_path,
                      image_url)
        history.select(_restore, [state], [prompt, negative, model, *controls], queue=False)
        family_controls = [controls[SETTINGS.index(setting)] for setting in FAMILY_SETTINGS]
        model.input(_family_defaults(studio), model, family_controls, queue=False, api_visibility="private")
        page.load(_family_defaults(studio), model, family_controls, queue=False, api_visibility="private")
        gr.api(_api(studio), api_name="edit", concurrency_limit=1, concurrency_id="edit")
    return page


def _wire_image(studio, upload, map_upload, image_path, image_url, map_out) -> None:
    @in_one_line
    def take_image(path):
        stored = studio.accept_upload(path)
        return stored, studio.url_of(stored), None  # the upload is emptied, ready for the next image

    @in_one_line
    def take_map(path, current_image):
        return studio.load_map_file(path, current_image)

    upload.upload(take_image, upload, [image_path, image_url, upload], api_visibility="private").success(
        None, image_url, None, js=SET_IMAGE)
    map_upload.upload(take_map, [map_upload, image_path], map_out, api_visibility="private").success(
        None, map_out, None, js=SET_MAP)


def _wire_tools(studio, tool_inputs, image_path, map_data, map_out) -> None:
    for name, (button, inputs) in tool_inputs.items():
        parameter_names = [p.name for p in MAP_TOOLS[name].parameters]

        @in_one_line
        def apply(current_image, current_map, *values, name=name, parameter_names=parameter_names):
            return studio.apply_tool(name, current_image, current_map, dict(zip(parameter_names, values)))

        button.click(apply, [image_path, map_data, *inputs], map_out, js=with_map(1),
                     api_visibility="private").success(None, map_out, None, js=SET_MAP)


def _runner(studio):
    # Gradio passes the request and the progress bar by their places in the signature: they come first
    def run(request: gr.Request, progress=gr.Progress(), *values):  # noqa: B008 - Gradio's way to ask
        current_image, current_map, prompt, negative, model_name, *settings, state = values
        skip = gr.skip()
        try:
            for update in studio.run(request.session_hash, current_image, current_map, prompt, negative,
                                     model_name, settings):
                if isinstance(update, Outcome):
                    state = results.add_outcome(state, update)
                    yield (f"done in {update.seconds:.1f} s: {len(update.paths)} variation(s)", skip,
                           results.gallery(state), state, results.history_rows(state),
                           *_selection_views(state))
                    return
                progress(update.fraction, desc=update.text())
                yield update.text(), update.preview or skip, skip, skip, skip, skip, skip
        except JobCancelled:
            yield "cancelled", skip, skip, skip, skip, skip, skip
        except Exception as exc:  # noqa: BLE001 - the page shows the one line; the server goes on
            raise shown(exc) from None

    return run


def _family_defaults(studio):
    """The sampler, scheduler, steps and CFG of the chosen model's family (read from its file, not loaded);
    the controls stay as they are when the family cannot be told."""
    def defaults(model_name):
        try:
            return family_control_values(studio.shelf.family(model_name))
        except DiffdiffError:
            return [gr.skip()] * len(FAMILY_SETTINGS)

    return defaults


def _submitter(studio):
    def submitted(request: gr.Request):
        studio.submitted(request.session_hash)

    return submitted


def _canceller(studio):
    def cancel(request: gr.Request):
        stopped = studio.cancel(request.session_hash)
        if stopped == "running":
            return gr.skip()  # the run stops at its next step and says "cancelled" itself
        return "cancelled" if stopped == "waiting" else "nothing is running"

    return cancel


def _selection_views(state):
    """The before/after slider and the download button for the selected variation."""
    chosen = results.selected(state)
    if chosen is None:
        return gr.update(value=None), gr.update(value=None)
    return (state["input"], chosen["path"]), gr.update(value=chosen["path"])


def _wire_results(studio, state, grid, keep, discard, use_as_input, download, kept, slider, image_path,
                  image_url) -> None:
    def on_select(current, event: gr.SelectData):
        current = results.select(current, event.index)
        return current, *_selection_views(current)

    def on_keep(current):
        current = results.keep(current)
        return current, current["kept"]

    def on_discard(current):
        current = results.discard(current)
        return current, results.gallery(current), current["kept"], *_selection_views(current)

    @in_one_line
    def on_use(current):
        chosen = results.selected(current)
        if chosen is None:
            raise DiffdiffError("select a variation first")
        stored = studio.accept_upload(chosen["path"])
        return stored, studio.url_of(stored)

    grid.select(on_select, state, [state, slider, download], queue=False)
    keep.click(on_keep, state, [state, kept], queue=False)
    discard.click(on_discard, state, [state, grid, kept, slider, download], queue=False)
    use_as_input.click(on_use, state, [image_path, image_url], queue=False).success(
        None, image_url, None, js=SET_IMAGE_KEEP_MAP)


def _restore(current, event: gr.SelectData):
    row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
    entry = results.history_entry(current, int(row))
    if entry is None:
        return [gr.skip()] * (3 + len(SETTINGS))
    record = entry["settings"]
    return [record.get("prompt", ""), record.get("negative", ""), entry["model"], *control_values(record)]


def _api(studio):
    """The HTTP endpoint `/edit`: the page's run for programs (see the README's client example)."""
    from .api import make_api_edit

    return make_api_edit(studio)
