"""Strength maps: every way to make, edit, check and preview the per-pixel map (white = change, black = keep).

Maps are float32 numpy arrays (H, W) in [0, 1]. `to_latent_grid` brings one onto the latent grid for sampling.
"""

from .depth import DepthEstimator, depth_map, load_depth_estimator
from .detail import DETAIL_MEASURES, detail_map
from .io import SOURCES, as_map, image_to_map, load_map, map_to_image, open_image, save_image, save_map
from .latent import to_latent_grid
from .ops import (
    COMBINE_MODES,
    ENLARGE_FILTERS,
    blur,
    brightness_contrast,
    clamp,
    combine,
    feather,
    grow,
    invert,
    levels,
    resize,
    shrink,
    threshold,
)
from .preview import colour_ramp, preview_image
from .sources import linear_gradient, parse_region_table, radial_gradient, region_map, solid, strength_fan

__all__ = [
    "COMBINE_MODES", "DETAIL_MEASURES", "ENLARGE_FILTERS", "SOURCES", "DepthEstimator", "as_map", "blur",
    "brightness_contrast", "clamp", "colour_ramp", "combine", "depth_map", "detail_map", "feather", "grow",
    "image_to_map", "invert", "levels", "linear_gradient", "load_depth_estimator", "load_map", "map_to_image",
    "open_image", "parse_region_table", "preview_image", "radial_gradient", "region_map", "resize",
    "save_image", "save_map", "shrink", "solid", "strength_fan", "threshold", "to_latent_grid",
]
