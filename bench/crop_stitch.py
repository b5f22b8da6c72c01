"""Benchmark (not a test): crop & stitch against editing the whole image, for a small map on a large photo.

A procedural landscape of --width × --height pixels (default 6000×4000) with a --hole × --hole square map
(default 300), both written as PNG files, is edited from those files with the demo model twice, each in a
fresh process so peak memory is its own:
`crop=on` (the default "auto" picks it here) and `crop=off` (the whole image, tiled where the planner says,
idle tiles skipped). Prints wall time, peak resident memory, the crop's box and edit size (its effective
resolution: edit pixels per image pixel), and that the pixels outside the map are the input's in both.

    .venv/bin/python bench/crop_stitch.py [--width 6000] [--height 4000] [--hole 300] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def write_inputs(args, folder: Path) -> None:
    """The scene and its map as PNG files in `folder` (image.png, map.png)."""
    import numpy as np
    from PIL import Image

    from diffdiff.demo.scenes import Attributes, render

    scene = render(Attributes(time="day", ground="grass", hills=True, lake=True), (args.height, args.width),
                   seed=12)
    Image.fromarray(scene.pixels).save(folder / "image.png")
    strength = np.zeros((args.height, args.width), np.uint8)
    top, left = args.height // 2, args.width // 3
    strength[top:top + args.hole, left:left + args.hole] = 255
    Image.fromarray(strength).save(folder / "map.png")


def run_variant(args) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from diffdiff import pipeline
    from diffdiff.demo import DEMO_MODEL
    from diffdiff.models import load_model

    torch.set_num_threads(args.threads)
    folder = Path(args.inputs)
    model = load_model(DEMO_MODEL, device="cpu")
    started = time.perf_counter()
    result = pipeline.edit(folder / "image.png", folder / "map.png", "a lake at sunset", model=model,
                           steps=args.steps, cfg=5.0, seed=1, crop=args.variant)
    seconds = time.perf_counter() - started
    after = np.asarray(result.images[0])
    keep = np.asarray(Image.open(folder / "map.png")) == 0
    outside_kept = bool(np.array_equal(after[keep], np.asarray(Image.open(folder / "image.png"))[keep]))
    crops = result.settings.get("crops", [])
    scales = []
    for crop in crops:
        box, size = crop.split("@")
        scales.append(int(size.split("x")[0]) / int(box.split(",")[2].split("x")[0]))
    return {"crop": args.variant, "seconds": round(seconds, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "crops": crops, "scale": scales, "outside_kept": outside_kept,
            "network_calls": result.stats.get("network_calls"), "tiles": result.settings.get("tiles")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--hole", type=int, default=300)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", choices=("on", "off"), help=argparse.SUPPRESS)  # one run, in a child
    parser.add_argument("--inputs", help=argparse.SUPPRESS)  # the child's folder of image.png and map.png
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="crop-bench-") as folder:
        write_inputs(args, Path(folder))
        for variant in ("on", "off"):
            child = [sys.executable, __file__, "--variant", variant, "--inputs", folder, "--steps",
                     str(args.steps), "--threads", str(args.threads)]
            output = subprocess.run(child, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]))
    crop, whole = rows
    print(f"{args.width}x{args.height}, {args.hole}px map, {args.steps} steps: crop {crop['seconds']} s / "
          f"{crop['peak_rss_mb']} MB, whole image {whole['seconds']} s / {whole['peak_rss_mb']} MB; "
          f"time ratio {crop['seconds'] / whole['seconds']:.3f}, crop scale {crop['scale']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
