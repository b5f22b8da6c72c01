"""Write the bundled demo inputs: a 512×512 landscape from the demo scenes and two strength maps.

- examples/demo.png: `diffdiff.demo.scenes.render(DEMO_ATTRIBUTES, 512, DEMO_SEED)` — a day scene with a
  red-roofed house, a lake, trees and hills, drawn the way the demo model's training scenes are.
- examples/sky-map.png: white (change fully) over the sky, black (keep exactly) over the ground, the house
  and the trees, with a ramp over the 8 sky pixels next to them so the new sky blends in.
- examples/gradient-map.png: black over the left third, then a ramp to white at the right edge.
The same run writes the same bytes. Usage: `python scripts/make_demo_assets.py [--out examples]`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from diffdiff.demo.scenes import DEMO_ATTRIBUTES, DEMO_SEED, land, render

SIZE = 512
SKY_RAMP = 8  # pixels over which the sky map rises from 0 at the kept regions to 1


def sky_map(masks: dict[str, np.ndarray]) -> Image.Image:
    """1 over the sky, 0 over everything standing on the ground, rising over `SKY_RAMP` pixels."""
    distance = cv2.distanceTransform((~land(masks)).astype(np.uint8), cv2.DIST_L2, 5)
    values = np.clip(distance / SKY_RAMP, 0.0, 1.0)
    return Image.fromarray(np.round(values * 255).astype(np.uint8))


def gradient_map() -> Image.Image:
    """Black (keep) over the left third, then a ramp to white (change fully) at the right edge."""
    keep = SIZE // 3
    ramp = np.linspace(0.0, 255.0, SIZE - keep)
    values = np.round(np.concatenate([np.zeros(keep), ramp])).astype(np.uint8)
    return Image.fromarray(np.tile(values, (SIZE, 1)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "examples"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scene = render(DEMO_ATTRIBUTES, SIZE, DEMO_SEED)
    written = {"demo.png": Image.fromarray(scene.pixels), "sky-map.png": sky_map(scene.masks),
               "gradient-map.png": gradient_map()}
    for name, image in written.items():
        image.save(out / name, optimize=True)
        print(out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
