"""Requests: one validated object per run (edit, generate, upscale) that carries every option from the
command line or the Python API to the pipeline, and produces the settings record written to the PNG."""

from .inputs import Picture, StrengthMap, map_argument, read_picture, read_strength
from .parts import Gate, Output, Region, Sampling, Tiling
from .prompting import Prompting
from .requests import EditRequest, GenerateRequest, keywords_for, with_family_defaults
from .upscale import STRENGTH_SOURCES, Enlarge, UpscaleRequest

__all__ = [
    "STRENGTH_SOURCES", "EditRequest", "Enlarge", "GenerateRequest", "Gate", "Output", "Picture",
    "Prompting", "Region", "Sampling", "StrengthMap", "Tiling", "UpscaleRequest", "keywords_for",
    "map_argument", "read_picture", "read_strength", "with_family_defaults",
]
