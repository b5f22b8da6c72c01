"""The page's run settings: which request keywords it offers, how each is shown, and the keywords a run
builds from what the controls hold. Defaults and choices come from the request's own option groups."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import DiffdiffError
from ..models.families import UNET_DEFAULTS
from ..request import EditRequest, Sampling
from ..request.parts import keyword_of
from ..sampling import SAMPLERS, SCHEDULERS
from ..sampling.gate import GATE_MODES

TILE_CHOICES = ("auto", "off", "512", "768", "1024")


def request_default(keyword: str, family: str = "sd1"):
    """The default of an edit-request keyword, read from its option group; sampling settings the group
    leaves to the model family take `family`'s."""
    for part in EditRequest.OPTION_GROUPS:
        for part_field in fields(part):
            if keyword_of(part_field) == keyword:
                defaults = part().for_family(family) if part is Sampling else part()
                return getattr(defaults, part_field.name)
    raise KeyError(keyword)


@dataclass(frozen=True)
class Setting:
    """One control: the request `keyword`, its `label`, `kind` ("choice" | "slider" | "number" | "check"),
    `choices`, and a slider's `low`, `high` and `step`."""

    keyword: str
    label: str
    kind: str
    choices: tuple = ()
    low: float = 0
    high: float = 0
    step: float = 1

    @property
    def default(self):
        return self.default_for("sd1")

    def default_for(self, family: str):
        """The control's value for a model of `family` (sampling settings differ between families)."""
        value = request_default(self.keyword, family)
        return str(value) if self.kind == "choice" else value

    def read(self, value):
        """The request value of what the control holds: whole numbers as integers (a browser may send 7.0);
        everything else as it is, for the request's own checks (which read "512" as a tile size)."""
        if self.kind == "number" or self.kind == "slider" and self.step == 1:
            return _whole(value, self.label)
        return value


def _whole(value, label: str) -> int:
    if value is None or float(value) != int(float(value)):
        raise DiffdiffError(f"{label} must be a whole number; got {value!r}")
    return int(float(value))


SETTINGS: tuple[Setting, ...] = (
    Setting("sampler", "Sampler", "choice", tuple(SAMPLERS)),
    Setting("scheduler", "Scheduler", "choice", tuple(SCHEDULERS)),
    Setting("steps", "Steps", "slider", low=1, high=150),
    Setting("cfg", "CFG scale", "slider", low=0, high=30, step=0.5),
    Setting("seed", "Seed", "number"),
    Setting("batch", "Variations", "slider", low=1, high=8),
    Setting("gate", "Gate", "choice", GATE_MODES),
    Setting("tile", "Tiles", "choice", TILE_CHOICES),
    Setting("composite", "Composite (keep untouched pixels exact)", "check"),
)
SETTING_KEYWORDS = tuple(setting.keyword for setting in SETTINGS)
# The controls whose defaults depend on the model's family (sampler, scheduler, steps, CFG).
FAMILY_SETTINGS = tuple(setting for setting in SETTINGS if setting.keyword in UNET_DEFAULTS)


def family_control_values(family: str) -> list:
    """The FAMILY_SETTINGS controls' values for a model of `family`."""
    return [setting.default_for(family) for setting in FAMILY_SETTINGS]


def request_keywords(values) -> dict:
    """The request keywords from the controls' values (in SETTINGS order, or a {keyword: value} dict)."""
    if not isinstance(values, dict):
        values = dict(zip(SETTING_KEYWORDS, values))
    return {setting.keyword: setting.read(values[setting.keyword]) for setting in SETTINGS
            if setting.keyword in values}


def control_values(record: dict) -> list:
    """The controls' values (SETTINGS order) that reproduce a run's settings `record`."""
    return [str(record[s.keyword]) if s.kind == "choice" else record[s.keyword] for s in SETTINGS]
