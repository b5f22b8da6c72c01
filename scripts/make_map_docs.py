"""Make the pictures for docs/maps.md: three map recipes run through the real `diffdiff map` commands.

Everything is synthetic: a drawn scene, a painted mask, a colour-coded region image, and a tiny depth model
with RANDOM weights (so its "depth" is meaningless; it only shows the mechanics). Run from the repository
root:  .venv/bin/python scripts/make_map_docs.py  (writes docs/images/maps-*.png).
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

from diffdiff.cli.main import main  # noqa: E402

SIZE = 256
IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


def draw_scene(path: Path) -> None:
    """A small landscape: sky gradient, sun, hills, a house, textured grass."""
    rng = np.random.default_rng(0)
    rows = np.linspace(0, 1, SIZE)[:, None, None]
    sky = (1 - rows) * np.array([110, 160, 230]) + rows * np.array([200, 225, 245])
    pixels = np.broadcast_to(sky, (SIZE, SIZE, 3)).copy()
    grass = np.array([70, 140, 60]) + rng.normal(0, 18, (SIZE, SIZE, 1))
    ground = np.arange(SIZE)[:, None] > 160 + 12 * np.sin(np.arange(SIZE)[None, :] / 30)
    pixels[ground] = grass[ground]
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((180, 30, 220, 70), fill=(250, 220, 90))
    draw.rectangle((60, 120, 130, 180), fill=(190, 110, 80))
    draw.polygon([(52, 122), (95, 85), (138, 122)], fill=(120, 60, 50))
    draw.rectangle((85, 145, 105, 180), fill=(90, 60, 40))
    image.save(path)


def paint_mask(path: Path) -> None:
    """A hand-painted-looking selection: the house's roof and a brush stroke in the sky, hard edged."""
    mask = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(mask)
    draw.polygon([(50, 124), (95, 82), (140, 124)], fill=255)
    draw.line([(150, 100), (185, 90), (220, 110)], fill=255, width=9)
    mask.save(path)


def colour_regions(path: Path) -> None:
    """Colour-coded regions: sky (blue), ground (green), house (red), sun (white)."""
    labels = Image.new("RGB", (SIZE, SIZE), (0, 0, 255))
    draw = ImageDraw.Draw(labels)
    ground = [(x, 160 + 12 * np.sin(x / 30)) for x in range(SIZE)] + [(SIZE, SIZE), (0, SIZE)]
    draw.polygon(ground, fill=(0, 255, 0))
    draw.rectangle((60, 120, 130, 180), fill=(255, 0, 0))
    draw.polygon([(52, 122), (95, 85), (138, 122)], fill=(255, 0, 0))
    draw.ellipse((180, 30, 220, 70), fill=(255, 255, 255))
    labels.filter(ImageFilter.ModeFilter(1)).save(path)


def make_tiny_depth_model(folder: Path) -> None:
    """A Depth Anything model of the real class with a tiny random Dinov2 backbone (not a trained model)."""
    import torch
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
                            patch_size=14, image_size=56, reshape_hidden_states=False,
                            out_features=["stage1", "stage2", "stage3", "stage4"])
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, patch_size=14,
                                 neck_hidden_sizes=[8] * 4, fusion_hidden_size=8, head_hidden_size=8)
    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      do_pad=False).save_pretrained(folder)


def run(*argv: str) -> None:
    """Run one `diffdiff` command (and echo it as the docs show it)."""
    print("diffdiff " + " ".join(shlex.quote(a) for a in argv))
    if main(list(argv)) != 0:
        sys.exit(f"command failed: diffdiff {' '.join(argv)}")


def main_script() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        draw_scene(Path("photo.png"))
        paint_mask(Path("mask.png"))
        colour_regions(Path("regions.png"))
        make_tiny_depth_model(Path("tiny-depth"))

        # Recipe 1: soft-edged inpaint
        run("map", "feather", "mask.png", "--radius", "10", "-o", "soft.png")
        run("map", "preview", "photo.png", "soft.png", "-o", str(IMAGES / "maps-soft-inpaint.png"),
            "--overwrite")

        # Recipe 2: several strengths in one map
        run("map", "regions", "regions.png", "--table",
            '{"#0000ff": 0.6, "#00ff00": 0.3, "#ff0000": 1.0, "#ffffff": 0.0}', "-o", "regions-map.png")
        run("map", "feather", "regions-map.png", "--radius", "4", "-o", "regions-soft.png")
        run("map", "preview", "photo.png", "regions-soft.png", "-o", str(IMAGES / "maps-regions.png"),
            "--overwrite")

        # Recipe 3: depth (tiny RANDOM model: the picture shows the mechanics, not real depth)
        run("map", "depth", "photo.png", "--model", "tiny-depth", "-o", "depth.png")
        run("map", "preview", "photo.png", "depth.png", "-o", str(IMAGES / "maps-depth.png"), "--overwrite")


if __name__ == "__main__":
    main_script()
