"""A progress bar with ETA on stderr, driven by the sampler's per-step callback (tqdm).

When the step info carries `step_cost` and `total_cost` (the pipeline adds them: the tiles each step will
evaluate), the bar advances by cost rather than by step, so a run whose early steps are skipped does not
promise an ETA far too low."""

from __future__ import annotations

import sys

BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| step {postfix} [{elapsed}<{remaining}]"


class StepProgress:
    """Callable sampler callback that advances a tqdm bar once per step; a no-op when `quiet`."""

    def __init__(self, total: int, *, description: str = "sampling", quiet: bool = False, stream=None):
        self.total = int(total)
        self.calls = 0
        self._bar = None
        if not quiet:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=description, file=stream or sys.stderr,
                             dynamic_ncols=True, leave=False, bar_format=BAR_FORMAT,
                             postfix=f"0/{self.total}")

    def __call__(self, info: dict | None = None) -> None:
        self.calls += 1
        if self._bar is None:
            return
        info = info or {}
        steps = int(info.get("total_steps", self.total))
        if info.get("total_cost"):
            advance = self.total * info["step_cost"] / info["total_cost"]
        else:
            advance = self.total / max(steps, 1)
        self._bar.set_postfix_str(f"{min(self.calls, steps)}/{steps}", refresh=False)
        self._bar.update(min(advance, self.total - self._bar.n))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
