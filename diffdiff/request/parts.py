"""The option groups of a request — `Sampling`, `Gate`, `Region`, `Tiling`, `Output` — each a frozen dataclass
that checks its values once, in its constructor, with the one-line messages the command line prints.

A field's name is its Python keyword (`edit(..., steps=20)`) and its command-line flag (`--steps`), unless
its metadata names another keyword (`Gate.mode` is `gate=` / `--gate`). So a new option is one field with
its check here, one flag, and its consumer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from .. import composite as compositing
from ..errors import DiffdiffError
from ..regions import FILL_MODES
from ..sampling import GATE_MODES, SAMPLERS, SCHEDULERS, STRENGTH_LEVELS
from ..tiles import BLENDS
from . import checks

MAX_SEED = 2**63 - 1
MAX_SCHEDULE_STEPS = 10_000  # σ values one run may schedule (steps / denoise of them)


def keyword_of(part_field) -> str:
    """The keyword (and flag) under which a field is given: its metadata's "keyword", else its name."""
    return part_field.metadata.get("keyword", part_field.name)


def keywords_of(part) -> dict:
    """{keyword: value} of a part instance: what the settings record and the Python API call it."""
    return {keyword_of(f): getattr(part, f.name) for f in fields(part)}


class Part:
    """Base of the option groups: `_set` stores a normalised value on the frozen instance."""

    def _set(self, name: str, value) -> None:
        object.__setattr__(self, name, value)

    @classmethod
    def from_keywords(cls, keywords: dict):
        """Build from the keywords that belong to this part, taking them out of `keywords`."""
        return cls(**{f.name: keywords.pop(keyword_of(f)) for f in fields(cls) if keyword_of(f) in keywords})


@dataclass(frozen=True)
class Sampling(Part):
    """How the sampler runs: ComfyUI's sampler and scheduler names, steps, CFG scale, seed, overall
    denoise, the batch (item k uses seed + k), the distilled `guidance` of networks that embed one (Flux
    dev and Fill) and SD3's skip-layer guidance (`slg` scale, 0 = off, over the blocks `slg_layers`).
    Sampler, scheduler, steps, CFG and guidance left None take the model family's defaults when the model
    is known (`for_family`)."""

    sampler: str | None = None
    scheduler: str | None = None
    steps: int | None = None
    cfg: float | None = None
    seed: int = 0
    denoise: float = 1.0
    batch: int = 1
    guidance: float | None = None
    slg: float = 0.0
    slg_layers: tuple[int, ...] = (7, 8, 9)

    def __post_init__(self):
        if self.sampler is not None:
            self._set("sampler", checks.choice(self.sampler, tuple(SAMPLERS), "sampler"))
        if self.scheduler is not None:
            self._set("scheduler", checks.choice(self.scheduler, SCHEDULERS, "scheduler"))
        if self.steps is not None:
            self._set("steps", checks.count(self.steps, "steps", 1, 1000))
        if self.cfg is not None:
            self._set("cfg", checks.number(self.cfg, "cfg", 0.0, 100.0))
        if self.guidance is not None:
            self._set("guidance", checks.number(self.guidance, "guidance", 0.0, 100.0))
        self._set("slg", checks.number(self.slg, "slg", 0.0, 10.0))
        self._set("slg_layers", checks.layer_list(self.slg_layers, "slg layers"))
        self._set("batch", checks.count(self.batch, "batch", 1, 64))
        self._set("seed", checks.count(self.seed, "seed", 0, MAX_SEED - (self.batch - 1)))
        self._set("denoise", checks.number(self.denoise, "denoise", 0.0, 1.0, low_open=True))
        steps = self.steps or 1
        if self.denoise <= 0.9999 and steps / self.denoise > MAX_SCHEDULE_STEPS:
            levels = steps / self.denoise
            raise DiffdiffError(
                f"denoise {self.denoise:g} with {steps} steps would schedule {levels:.3g} noise levels "
                f"(at most {MAX_SCHEDULE_STEPS:,}); raise denoise or use fewer steps")

    def for_family(self, family: str) -> Sampling:
        """These settings with every unset one taken from the model family's defaults (and its guidance)."""
        from ..models.families import FAMILY_TABLE

        table = FAMILY_TABLE[family]
        unset = {name: value for name, value in table.defaults.items() if getattr(self, name) is None}
        if self.guidance is None and table.guidance is not None:
            unset["guidance"] = table.guidance
        return replace(self, **unset) if unset else self

    def seeds(self) -> list[int]:
        """The seed of each batch item."""
        return [self.seed + k for k in range(self.batch)]

    def sampler_arguments(self) -> dict:
        """The keywords `diffdiff.sampling.sample` takes from here: every field but the CFG scale (the
        model's denoiser takes it) and the batch (the latent's size), with one seed per item."""
        if self.steps is None:
            raise ValueError("internal: sampling settings used before the family's defaults were applied")
        arguments = {f.name: getattr(self, f.name) for f in fields(self)
                     if f.name not in ("cfg", "batch", "guidance", "slg", "slg_layers")}
        arguments["seed"] = self.seeds()
        return arguments


