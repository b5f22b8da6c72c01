"""`applied_loras(model, uses, mode=...)`: apply LoRA files to a loaded model for the duration of a `with`
block and put the model back exactly as it was on exit, also after an exception.

Every file is read, converted and checked against the model (family, unknown keys, shapes, non-finite
numbers) before any weight is touched, so a refused LoRA never leaves a partial load behind.

Modes: "merge" adds the deltas into the weights (restored from copies of exactly the touched weights);
"adapter" attaches PEFT adapters beside the layers (removed on exit); "auto" = merge, in every case. In each
of three runs of `bench/lora.py` (demo SD1 model, rank-8 LoRA on all 68 attention projections; figures in
the README) merging was faster to apply and to remove, added nothing per network call (adapters added 15 %
to 165 %), and was faster when consecutive jobs switch LoRA sets. Merging costs one small matmul per layer
once; adapters cost two per layer on every call, and a slower attach.
Full-weight differences (ComfyUI's `.diff` / `.diff_b`) have no adapter form and are merged in every mode.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

from ..errors import DiffdiffError
from ..models.families import FLOW_FAMILIES
from .adapters import Adapters
from .layouts import convert_lora
from .merging import MergedWeights, merge_lora
from .reading import read_lora_file
from .resolve import ResolvedLora, resolve
from .use import LoraUse, lora_short_hash

MODES = ("auto", "merge", "adapter")
AUTO_MODE = "merge"


def load_checked(model, use: LoraUse, *, allow_pickle: bool = False) -> ResolvedLora:
    """One LoRA file read, converted and checked against `model` (nothing is changed yet)."""
    path = Path(use.path)
    for what, value in (("weight", use.weight), ("text weight", use.text_strength)):
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DiffdiffError(f"LoRA {path.name}: {what} {value!r} is not a finite number")
    tensors, metadata = read_lora_file(path, allow_pickle=allow_pickle)
    return resolve(path.name, convert_lora(path.name, tensors, metadata, model), model)


def chosen_mode(mode: str) -> str:
    """ "merge" or "adapter" for the requested `mode`."""
    if mode not in MODES:
        raise DiffdiffError(f"unknown LoRA mode {mode!r}; choose one of {', '.join(MODES)}")
    return AUTO_MODE if mode == "auto" else mode


@contextmanager
def applied_loras(model, uses: list[LoraUse], *, mode: str = "auto", allow_pickle: bool = False):
    """Apply `uses` to `model` for the duration of the block; on exit the model's weights are restored bit for
    bit (also after an exception). Yields [{"name", "hash", "weight", "text_weight"}] for the metadata."""
    mode = chosen_mode(mode)
    if not uses:
        yield []
        return
    family = getattr(model, "family", None)
    if family in FLOW_FAMILIES:
        raise DiffdiffError(f"LoRAs are not supported for the {family} family yet (only SD1, SD2 and SDXL)")
    checked = [load_checked(model, use, allow_pickle=allow_pickle) for use in uses]
    applied = [
        {
            "name": use.name,
            "hash": lora_short_hash(Path(use.path)),
            "weight": float(use.weight),
            "text_weight": float(use.text_strength),
        }
        for use in uses
    ]
    merged = MergedWeights()
    adapters = Adapters(model) if mode == "adapter" else None
    try:
        for index, (use, lora) in enumerate(zip(uses, checked)):
            merge_lora(merged, lora, float(use.weight), float(use.text_strength), low_rank=adapters is None)
            if adapters is not None:
                adapters.add(index, lora.updates, float(use.weight), float(use.text_strength))
        if adapters is not None:
            adapters.activate()
        yield applied
    finally:
        if adapters is not None:
            adapters.remove()
        merged.restore()
