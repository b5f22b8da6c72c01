"""Benchmark (not a test): new content in a fully masked hole, per pre-fill mode and with an inpainting model.

Day scenes of 256² pixels (seeds the demo model never saw). Two tasks, --scenes each:
- ground: a hole over the middle of the ground of a grass or sand scene, prompt asking for snow;
- roof: a hole over the house, prompt asking for another roof colour.
The prompt is the scene's full caption with the asked attribute changed. Success: the hole's interior mean
colour is nearer the asked colour than any other choice (GROUND_COLOURS / ROOF_COLOURS), and the rate of
success per variant is printed as a table (and JSON). Variants: each --fill mode with the demo model, then
the demo inpainting model (diffdiff/demo/demo-sd1-inpaint.safetensors) with each --inpaint-mask rule.

    .venv/bin/python bench/hole_filling.py [--scenes 30] [--steps 20] [--threads 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

SIZE = 256
FIRST_SEED = 9_300_000


def tasks(count: int) -> list[dict]:
    """(scene, hole, prompt, asked colour, choices) for the ground and roof tasks."""
    from diffdiff.demo.scenes import GROUND_COLOURS, ROOF_COLOURS, Attributes, caption, render

    found = []
    for index in range(count):
        seed = FIRST_SEED + index
        rng = np.random.default_rng(seed)
        ground = ("grass", "sand")[index % 2]
        attributes = Attributes(time="day", ground=ground, hills=bool(rng.integers(2)), roof=None)
        scene = render(attributes, SIZE, seed)
        hole = np.zeros((SIZE, SIZE), bool)
        hole[int(SIZE * 0.72):int(SIZE * 0.95), SIZE // 4:3 * SIZE // 4] = True
        hole &= scene.masks["ground"]
        target = dataclasses.replace(attributes, ground="snow")
        found.append(dict(task="ground", scene=scene, hole=hole, prompt=caption(target),
                          asked=GROUND_COLOURS["snow"], choices=list(GROUND_COLOURS.values())))
    roofs = list(ROOF_COLOURS)
    for index in range(count):
        seed = FIRST_SEED + 1000 + index
        roof = roofs[index % 3]
        attributes = Attributes(time="day", ground="grass", hills=True, roof=roof)
        scene = render(attributes, SIZE, seed)
        hole = cv2.dilate((scene.masks["house"] | scene.masks["roof"]).astype(np.uint8), np.ones((9, 9)),
                          iterations=1).astype(bool)
        asked = roofs[(index + 1 + index // 3) % 3]
        asked = asked if asked != roof else roofs[(index + 2) % 3]
        target = dataclasses.replace(attributes, roof=asked)
        found.append(dict(task="roof", scene=scene, hole=hole, measure=scene.masks["roof"],
                          prompt=caption(target), asked=ROOF_COLOURS[asked],
                          choices=list(ROOF_COLOURS.values())))
    return found


def success(pixels: np.ndarray, task: dict) -> bool:
    """Whether the measured region's mean colour is nearest the asked one among the choices."""
    region = task.get("measure", task["hole"])
    inner = cv2.erode(region.astype(np.uint8), np.ones((5, 5))).astype(bool)
    inner = inner if inner.any() else region
    mean = pixels[inner].reshape(-1, 3).mean(0)
    distances = [np.linalg.norm(mean - np.asarray(colour, np.float64)) for colour in task["choices"]]
    return task["choices"][int(np.argmin(distances))] == task["asked"]


def run(model, task: dict, steps: int, **options) -> bool:
    from diffdiff import pipeline

    strength = cv2.GaussianBlur(task["hole"].astype(np.float32), (0, 0), 2.0)  # a soft edge …
    strength[task["hole"]] = 1.0  # … around a fully masked hole
    result = pipeline.edit(Image.fromarray(task["scene"].pixels), strength, task["prompt"], model=model,
                           steps=steps, cfg=6.0, seed=2, **options)
    return success(np.asarray(result.images[0], np.float64), task)


def main() -> int:
    from diffdiff.demo import DEMO_INPAINT_MODEL, DEMO_MODEL
    from diffdiff.models import load_model
    from diffdiff.regions import FILL_MODES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=30)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the table here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = tasks(args.scenes)
    demo = load_model(DEMO_MODEL, device="cpu")
    inpainting = load_model(DEMO_INPAINT_MODEL, device="cpu")
    variants = [(f"fill {mode}", demo, {"fill": mode}) for mode in FILL_MODES]
    variants += [(f"inpainting model, mask {rule}", inpainting, {"inpaint_mask": rule})
                 for rule in ("gate", "map")]
    table = {}
    print(f"{'variant':34} {'ground→snow':>12} {'roof colour':>12} {'seconds':>8}")
    for name, model, options in variants:
        started = time.perf_counter()
        wins = {"ground": 0, "roof": 0}
        for task in work:
            wins[task["task"]] += run(model, task, args.steps, **options)
        seconds = time.perf_counter() - started
        table[name] = {**wins, "of": args.scenes, "seconds": round(seconds, 1)}
        print(f"{name:34} {wins['ground']:>7}/{args.scenes:<4} {wins['roof']:>7}/{args.scenes:<4} "
              f"{seconds:8.1f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(table, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
