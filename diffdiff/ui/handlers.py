"""What the page's events do, as plain methods of `Studio` (one per server): take an upload, load or
change the map, run an edit with progress and cancel, and the same edit for HTTP callers. Nothing here
knows Gradio; `page` wires these methods to the controls."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DiffdiffError
from ..imageio import header_size
from ..maps import load_map, save_map
from ..maps.preview import fit_map_to_image
from ..pipeline.result import RunResult
from .canvas import map_from_data_url, map_to_data_url
from .jobs import PREVIEW_EVERY, EditJob, JobCancelled
from .map_tools import apply_map_tool
from .settings import request_keywords
from .uploads import PAGE_MAX_PIXELS, read_upload

FILE_ROUTE = "/gradio_api/file="  # where Gradio serves files from the folders it is allowed to


@dataclass
class Outcome:
    """A finished run: the written PNGs (one per variation, with metadata), the map it used, the input
    it edited, the settings record, the run's seconds and the page's name of the model."""

    paths: list[str]
    map_path: str
    input_path: str
    settings: dict
    seconds: float
    model: str


class Studio:
    """The server's state: its models, its output folder (the only folder the page serves), the page's
    upload limit, an optional depth model, and the job each browser session is running."""

    def __init__(self, shelf, output_dir, *, max_pixels: int = PAGE_MAX_PIXELS, depth_model=None,
                 preview_every: int = PREVIEW_EVERY):
        self.shelf = shelf
        self.output = Path(output_dir).expanduser().resolve()
        self.inputs = self.output / "inputs"
        self.inputs.mkdir(parents=True, exist_ok=True)
        self.max_pixels = int(max_pixels)
        self.preview_every = preview_every
        self._depth_source = depth_model
        self._estimator = None
        self._jobs: dict[str, EditJob] = {}
        self._waiting: dict[str, int] = {}  # per session: runs the page asked for that have not started
        self._dropped: dict[str, int] = {}  # of those, how many were cancelled while they waited
        self._starting: dict[str, threading.Event] = {}  # a started run's cancel, before its job exists
        self._names = itertools.count(1)
        self._lock = threading.Lock()

    # -- files ---------------------------------------------------------------------------------------------
    def _stem(self, kind: str) -> str:
        with self._lock:
            return f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{next(self._names):04d}"

    def url_of(self, path) -> str:
        """The page's address of a file in the output folder."""
        return FILE_ROUTE + str(Path(path).resolve())

    def _stored(self, image_path) -> Path:
        """The path of the input picture named by the page (only files this server stored are accepted)."""
        if not image_path:
            raise DiffdiffError("upload an image first")
        path = Path(str(image_path)).resolve()
        if path.parent != self.inputs or not path.is_file():
            raise DiffdiffError("that image is not one this page received; upload it again")
        return path

    def _input(self, image_path) -> Image.Image:
        """The stored input picture named by the page, decoded."""
        return read_upload(self._stored(image_path), max_pixels=self.max_pixels)

    # -- image and map in ----------------------------------------------------------------------------------
    def accept_upload(self, path) -> str:
        """Check an uploaded image and store it (RGB PNG, EXIF orientation applied); return its path."""
        image = read_upload(path, max_pixels=self.max_pixels)
        stored = self.inputs / f"{self._stem('input')}.png"
        image.save(stored)
        return str(stored)

    def load_map_file(self, path, image_path) -> str:
        """An uploaded map file (any of `diffdiff.maps`' forms) at the image's size, for the canvas."""
        size = header_size(self._stored(image_path))
        return map_to_data_url(fit_map_to_image(read_map_upload(path), *size))

    def apply_tool(self, name: str, image_path, map_data: str, values: dict | None = None) -> str:
        """The canvas's map after map tool `name` (see `map_tools`)."""
        image = self._input(image_path)
        current = map_from_data_url(map_data, image.size)
        estimator = self._depth_estimator() if name == "depth" else None
        return map_to_data_url(apply_map_tool(name, current, image, values, estimator=estimator))

    def _depth_estimator(self):
        if self._estimator is None and self._depth_source is not None:
            from ..maps import load_depth_estimator

            self._estimator = load_depth_estimator(self._depth_source)
        return self._estimator

    # -- runs ----------------------------------------------------------------------------------------------
    def run(self, session: str, image_path, map_data: str, prompt: str, negative: str, model_name: str,
            settings):
        """Edit the stored image with the canvas's map: yields Progress objects, then the Outcome.
        `settings`: the controls' values (see `settings.request_keywords`). Raises DiffdiffError on bad
        input and JobCancelled when `cancel(session)` stopped it (or dropped it while it waited)."""
        self._begin(session)
        try:
            input_path = self._stored(image_path)
            strength_map = map_from_data_url(map_data, header_size(input_path))
            yield from self._edit(session, input_path, strength_map, prompt, negative, model_name,
                                  request_keywords(settings))
        finally:
            with self._lock:
                self._starting.pop(session, None)

    def _edit(self, session, input_path, strength_map, prompt, negative, model_name, keywords):
        from ..pipeline.editing import run_edit
        from ..request import EditRequest

        request = EditRequest.build(str(input_path), strength_map, prompt, negative=negative, **keywords)
        image = Image.fromarray(request.image.pixels)  # the picture the request read, for the previews
        model_name = model_name or self.shelf.default_name()
        model = self.shelf.get(model_name)
        job = EditJob(lambda callback: run_edit(request, model, callback=callback), model,
                      preview_image=image, preview_every=self.preview_every, lock=self.shelf.lock)
        with self._lock:
            self._jobs[session] = job
            if self._starting.pop(session, threading.Event()).is_set():
                job.cancel()
        try:
            for update in job.updates():
                if isinstance(update, RunResult):
                    update = self._keep(update, strength_map, input_path, model_name)
                yield update
        finally:
            with self._lock:
                self._jobs.pop(session, None)

    def _keep(self, result, strength_map: np.ndarray, input_path: Path, model_name: str) -> Outcome:
        stem = self._stem("edit")
        paths = [str(p) for p in result.save(self.output / f"{stem}.png")]
        map_path = save_map(self.output / f"{stem}-map.png", strength_map)
        return Outcome(paths, str(map_path), str(input_path), dict(result.settings),
                       float(result.stats.get("seconds", 0.0)), model_name)

    def submitted(self, session: str) -> None:
        """The page asked for a run that waits in the queue until the one before it ends."""
        with self._lock:
            self._waiting[session] = self._waiting.get(session, 0) + 1

    def _begin(self, session: str) -> None:
        """A run starts: it leaves the waiting count; JobCancelled when it was cancelled while it waited."""
        with self._lock:
            if self._waiting.get(session, 0):
                self._waiting[session] -= 1
            if self._dropped.get(session, 0):
                self._dropped[session] -= 1
                raise JobCancelled("cancelled")
            self._starting[session] = threading.Event()

    def cancel(self, session: str) -> str | None:
        """Stop the session's running job at its next step ("running"), or else drop its next waiting run
        ("waiting"); None when it has neither."""
        with self._lock:
            job = self._jobs.get(session)
            if job is not None:
                job.cancel()
                return "running"
            if session in self._starting:
                self._starting[session].set()
                return "running"
            if self._waiting.get(session, 0) > self._dropped.get(session, 0):
                self._dropped[session] = self._dropped.get(session, 0) + 1
                return "waiting"
        return None

    def edit_files(self, image_file, map_file, prompt: str, negative: str = "", model_name: str = "",
                   settings: dict | None = None) -> Outcome:
        """The whole edit for an HTTP caller: an image file and a map file in, the Outcome out."""
        input_path = Path(self.accept_upload(image_file))
        strength_map = fit_map_to_image(read_map_upload(map_file), *header_size(input_path))
        outcome = None
        for update in self._edit(f"api-{self._stem('call')}", input_path, strength_map, prompt, negative,
                                 model_name, request_keywords(settings or {})):
            outcome = update
        return outcome


def read_map_upload(path) -> np.ndarray:
    """An uploaded map file, with the upload's one-line errors."""
    if path is None:
        raise DiffdiffError("no map file was uploaded")
    try:
        return load_map(path)
    except (DiffdiffError, OSError, ValueError) as exc:
        raise DiffdiffError(f"cannot use {Path(str(path)).name!r} as a map: {exc}") from None
