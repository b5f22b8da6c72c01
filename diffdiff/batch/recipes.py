"""Map recipes: a strength map described in a batch manifest instead of stored as a file — a list of steps,
each `{"op": NAME, ...keywords}`, whose first step makes a map at the job's image size and whose others
change it, e.g. `[{"op": "radial", "radius": 120}, {"op": "feather", "radius": 16}]`. Every step is a
function of `diffdiff.maps` with its own checks."""

from __future__ import annotations

import inspect
import json

import numpy as np

from .. import maps
from ..errors import DiffdiffError

MAKERS = {  # op → function(height, width, **keywords), or function(image, **keywords) for "detail"
    "linear": maps.linear_gradient,
    "radial": maps.radial_gradient,
    "fan": maps.strength_fan,
    "detail": maps.detail_map,
}
CHANGES = {  # op → function(map, **keywords)
    "blur": maps.blur,
    "feather": maps.feather,
    "grow": maps.grow,
    "shrink": maps.shrink,
    "invert": maps.invert,
    "levels": maps.levels,
    "threshold": maps.threshold,
    "clamp": maps.clamp,
}
POSITIONAL = {"height", "width", "image", "strength_map"}  # what the recipe supplies, not the manifest


def _keywords_of(function) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name not in POSITIONAL]


def check_recipe(recipe) -> list[dict]:
    """The recipe as a list of steps, with every op and keyword name known; else one clear error."""
    steps = [recipe] if isinstance(recipe, dict) else recipe
    if not isinstance(steps, list) or not steps or not all(isinstance(step, dict) for step in steps):
        raise DiffdiffError("a map recipe is a step {\"op\": ...} or a list of them")
    for index, step in enumerate(steps):
        table, kind = (MAKERS, "first step (a maker)") if index == 0 else (CHANGES, "later step (a change)")
        op = step.get("op")
        if op not in table:
            raise DiffdiffError(f"map recipe: unknown op {op!r} for a {kind}; "
                                f"choose one of: {', '.join(table)}")
        unknown = sorted(set(step) - {"op"} - set(_keywords_of(table[op])))
        if unknown:
            raise DiffdiffError(f"map recipe: {op} takes no {', '.join(unknown)}; it takes: "
                                f"{', '.join(_keywords_of(table[op])) or 'nothing'}")
    return steps


def recipe_text(recipe) -> str:
    """The canonical one-line form of a recipe: its identity in a job's key and its name in the record."""
    return json.dumps(check_recipe(recipe), sort_keys=True, separators=(",", ":"))


def make_map(recipe, image_size: tuple[int, int], image=None) -> np.ndarray:
    """Run a recipe at `image_size` (width, height); "detail" reads `image` (its pixels or any image the
    detail map accepts)."""
    first, *rest = check_recipe(recipe)
    width, height = image_size
    keywords = {k: v for k, v in first.items() if k != "op"}
    try:
        if first["op"] == "detail":
            values = MAKERS["detail"](image if image is not None else np.zeros((height, width, 3), np.uint8),
                                      **keywords)
        else:
            values = MAKERS[first["op"]](height, width, **keywords)
        for step in rest:
            values = CHANGES[step["op"]](values, **{k: v for k, v in step.items() if k != "op"})
    except (TypeError, ValueError) as exc:
        raise DiffdiffError(f"map recipe: {' '.join(str(exc).split())}") from None
    return values
