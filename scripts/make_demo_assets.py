"""Write the bundled demo inputs: examples/demo.png (a synthetic 512×512 landscape) and a gradient map.

The landscape is drawn from fixed seeds (sky gradient, sun, hills with a grass texture, a house, a tree,
a lake), so the same run writes the same bytes. The map keeps the left third exactly (0) and then
ramps left-to-right to 1 (change fully). Usage: `python scripts/make_demo_assets.py [--out examples]`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 512


def _smooth_noise(rng: np.random.Generator, cells: int, size: int = SIZE) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled smoothly (compresses well)."""
    coarse = rng.uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).clip(-1.0, 1.0)


def landscape(seed: int = 2024) -> Image.Image:
    rng = np.random.default_rng(seed)
    rows = np.linspace(0.0, 1.0, SIZE, dtype=np.float32)[:, None]
    sky_top, sky_low = np.array([40, 90, 170], np.float32), np.array([200, 220, 240], np.float32)
    sky = sky_top + (sky_low - sky_top) * rows[..., None]
    pixels = np.broadcast_to(sky, (SIZE, SIZE, 3)).copy()

    horizon = 300 + 25 * _smooth_noise(rng, 5)[0] + 10 * np.sin(np.linspace(0, 3 * np.pi, SIZE))
    texture = 18 * _smooth_noise(rng, 64) + 10 * _smooth_noise(rng, 16)
    grass = np.array([70, 130, 50], np.float32)
    y = np.arange(SIZE)[:, None]
    ground = y >= horizon[None, :]
    depth = np.clip((y - horizon[None, :]) / 200.0, 0, 1)[..., None]
    ground_colour = grass * (0.8 + 0.4 * depth) + texture[..., None] * np.array([0.6, 1.0, 0.4])
    pixels = np.where(ground[..., None], ground_colour, pixels)

    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((380, 50, 450, 120), fill=(255, 230, 140))  # sun
    draw.ellipse((60, 400, 260, 470), fill=(60, 110, 160))  # lake
    draw.rectangle((300, 250, 400, 330), fill=(180, 90, 60))  # house
    draw.polygon([(290, 250), (350, 200), (410, 250)], fill=(110, 50, 40))  # roof
    draw.rectangle((340, 290, 362, 330), fill=(80, 50, 30))  # door
    draw.rectangle((130, 230, 145, 320), fill=(90, 60, 30))  # trunk
    draw.ellipse((95, 160, 180, 250), fill=(40, 100, 40))  # crown
    image = image.filter(ImageFilter.GaussianBlur(0.8))
    return image


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
    landscape().save(out / "demo.png", optimize=True)
    gradient_map().save(out / "gradient-map.png", optimize=True)
    print(out / "demo.png")
    print(out / "gradient-map.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
