"""The Python API: `edit` (image + strength map + prompt → images), `generate` (prompt → images) and
`upscale` (enlarge, then refine through a strength map). Each builds a request (`diffdiff.request`), which
checks everything once, and runs it; `run_edit` / `run_generate` / `run_upscale` run a request already
built (the command line builds its own before loading the model)."""

from .editing import edit, run_edit
from .generating import generate, run_generate
from .result import RunResult
from .upscaling import run_upscale, upscale

__all__ = ["RunResult", "edit", "generate", "run_edit", "run_generate", "run_upscale", "upscale"]
