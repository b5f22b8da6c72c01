"""`UpscaleRequest`: enlarge an image, then refine it with a tiled differential edit — every option checked
once, before any pixel is enlarged or any model is loaded (the output's size included)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DiffdiffError
from ..imageio import MAX_PIXELS, check_aspect
from ..maps.upscale_strength import STRENGTH_SOURCES
from . import checks
from .inputs import Picture, StrengthMap, read_picture
from .parts import Gate, Output, Part, Sampling, Tiling, keywords_of
from .prompting import Prompting
from .requests import prompt_record, split_keywords

DEFAULT_STRENGTH = 0.35
UPSCALER_SUFFIXES = (".pth", ".safetensors")


@dataclass(frozen=True)
class Enlarge(Part):
    """How the image is enlarged and how strongly each pixel is refined: `scale`; `strength` (uniform) or
    `strength_from` detail|quadtree|map (a map file given as `map`) rescaled into [min, max]; an optional
    `upscaler` network (spandrel) before Lanczos."""

    scale: float = 2.0
    strength: float | None = None
    strength_from: str | None = None
    map_file: str | None = field(default=None, metadata={"keyword": "map"})
    min_strength: float = 0.0
    max_strength: float = 0.5
    upscaler: str | None = None

    def __post_init__(self):
        self._set("scale", checks.number(self.scale, "scale", 0.0, 16.0, low_open=True))
        source = "uniform" if self.strength_from is None else self.strength_from
        self._set("strength_from", checks.choice(source, STRENGTH_SOURCES, "strength source"))
        if self.strength is not None and self.strength_from != "uniform":
            raise DiffdiffError("give either --strength or --strength-from detail|quadtree|map, not both")
        if self.strength_from == "uniform":
            strength = DEFAULT_STRENGTH if self.strength is None else self.strength
            self._set("strength", checks.number(strength, "strength", 0.0, 1.0))
        self._set("min_strength", checks.number(self.min_strength, "min strength", 0.0, 1.0))
        self._set("max_strength", checks.number(self.max_strength, "max strength", 0.0, 1.0))
        if self.min_strength > self.max_strength:
            raise DiffdiffError(f"min strength ({self.min_strength:g}) must not exceed max strength "
                                f"({self.max_strength:g})")
        if (self.strength_from == "map") != (self.map_file is not None):
            raise DiffdiffError("--strength-from map needs --map FILE" if self.map_file is None
                                else "--map is used only with --strength-from map")
        if self.upscaler is not None:
            path = Path(self.upscaler)
            if path.suffix.lower() not in UPSCALER_SUFFIXES:
                raise DiffdiffError(f"upscaler model must be a .pth or .safetensors file, got {path.name}")
            if not path.is_file():
                raise DiffdiffError(f"upscaler model {path} not found")

    def target_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The enlarged (width, height): `scale` times, rounded to whole pixels, at least 8."""
        return tuple(max(8, round(side * self.scale)) for side in size)

    def record(self) -> dict:
        ranged = self.strength_from != "uniform"
        return {"scale": self.scale, "strength_from": self.strength_from, "strength": self.strength,
                "min_strength": self.min_strength if ranged else None,
                "max_strength": self.max_strength if ranged else None,
                "map": Path(self.map_file).name if self.map_file is not None else self.strength_from,
                "upscaler": Path(self.upscaler).name if self.upscaler is not None else "lanczos"}


@dataclass(frozen=True, eq=False)
class UpscaleRequest:
    """One upscale-refine: the image, the prompts, `enlarge`, `sampling`, `tiling` (tile "auto" means the
    model's native size) and, for `strength_from="map"`, the user's map read once."""

    image: Picture
    prompt: str = ""
    negative: str = ""
    enlarge: Enlarge = field(default_factory=Enlarge)
    sampling: Sampling = field(default_factory=Sampling)
    tiling: Tiling = field(default_factory=Tiling)
    user_map: StrengthMap | None = None
    prompting: Prompting = field(default_factory=Prompting)

    OPTION_GROUPS = (Enlarge, Sampling, Tiling, Prompting)

    def __post_init__(self):
        prompt_record(self.prompt, self.negative)
        width, height = self.enlarge.target_size(self.image.size)
        if width * height > MAX_PIXELS:
            raise DiffdiffError(f"the upscaled image would be {width}x{height}, above the "
                                f"{MAX_PIXELS:,}-pixel limit; use a smaller --scale")
        if self.sampling.denoise != 1.0 or self.sampling.batch != 1:
            raise DiffdiffError("upscale sets its strength with --strength / --strength-from and makes "
                                "one image")

    @classmethod
    def build(cls, image, prompt: str = "", *, negative: str = "", **keywords) -> UpscaleRequest:
        prompt_record(prompt, negative)
        enlarge, sampling, tiling, prompting = split_keywords(keywords, *cls.OPTION_GROUPS)
        prompting.check_prompts(prompt, negative)
        picture = read_picture(image)
        user_map = None
        if enlarge.map_file is not None:
            from ..maps import load_map

            values = load_map(enlarge.map_file)
            check_aspect(picture.size, values.shape)  # as edit: a map of another shape would be stretched
            user_map = StrengthMap(values, Path(enlarge.map_file).name)
        return cls(picture, prompt, negative, enlarge, sampling, tiling, user_map, prompting)

    def record(self, mean_strength: float) -> dict:
        """The settings as written to the PNG; `mean_strength` is the refine map's mean."""
        width, height = self.enlarge.target_size(self.image.size)
        sampling = keywords_of(self.sampling)
        del sampling["denoise"]
        return {"mode": "upscale", **prompt_record(self.prompt, self.negative), "width": width,
                "height": height, "image": self.image.name, **sampling, **keywords_of(Gate()),
                **keywords_of(self.tiling), **keywords_of(Output()), **self.enlarge.record(),
                "mean_strength": mean_strength, **self.prompting.record(self.prompt, self.negative)}