@dataclass(frozen=True)
class Gate(Part):
    """How the strength map is applied: the gate mode, the soft gate strength, whether the map is read
    inverted (white = keep, the paper's convention), and the strength levels: "continuous" (the exact
    gate's default: a pixel between two steps' thresholds enters part-way) or "steps" (one level per step,
    the comfy and mask gates' only choice)."""

    mode: str = field(default="exact", metadata={"keyword": "gate"})
    strength: float = field(default=1.0, metadata={"keyword": "gate_strength"})
    invert: bool = field(default=False, metadata={"keyword": "invert_map"})
    levels: str | None = field(default=None, metadata={"keyword": "strength_levels"})

    def __post_init__(self):
        self._set("mode", checks.choice(self.mode, GATE_MODES, "gate mode"))
        if self.levels is None:
            self._set("levels", "continuous" if self.mode == "exact" else "steps")
        self._set("levels", checks.choice(self.levels, STRENGTH_LEVELS, "strength levels"))
        if self.levels == "continuous" and self.mode != "exact":
            raise DiffdiffError(f"strength levels 'continuous' need the exact gate; --gate {self.mode} "
                                "moves a pixel one step at a time")
        self._set("strength", checks.number(self.strength, "gate strength", 0.0, 1.0, low_open=True))
        self._set("invert", checks.flag(self.invert, "invert_map"))


CROP_MODES = ("auto", "on", "off")
INPAINT_MASKS = ("map", "gate")


@dataclass(frozen=True)
class Region(Part):
    """Where the edit happens and what the model starts from there (see `diffdiff.regions`):
    - `crop`: edit only crops around the map's regions, each scaled up towards the model's native area, then
      stitched back ("auto": when the regions cover at most half of an image larger than the native area);
      `context`: pixels of surroundings around each region (None: half the region's longer side, ≥ 32);
    - `fill`: pre-fill pixels whose strength is at least `fill_threshold` before encoding;
    - `inpaint_mask`: for inpainting checkpoints, whether the mask input stays the map's non-zero area
      ("map", the default: the binary mask such models are trained on) or follows the gate step by step
      ("gate")."""

    crop: str = "auto"
    context: int | None = None
    fill: str = "none"
    fill_threshold: float = 0.9
    inpaint_mask: str = "map"

    def __post_init__(self):
        self._set("crop", checks.choice(self.crop, CROP_MODES, "crop mode"))
        if self.context is not None:
            self._set("context", checks.count(self.context, "context", 0, 16384))
        self._set("fill", checks.choice(self.fill, FILL_MODES, "fill mode"))
        self._set("fill_threshold", checks.number(self.fill_threshold, "fill threshold", 0.0, 1.0,
                                                  low_open=True))
        self._set("inpaint_mask", checks.choice(self.inpaint_mask, INPAINT_MASKS, "inpaint mask"))


@dataclass(frozen=True)
class Tiling(Part):
    """Tiles of the network (`tile`, `overlap`, `blend`, `tile_batch`) and of the VAE (`vae_tile`), in
    pixels; "auto" tiles when the image needs it (see `diffdiff.pipeline.tiling`)."""

    tile: str | int = "auto"
    overlap: int | None = None
    blend: str = "mixture"
    tile_batch: int = 4
    vae_tile: str | int = "auto"

    def __post_init__(self):
        self._set("tile", checks.tile_size(self.tile, "tile"))
        self._set("vae_tile", checks.tile_size(self.vae_tile, "vae tile"))
        self._set("blend", checks.choice(self.blend, BLENDS, "blend"))
        self._set("tile_batch", checks.count(self.tile_batch, "tile batch", 1, 1024))
        if self.overlap is not None:
            self._set("overlap", checks.count(self.overlap, "overlap", 0, 4096))
            if self.overlap % 8:
                raise DiffdiffError(f"overlap must be a multiple of 8 pixels; got {self.overlap!r}")
            for size in (self.tile, self.vae_tile):
                if isinstance(size, int) and self.overlap >= size:
                    raise DiffdiffError(f"overlap ({self.overlap}) must be smaller than the tile size "
                                        f"({size})")


@dataclass(frozen=True)
class Output(Part):
    """What an edit returns: the change-aware composite (or the raw decode), as RGB or as an RGBA layer whose
    alpha is the composite's opacity, and the composite's soft-inpainting controls (`diffdiff.composite`):
    the latent difference at which the new pixels get half the weight, the steepness of that transition,
    and the share of the opacity that follows the map instead of the measured change."""

    composite: bool = True
    alpha: bool = False
    difference_threshold: float = compositing.DIFFERENCE_THRESHOLD
    difference_contrast: float = compositing.DIFFERENCE_CONTRAST
    mask_influence: float = compositing.MASK_INFLUENCE

    def __post_init__(self):
        self._set("composite", checks.flag(self.composite, "composite"))
        self._set("alpha", checks.flag(self.alpha, "alpha"))
        self._set("difference_threshold", checks.number(self.difference_threshold, "difference threshold",
                                                        0.0, 100.0, low_open=True))
        self._set("difference_contrast", checks.number(self.difference_contrast, "difference contrast",
                                                       0.0, 100.0, low_open=True))
        self._set("mask_influence", checks.number(self.mask_influence, "mask influence", 0.0, 1.0))
        if self.alpha and not self.composite:
            raise DiffdiffError("alpha output is the composite's opacity; drop --no-composite to use --alpha")
