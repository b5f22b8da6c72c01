"""A progress bar with ETA on stderr, driven by the sampler's per-step callback (tqdm)."""

from __future__ import annotations

import sys


class StepProgress:
    """Callable sampler callback that advances a tqdm bar by one step per call; a no-op when `quiet`."""

    def __init__(self, total: int, *, description: str = "sampling", quiet: bool = False, stream=None):
        self.total = int(total)
        self.calls = 0
        self._bar = None
        if not quiet:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=description, unit="step", file=stream or sys.stderr,
                             dynamic_ncols=True, leave=False)

    def __call__(self, info: dict | None = None) -> None:
        self.calls += 1
        if self._bar is not None and self._bar.n < self.total:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

