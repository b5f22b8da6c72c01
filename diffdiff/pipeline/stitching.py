"""Crop & stitch: edit a request with a small map as crops around its regions, each enlarged towards the
model's native area, then laid back into the untouched image (docs/design.md §14).

Per box: the image and map are cut out and resized to the box's edit size, the crop runs as an ordinary
edit (no crop of its own), and its raw decode and composite opacity are resized back to the box. The
stitched opacity is set to 0 wherever the original map is 0, so those pixels, and every pixel outside the
boxes, are the input's bytes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from .. import composite as compositing
from ..models.families import FAMILY_TABLE
from ..regions import edit_size, find_crop_boxes, paste, resize_map, resize_pixels, should_crop
from ..request import EditRequest, Picture, StrengthMap
from .result import RunResult

SUMMED_STATS = ("sampler_calls", "network_calls", "tile_evaluations", "tile_evaluations_without_skip")


def native_area(model) -> int:
    """The pixel area the model was trained at (its family's native side, squared)."""
    return FAMILY_TABLE[model.family].native_size ** 2


def crop_boxes(request: EditRequest, model) -> list:
    """The boxes `request` is edited in, or [] to edit the whole image: always with crop "on" (when the map
    has a non-zero pixel); with "auto" only when the image is larger than the model's native area and the
    boxes cover at most half of it."""
    region = request.region
    width, height = request.size
    if region.crop == "off" or region.crop == "auto" and width * height <= native_area(model):
        return []  # decided before the map is scanned for regions
    boxes = find_crop_boxes(request.strength.values, region.context, multiple=model.vae_codec.factor)
    if region.crop == "on" or should_crop(boxes, request.size):
        return boxes
    return []


def crop_request(request: EditRequest, box, size: tuple[int, int]) -> EditRequest:
    """The edit of one box at `size` (width, height), with the request's options and no further cropping."""
    rows, cols = box.slices
    pixels = resize_pixels(np.ascontiguousarray(request.image.pixels[rows, cols]), size)
    values = resize_map(np.ascontiguousarray(request.strength.values[rows, cols]), size)
    return dataclasses.replace(
        request, image=Picture(pixels, request.image.name),
        strength=StrengthMap(values, request.strength.description),
        region=dataclasses.replace(request.region, crop="off"))


def run_cropped(request: EditRequest, boxes: list, model, run_one, record: dict | None = None) -> RunResult:
    """Edit `request` box by box with `run_one(crop_request) -> RunResult`, and stitch the results."""
    base = request.image.pixels
    items = request.sampling.batch
    generated = [base.copy() for _ in range(items)]
    opacities = [np.zeros(base.shape[:2], np.float32) for _ in range(items)]
    stats: dict = {}
    crops = []
    for box in boxes:
        size = edit_size(box, native_area(model), multiple=model.vae_codec.factor)
        result = run_one(crop_request(request, box, size))
        keep = request.strength.values[box.slices] <= 0
        for item in range(items):
            patch = resize_pixels(np.asarray(result.generated[item]), (box.width, box.height))
            generated[item] = paste(generated[item], patch, box)
            if result.opacities is not None:
                opacity = resize_map(result.opacities[item], (box.width, box.height))
                opacity[keep] = 0.0
                opacities[item][box.slices] = opacity
        for name in SUMMED_STATS:
            stats[name] = stats.get(name, 0) + result.stats.get(name, 0)
        stats.update({name: value for name, value in result.stats.items() if name not in SUMMED_STATS})
        crops.append(f"{box.left},{box.top},{box.width}x{box.height}@{size[0]}x{size[1]}")
    settings = {**result.settings, **(record or request.record()), "crops": crops}
    settings.update(width=request.size[0], height=request.size[1])
    generated_images = [Image.fromarray(pixels) for pixels in generated]
    if not request.output.composite:
        return RunResult(generated_images, None, generated_images, settings, stats)
    if request.output.alpha:
        images = [compositing.layer_with_alpha(top, opacity) for top, opacity in zip(generated, opacities)]
    else:
        images = [compositing.composite(base, top, opacity) for top, opacity in zip(generated, opacities)]
    return RunResult(images, opacities, generated_images, settings, stats)
