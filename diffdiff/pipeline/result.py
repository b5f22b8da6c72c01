"""`RunResult`: what edit, generate and upscale return — the images, how they were made, and the run's
counts — and how it is saved (one PNG per image, each with its own metadata)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..imageio import output_paths, save_png
from ..metadata import parameters_text, settings_for_item


@dataclass
class RunResult:
    """`images`: the final PIL images (RGB composites; RGBA layers whose alpha is the opacity when the
    request asked for alpha). `opacities`: per image, the float32 (H, W) opacity of the generated pixels
    (None when not composited). `generated`: the raw decoded images before compositing. `settings`: the
    settings record (item k's seed is settings["seed"] + k). `stats`: the run's counts and seconds.
    """

    images: list[Image.Image]
    opacities: list[np.ndarray] | None
    generated: list[Image.Image]
    settings: dict
    stats: dict = field(default_factory=dict)

    def parameters(self, index: int = 0) -> str:
        """The A1111 `parameters` text of image `index`."""
        return parameters_text(settings_for_item(self.settings, index))

    def save(self, path, overwrite: bool = False) -> list[Path]:
        """Write image k to OUT.png (k = 0) or OUT-k.png, each with its own metadata; return the paths."""
        written = []
        for index, (target, image) in enumerate(zip(output_paths(path, len(self.images)), self.images)):
            settings = settings_for_item(self.settings, index)
            written.append(save_png(target, image, parameters=parameters_text(settings), settings=settings,
                                    overwrite=overwrite))
        return written
