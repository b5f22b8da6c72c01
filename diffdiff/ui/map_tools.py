"""The page's map buttons: each tool of `diffdiff.maps` as one function of (current map, image, its
parameters) → new map. Tools that edit a map (blur, grow, …) act on the current one; tools that make a map
from the image (depth, detail, regions) lay theirs onto the current one with a chosen rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import DiffdiffError
from ..maps import blur, combine, detail_map, feather, grow, invert, levels, region_map, shrink
from ..maps.ops import COMBINE_MODES

LAY_MODES = ("replace", *COMBINE_MODES)  # how a made map meets the current one


@dataclass(frozen=True)
class Parameter:
    """One input of a tool: its `name`, the page's `label`, its `default`, and `kind` "number" | "text" |
    "choice" | "image" (a label image upload)."""

    name: str
    label: str
    default: object = None
    kind: str = "number"
    choices: tuple = ()


@dataclass(frozen=True)
class MapTool:
    """A button: `label`, a one-line `hint`, its `parameters`, and `apply(current, image, **values)`."""

    label: str
    hint: str
    parameters: tuple[Parameter, ...]
    apply: Callable[..., np.ndarray]


LAY = Parameter("lay", "onto the map", "replace", "choice", LAY_MODES)


def _lay(current: np.ndarray, made: np.ndarray, lay: str) -> np.ndarray:
    if lay not in LAY_MODES:
        raise DiffdiffError(f"unknown way to lay a map {lay!r}; choose from {', '.join(LAY_MODES)}")
    return made if lay == "replace" else combine(current, made, lay)


def _depth(current, image, *, far=False, lay="replace", estimator=None):
    from ..maps import depth_map

    if estimator is None:
        raise DiffdiffError("no depth model: start `diffdiff ui` with --depth-model DIR (a Depth Anything "
                            "folder) to make depth maps")
    return _lay(current, depth_map(image, estimator, far=bool(far)), lay)


def _regions(current, image, *, labels=None, table="", lay="replace", estimator=None):
    if labels is None:
        raise DiffdiffError("regions need a label image (one colour per region) of the image's size")
    labels = labels if isinstance(labels, Image.Image) else Image.open(labels)
    if labels.size != image.size:
        raise DiffdiffError(f"the label image is {labels.width}x{labels.height} but the image is "
                            f"{image.width}x{image.height}")
    return _lay(current, region_map(labels, table, nearest=True), lay)


def _detail(current, image, *, scale, lay, estimator=None):
    return _lay(current, detail_map(image, scale), lay)


def _on_map(function, *names):
    """A tool that edits the current map: `function(current, *values)`."""
    return lambda current, image, estimator=None, **values: function(current, *(values[n] for n in names))


MAP_TOOLS: dict[str, MapTool] = {
    "invert": MapTool("Invert", "Swap keep and change: s → 1 − s", (), _on_map(invert)),
    "blur": MapTool("Blur", "Gaussian blur; the map's mean is kept", (Parameter("sigma", "sigma (px)", 8.0),),
                    _on_map(blur, "sigma")),
    "grow": MapTool("Grow", "Spread strong areas outwards", (Parameter("pixels", "by (px)", 16),),
                    _on_map(grow, "pixels")),
    "shrink": MapTool("Shrink", "Pull strong areas inwards", (Parameter("pixels", "by (px)", 16),),
                      _on_map(shrink, "pixels")),
    "feather": MapTool("Feather outward", "Soft edge outside the painted area; never lowers a pixel",
                       (Parameter("radius", "radius (px)", 24),), _on_map(feather, "radius")),
    "levels": MapTool("Levels", "Black point, white point and gamma of the strengths",
                      (Parameter("black", "black", 0.0), Parameter("white", "white", 1.0),
                       Parameter("gamma", "gamma", 1.0)), _on_map(levels, "black", "white", "gamma")),
    "detail": MapTool("Detail", "Strength that follows the image's local detail",
                      (Parameter("scale", "scale (px)", 8.0), LAY), _detail),
    "depth": MapTool("Depth", "Strength from depth (near = change, or far)",
                     (Parameter("far", "far = change", False, "choice", (False, True)), LAY), _depth),
    "regions": MapTool("Regions", "One strength per colour of a label image",
                       (Parameter("labels", "label image", None, "image"),
                        Parameter("table", "colour=strength, …", "#ffffff=1, #000000=0", "text"), LAY),
                       _regions),
}


def apply_map_tool(name: str, current: np.ndarray, image: Image.Image, values: dict | None = None, *,
                   estimator=None) -> np.ndarray:
    """Run tool `name` on the `current` map of `image` with its parameter `values` (defaults filled in)."""
    tool = MAP_TOOLS.get(name)
    if tool is None:
        raise DiffdiffError(f"unknown map tool {name!r}; choose from {', '.join(MAP_TOOLS)}")
    values = dict(values or {})
    unknown = set(values) - {p.name for p in tool.parameters}
    if unknown:
        raise DiffdiffError(f"map tool {name!r} takes no {', '.join(sorted(unknown))}")
    arguments = {p.name: values.get(p.name, p.default) for p in tool.parameters}
    made = tool.apply(current, image, **arguments, estimator=estimator)
    return np.asarray(made, dtype=np.float32)
