"""Where the strength map is: filling holes before encoding, and cropping around small edited regions."""

from .crops import (
    CROP_AUTO_FRACTION,
    CropBox,
    auto_context,
    edit_size,
    find_crop_boxes,
    paste,
    resize_map,
    resize_pixels,
    should_crop,
)
from .fill import FILL_MODES, fill_holes, hole_of

__all__ = [
    "CROP_AUTO_FRACTION", "FILL_MODES", "CropBox", "auto_context", "edit_size", "fill_holes",
    "find_crop_boxes", "hole_of", "paste", "resize_map", "resize_pixels", "should_crop",
]
