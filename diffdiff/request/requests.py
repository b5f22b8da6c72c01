"""`EditRequest` and `GenerateRequest`: everything one run needs, validated once, and the settings record
it writes into its PNGs. The command line, the Python API (and any later caller) build one with `build`
from keywords; the pipeline then runs it without checking anything again."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from ..errors import DiffdiffError
from . import checks
from .inputs import Picture, StrengthMap, read_picture, read_strength
from .parts import Gate, Output, Part, Region, Sampling, Tiling, keyword_of, keywords_of
from .prompting import Prompting

MAX_GENERATE_SIDE = 16384


def keywords_for(*parts: type[Part]) -> tuple[str, ...]:
    """Every keyword the given option groups take, in field order."""
    return tuple(keyword_of(f) for part in parts for f in fields(part))


def split_keywords(keywords: dict, *parts: type[Part]) -> list[Part]:
    """One instance of each part from `keywords` (checked); an unknown keyword is an error naming the valid
    ones."""
    remaining = dict(keywords)
    built = [part.from_keywords(remaining) for part in parts]
    if remaining:
        valid = ", ".join(sorted(keywords_for(*parts)))
        raise DiffdiffError(f"unknown option(s) {', '.join(sorted(remaining))}; valid options: {valid}")
    return built


def with_family_defaults(request, family: str):
    """`request` (edit, generate or upscale) with its unset sampling settings taken from the model family's
    defaults; the request itself when none is unset."""
    sampling = request.sampling.for_family(family)
    return request if sampling is request.sampling else replace(request, sampling=sampling)


def prompt_record(prompt: str, negative: str) -> dict:
    return {"prompt": checks.text(prompt, "prompt"), "negative": checks.text(negative, "negative prompt")}


@dataclass(frozen=True, eq=False)
class EditRequest:
    """One differential edit: `image`, its `strength` map, the prompts and the option groups."""

    image: Picture
    strength: StrengthMap
    prompt: str
    negative: str = ""
    sampling: Sampling = field(default_factory=Sampling)
    gate: Gate = field(default_factory=Gate)
    tiling: Tiling = field(default_factory=Tiling)
    output: Output = field(default_factory=Output)
    prompting: Prompting = field(default_factory=Prompting)
    region: Region = field(default_factory=Region)

    OPTION_GROUPS = (Sampling, Gate, Region, Tiling, Output, Prompting)

    def __post_init__(self):
        prompt_record(self.prompt, self.negative)
        if self.strength.values.shape != self.image.pixels.shape[:2]:
            raise DiffdiffError("internal: the strength map must already be at the image's size")

    @classmethod
    def build(cls, image, strength_map, prompt: str, *, negative: str = "", **keywords) -> EditRequest:
        """Check the options, then read the image and the map (white = change) once."""
        prompt_record(prompt, negative)
        sampling, gate, region, tiling, output, prompting = split_keywords(keywords, *cls.OPTION_GROUPS)
        prompting.check_prompts(prompt, negative)
        picture = read_picture(image)
        strength = read_strength(strength_map, picture.size, invert=gate.invert)
        return cls(picture, strength, prompt, negative, sampling, gate, tiling, output, prompting,
                   region=region)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def record(self) -> dict:
        """The settings as written to the PNG (the model's name and hash are added by the pipeline)."""
        width, height = self.size
        return {"mode": "edit", **prompt_record(self.prompt, self.negative), "width": width, "height": height,
                "image": self.image.name, "map": self.strength.description, **keywords_of(self.sampling),
                **keywords_of(self.gate), **keywords_of(self.tiling), **keywords_of(self.output),
                **self.prompting.record(self.prompt, self.negative), **keywords_of(self.region)}


@dataclass(frozen=True, eq=False)
class GenerateRequest:
    """Text to image at `width`×`height` pixels."""

    prompt: str
    negative: str = ""
    width: int = 512
    height: int = 512
    sampling: Sampling = field(default_factory=Sampling)
    tiling: Tiling = field(default_factory=Tiling)
    prompting: Prompting = field(default_factory=Prompting)

    OPTION_GROUPS = (Sampling, Tiling, Prompting)

    def __post_init__(self):
        prompt_record(self.prompt, self.negative)
        for name in ("width", "height"):
            object.__setattr__(self, name, checks.count(getattr(self, name), name, 8, MAX_GENERATE_SIDE))
        if self.sampling.denoise != 1.0:
            raise DiffdiffError("denoise applies to edits of an image; generate always starts from noise")

    @classmethod
    def build(cls, prompt: str, *, negative: str = "", width: int = 512, height: int = 512,
              **keywords) -> GenerateRequest:
        prompt_record(prompt, negative)
        sampling, tiling, prompting = split_keywords(keywords, *cls.OPTION_GROUPS)
        prompting.check_prompts(prompt, negative)
        return cls(prompt, negative, width, height, sampling, tiling, prompting)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def record(self) -> dict:
        sampling = keywords_of(self.sampling)
        del sampling["denoise"]  # no source image: it does not apply
        return {"mode": "generate", **prompt_record(self.prompt, self.negative), "width": self.width,
                "height": self.height, **sampling, **keywords_of(self.tiling),
                **self.prompting.record(self.prompt, self.negative)}
