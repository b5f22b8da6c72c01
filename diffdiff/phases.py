"""Seconds per phase of a run (import, load, text encode, VAE encode, sampling, decode, composite, write).

A `PhaseClock` collects them; code marks a phase with `with phase("decode"):`, which adds its seconds to
the clock that is measuring in this thread (none: nothing is recorded). CUDA work is synchronised at each
end, so a phase owns the GPU time it queued. The edit pipeline measures its own phases into the run's
stats; the CLI adds import, load and write around it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar

PHASES = ("import", "load", "text_encode", "vae_encode", "sampling", "decode", "composite", "write")
_CURRENT: ContextVar[PhaseClock | None] = ContextVar("diffdiff_phase_clock", default=None)


class PhaseClock:
    """`seconds`: {phase: seconds spent in it}, in `PHASES` order when read through `ordered()`."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}")
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def ordered(self) -> dict[str, float]:
        return {name: round(self.seconds[name], 4) for name in PHASES if name in self.seconds}

    @contextmanager
    def measuring(self):
        """Make this the clock that `phase` adds to, inside the block."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)


def _synchronise() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@contextmanager
def phase(name: str):
    """Add the block's seconds to the measuring clock's `name` (nothing when no clock measures)."""
    clock = _CURRENT.get()
    if clock is None:
        yield
        return
    _synchronise()
    started = time.perf_counter()
    try:
        yield
    finally:
        _synchronise()
        clock.add(name, time.perf_counter() - started)
