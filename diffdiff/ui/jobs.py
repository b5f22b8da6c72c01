"""One edit run for the page: the pipeline in a worker thread, reported as a stream of progress updates
(step, fraction done, ETA, a live preview every few steps) that ends with the result, and cancellable
between any two sampler steps."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

from PIL import Image

from ..errors import DiffdiffError
from .latent_preview import LatentProjection

PREVIEW_EVERY = 3  # sampler steps between live previews
PHASE_TEXT = {"preparing": "encoding the image …", "finishing": "decoding and compositing …"}


class JobCancelled(DiffdiffError):
    """The job was cancelled; raised inside the sampler's callback to stop the run."""


@dataclass
class Progress:
    """Where a running job is: `phase` ("preparing" | "sampling" | "finishing"), the sampler `step` and
    `total_steps`, the `fraction` of the sampling work done (by the tiles each step evaluates), the
    estimated seconds left (`eta`, None until a step has run) and the latest `preview` (or None)."""

    phase: str
    step: int = 0
    total_steps: int = 0
    fraction: float = 0.0
    eta: float | None = None
    preview: Image.Image | None = None

    def text(self) -> str:
        """One line for the page, e.g. "step 6/20 · 30 % · about 12 s left"."""
        if self.phase != "sampling":
            return PHASE_TEXT[self.phase]
        left = f" · about {self.eta:.0f} s left" if self.eta is not None else ""
        return f"step {self.step}/{self.total_steps} · {100 * self.fraction:.0f} %{left}"


class EditJob:
    """Runs `run(model)` (a callable taking a step callback and returning the result) in a thread.

    Iterate `updates()` for Progress objects; the iteration ends with the result as its last item, or
    raises the run's error (JobCancelled after `cancel()`). `preview_image` (optional) fits a
    LatentProjection on that picture so the updates carry live previews; `lock` (optional) is held by the
    worker thread for the whole run (one run at a time on a model).
    """

    def __init__(self, run, model, *, preview_image: Image.Image | None = None,
                 preview_every: int = PREVIEW_EVERY, lock=None):
        self._run = run
        self._model = model
        self._preview_image = preview_image
        self._preview_every = max(1, int(preview_every))
        self._cancel = threading.Event()
        self._updates: queue.Queue = queue.Queue()
        self._projection: LatentProjection | None = None
        self._first_step = None
        self._done_cost = 0.0
        self._lock = lock if lock is not None else threading.Lock()

    def cancel(self) -> None:
        """Stop the run at the next sampler step."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def updates(self):
        """Progress objects as the run goes, then the result; raises the run's error."""
        worker = threading.Thread(target=self._work, name="diffdiff-ui-job", daemon=True)
        worker.start()
        yield Progress("preparing")
        while True:
            kind, payload = self._updates.get()
            if kind == "progress":
                yield payload
            elif kind == "error":
                raise payload
            else:
                yield payload
                return

    def _work(self) -> None:
        with self._lock:
            self._work_locked()

    def _work_locked(self) -> None:
        try:
            self._check_cancel()
            if self._preview_image is not None:
                self._projection = LatentProjection.fit(self._model, self._preview_image)
            self._check_cancel()
            result = self._run(self._on_step)
            self._check_cancel()
            self._updates.put(("result", result))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the page as its error
            self._updates.put(("error", JobCancelled("cancelled") if self.cancelled else exc))

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled("cancelled")

    def _on_step(self, info: dict) -> None:
        self._check_cancel()
        now = time.perf_counter()
        total = int(info.get("total_steps", 1))
        step = int(info.get("i", 0)) + 1
        if info.get("total_cost"):
            self._done_cost += info["step_cost"] / info["total_cost"]
            fraction = min(1.0, self._done_cost)
        else:
            fraction = step / max(total, 1)
        if self._first_step is None:
            self._first_step = (now, fraction)
        eta = _eta(self._first_step, now, fraction)
        preview = None
        if self._projection is not None and (step % self._preview_every == 0 or step == total):
            preview = self._preview(info.get("denoised"))
        phase = "finishing" if step >= total else "sampling"
        self._updates.put(("progress", Progress(phase, step, total, fraction, eta, preview)))

    def _preview(self, denoised) -> Image.Image | None:
        if denoised is None:
            return None
        return self._projection.image(denoised[0])


def _eta(first: tuple[float, float], now: float, fraction: float) -> float | None:
    """Seconds left, from the rate since the first step (whose own cost is not in the interval)."""
    started, fraction_then = first
    done = fraction - fraction_then
    if done <= 0:
        return None
    return max(0.0, (now - started) / done * (1.0 - fraction))
