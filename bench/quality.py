"""Quality of the demo model (or any single-file SD1 model): what its VAE loses, how closely an edit follows
the strength map, whether tiles and masks leave seams, whether kept pixels drift, and whether prompts move a
measured property the right way. Prints one table line per figure (value, target, met) and writes every
number with the settings, date and machine as JSON. Figures are reported, never asserted.

Scenes come from `diffdiff.demo.scenes` with held-out seeds (≥ 10,000,000; training uses seeds below
1,000,000); the photo is `skimage.data.chelsea()` (CC0), cropped to multiples of 8. Edits run untiled, euler /
normal, cfg 6, 20 steps (fewer under --quick), each section at the size the table names.

1. VAE reconstruction PSNR (dB) of scenes and of the photo, whole and through the tiled VAE.
2. Tiled-VAE colour shift: CIE ΔE76 (L*a*b* from OpenCV's float conversion, D65) between the tiled and the
   untiled decode of the same latents, averaged per decode tile; the max and mean over tiles.
3. Adherence (Differential Diffusion's correlation check): a day scene edited towards "a night sky with
   stars" under a horizontal ramp map (0 at the left, 1 at the right); change per column = mean ΔE76 of
   output vs input; Spearman correlation of map value and change, at two step counts; distinct change
   levels: columns binned by map value (one bin per latent column), neighbouring bins on the same plateau
   when their mean change differs by at most half a straight ramp's step (see
   `quality_measures.distinct_levels`).
4. Seams: (a) a full-strength edit, raw decode (no composite, so compositing cannot hide a seam), untiled
   and network-tiled with each blend: gradient energy across the tile edges ÷ the interior (spot's windows
   move every step, so its grid lines are nominal); the untiled result at the same lines for reference.
   (b) a hard-mask edit (left half 0, right half 1): the same ratio at the mask edge, with and without the
   change-aware composite, and the input's own ratio there.
5. Drift: five edits in a row, each output the next input, with one map that is 0 on its left part: pixels
   under map 0 that differ from the original (any channel) after each round — must be 0.
6. Prompt following: per pair of prompts, the fraction of trials (each a different held-out scene and noise
   seed, the two prompts on the same input and seed) in which the region's measured property moves the
   expected way (strictly).

Usage: python bench/quality.py [--model PATH (default: the demo model)] [--quick] [--json PATH (default
.cache/quality.json)] [--threads N (torch threads, default 1)]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality_measures as qm  # noqa: E402

from diffdiff.demo.data import HELD_OUT_SEEDS as HELD_OUT  # noqa: E402  (first seed never trained on)

ROOT = Path(__file__).resolve().parents[1]

FULL = dict(vae_size=512, vae_scenes=6, vae_tile=256, vae_overlap=32, photo_crop=None, cfg=6.0, steps=20,
            adherence_size=256, adherence_steps=(20, 4), seam_size=512, seam_tile=256, seam_overlap=64,
            mask_size=256, drift_size=256, drift_steps=20, drift_rounds=5, prompt_size=256, prompt_trials=20)
QUICK = dict(FULL, vae_size=128, vae_scenes=2, vae_tile=64, vae_overlap=16, photo_crop=(128, 192), steps=4,
             adherence_size=128, adherence_steps=(4, 2), seam_size=128, seam_tile=64, seam_overlap=16,
             mask_size=128, drift_size=64, drift_steps=2, prompt_size=128, prompt_trials=2)

ADHERENCE_SCENE = dict(time="day", ground="grass", hills=True, lake=True, roof="red", trees=2, orb=True)

# Prompt pairs: name, scene group, prompt, contrasting prompt, property, direction (+1: higher, -1: lower).
PAIRS = (
    ("night sky is darker", "sky", "a night sky with stars", "a blue sky with the sun", "luminance", -1),
    ("sunset sky is warmer", "sky", "a sunset sky", "a blue sky with the sun", "warmth", +1),
    ("stars are brighter points", "night", "a night sky with stars", "a dark night sky", "bright_points", +1),
    ("snowy ground is whiter", "ground", "snowy hills", "green hills", "whiteness", +1),
    ("sand ground is yellower", "ground", "sand dunes", "green hills", "yellowness", +1),
    ("red house has a red roof", "house", "a red house", "a blue house", "red", +1),
    ("blue house has a blue roof", "house", "a blue house", "a red house", "blue", +1),
)
PROPERTIES = {
    "luminance": qm.luminance, "warmth": qm.warmth, "bright_points": qm.bright_points,
    "whiteness": qm.whiteness, "yellowness": qm.yellowness,
    "red": lambda pixels, mask: qm.hue_fraction(pixels, mask, "red"),
    "blue": lambda pixels, mask: qm.hue_fraction(pixels, mask, "blue"),
}
GROUP_OFFSETS = {"sky": 100_000, "night": 200_000, "ground": 300_000, "house": 400_000}


class Table:
    """The printed table's rows: name, value (formatted), target text and whether it is met (None: no
    target)."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, name: str, value: float, unit: str = "", digits: int = 2, target: str = "", met=None):
        text = "nan" if value is None or not math.isfinite(value) else f"{value:.{digits}f}{unit}"
        self.rows.append({"name": name, "value": value, "text": text, "target": target,
                          "met": None if met is None else bool(met)})

    def print(self):
        print(f"{'measurement':<60} {'value':>10}  {'target':<9} met")
        for row in self.rows:
            met = "-" if row["met"] is None else ("yes" if row["met"] else "NO")
            print(f"{row['name']:<60} {row['text']:>10}  {row['target']:<9} {met}")


def edit_pixels(model, pixels: np.ndarray, strength, prompt: str, s: dict, *, steps: int | None = None,
                seed: int = 1, **options) -> np.ndarray:
    """One edit of uint8 `pixels` with the bench's sampler settings; the first image as uint8 RGB."""
    from PIL import Image

    from diffdiff.pipeline import edit

    options = {"tile": "off", "vae_tile": "off", **options}
    result = edit(Image.fromarray(pixels), strength, prompt, model=model, steps=steps or s["steps"],
                  cfg=s["cfg"], seed=seed, **options)
    return np.asarray(result.images[0].convert("RGB"))


def held_out_scene(seed: int, size: int, **override):
    """A scene of random attributes drawn from `seed` (`override` replaces some), rendered at `seed`."""
    from diffdiff.demo.scenes import random_attributes, render

    attributes = random_attributes(np.random.default_rng([seed, 2]))
    return render(dataclasses.replace(attributes, **override), size, seed)


def photo(crop) -> np.ndarray:
    """skimage's chelsea (CC0), centre-cropped to `crop` (h, w) or else to multiples of 8."""
    from diffdiff.demo.data import HELD_OUT_PHOTO
    from diffdiff.demo.data import photo as sample_photo

    image = sample_photo(HELD_OUT_PHOTO)
    height, width = crop or (image.shape[0] // 8 * 8, image.shape[1] // 8 * 8)
    top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return np.ascontiguousarray(image[top:top + height, left:left + width])


def measure_vae(model, s: dict, table: Table) -> dict:
    """PSNR of whole and tiled VAE round trips, and the per-tile ΔE76 of a tiled vs untiled decode."""
    codec, tile, overlap = model.vae_codec, s["vae_tile"], s["vae_overlap"]
    images = {f"scene {HELD_OUT + i}": held_out_scene(HELD_OUT + i, s["vae_size"]).pixels
              for i in range(s["vae_scenes"])}
    images["photo"] = photo(s["photo_crop"])
    per_image = {}
    for name, pixels in images.items():
        latents = codec.encode(pixels)
        whole = codec.decode(latents)[0]
        tiled = codec.decode(codec.encode(pixels, tile=tile, overlap=overlap), tile=tile, overlap=overlap)[0]
        boxes = qm.core_boxes(*pixels.shape[:2], tile, codec.factor)
        shifts = qm.mean_delta_e_per_box(codec.decode(latents, tile=tile, overlap=overlap)[0], whole, boxes)
        per_image[name] = {"size": list(pixels.shape[:2]), "psnr_whole": qm.psnr(pixels, whole),
                           "psnr_tiled": qm.psnr(pixels, tiled), "tiles": len(boxes),
                           "delta_e_per_tile": shifts}
    scenes = [v for k, v in per_image.items() if k != "photo"]
    result = {"scene_size": s["vae_size"], "tile": tile, "overlap": overlap, "images": per_image}
    for kind in ("whole", "tiled"):
        result[f"scenes_psnr_{kind}"] = float(np.mean([v[f"psnr_{kind}"] for v in scenes]))
        result[f"scenes_psnr_{kind}_min"] = float(np.min([v[f"psnr_{kind}"] for v in scenes]))
        result[f"photo_psnr_{kind}"] = per_image["photo"][f"psnr_{kind}"]
    size, photo_hw = s["vae_size"], "x".join(str(v) for v in per_image["photo"]["size"])
    for kind, how in (("whole", "whole"), ("tiled", f"tiled {tile}/{overlap} px")):
        value = result[f"scenes_psnr_{kind}"]
        table.add(f"VAE PSNR, {len(scenes)} scenes {size}², {how} (mean)", value, " dB", 1, ">= 30 dB",
                  value >= 30)
        value = result[f"photo_psnr_{kind}"]
        table.add(f"VAE PSNR, photo {photo_hw}, {how}", value, " dB", 1, ">= 24 dB", value >= 24)
    shifts = [d for v in per_image.values() for d in v["delta_e_per_tile"]]
    colour = {"metric": "CIE dE76 (OpenCV float Lab)", "tiles": len(shifts), "max": float(np.max(shifts)),
              "mean": float(np.mean(shifts))}
    table.add(f"tiled-VAE colour shift dE76, max over {len(shifts)} tiles", colour["max"], "", 2, "<= 1",
              colour["max"] <= 1)
    table.add("tiled-VAE colour shift dE76, mean over tiles", colour["mean"], "", 2, "<= 1",
              colour["mean"] <= 1)
    return {"vae_psnr": result, "vae_colour_shift": colour}


def measure_adherence(model, s: dict, table: Table) -> dict:
    """Spearman correlation of a ramp map's value and the change per column, and distinct change levels."""
    from diffdiff.demo.scenes import Attributes, render

    size = s["adherence_size"]
    scene = render(Attributes(**ADHERENCE_SCENE), size, HELD_OUT + 1000)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    strength = np.ascontiguousarray(np.broadcast_to(ramp[None, :], (size, size)))
    prompt = "a night sky with stars"
    runs = []
    for steps in s["adherence_steps"]:
        out = edit_pixels(model, scene.pixels, strength, prompt, s, steps=steps, seed=HELD_OUT + 1000)
        change = qm.change_per_column(scene.pixels, out)
        levels, bin_means = qm.distinct_levels(ramp, change, size // model.vae_codec.factor)
        runs.append({"steps": steps, "spearman": qm.spearman(ramp, change), "distinct_levels": levels,
                     "bins": len(bin_means), "change_per_bin": bin_means,
                     "change_at_map_0": float(change[0]), "change_at_map_1": float(change[-1])})
    first = True
    for run in runs:
        target = ">= 0.95" if first else ""
        table.add(f"adherence Spearman, ramp map, {size}², {run['steps']} steps", run["spearman"], "", 3,
                  target, run["spearman"] >= 0.95 if first else None)
        table.add(f"adherence distinct change levels ({run['bins']} bins), {run['steps']} steps",
                  run["distinct_levels"], "", 0)
        first = False
    return {"adherence": {"size": size, "prompt": prompt, "scene": ADHERENCE_SCENE, "metric": "dE76",
                          "runs": runs}}


def measure_seams(model, s: dict, table: Table) -> dict:
    """Gradient energy across network tile edges (each blend) and across a hard mask's edge."""
    from diffdiff.demo.scenes import caption
    from diffdiff.request import Tiling
    from diffdiff.tiles import BLENDS, plan_grid

    factor, size, tile, overlap = model.vae_codec.factor, s["seam_size"], s["seam_tile"], s["seam_overlap"]
    scene = held_out_scene(HELD_OUT + 2000, size)
    prompt = caption(scene.attributes)
    tiles = plan_grid(size // factor, size // factor, tile // factor, overlap // factor)
    xs, ys = qm.tile_border_lines(tiles, factor, size, size)
    seed = HELD_OUT + 2000
    untiled = edit_pixels(model, scene.pixels, 1.0, prompt, s, seed=seed, composite=False)
    network = {"size": size, "tile": tile, "overlap": overlap, "tiles": len(tiles), "prompt": prompt,
               "border_x": xs, "border_y": ys, "untiled_ratio": qm.border_ratio(untiled, xs, ys),
               "blends": {}}
    default = Tiling().blend
    for blend in BLENDS:
        tiled = edit_pixels(model, scene.pixels, 1.0, prompt, s, seed=seed, composite=False, tile=tile,
                            overlap=overlap, blend=blend)
        network["blends"][blend] = qm.border_ratio(tiled, xs, ys)
        is_default = blend == default
        table.add(f"seams: tile edges ÷ interior, {blend}{' (default)' if is_default else ''}, "
                  f"{size}² t{tile}/{overlap}", network["blends"][blend], "", 3,
                  "<= 1.1" if is_default else "", network["blends"][blend] <= 1.1 if is_default else None)
    table.add("seams: same lines, untiled edit (reference)", network["untiled_ratio"], "", 3)

    size = s["mask_size"]
    scene = held_out_scene(HELD_OUT + 2100, size)
    strength = np.zeros((size, size), np.float32)
    strength[:, size // 2:] = 1.0
    mask = {"size": size, "prompt": "snowy hills at night", "edge_x": size // 2,
            "input_ratio": qm.border_ratio(scene.pixels, [size // 2], [])}
    for composite in (True, False):
        out = edit_pixels(model, scene.pixels, strength, mask["prompt"], s, seed=seed, composite=composite)
        mask[f"composite_{str(composite).lower()}_ratio"] = qm.border_ratio(out, [size // 2], [])
        table.add(f"seams: hard-mask edge ÷ interior, {size}², composite {'on' if composite else 'off'}",
                  mask[f"composite_{str(composite).lower()}_ratio"], "", 3)
    table.add("seams: same edge in the input (reference)", mask["input_ratio"], "", 3)
    return {"seams": {"network": network, "hard_mask": mask}}


def measure_drift(model, s: dict, table: Table) -> dict:
    """Pixels under map 0 that changed after each of several edits fed back as input."""
    size, rounds = s["drift_size"], s["drift_rounds"]
    scene = held_out_scene(HELD_OUT + 3000, size)
    strength = np.zeros((size, size), np.float32)
    start = size * 3 // 8
    strength[:, start:] = np.linspace(0.0, 1.0, size - start, dtype=np.float32)[None, :]  # 0 at its start too
    keep = strength == 0
    current, changed, moved = scene.pixels, [], []
    for index in range(rounds):
        current = edit_pixels(model, current, strength, "snowy hills at night", s, steps=s["drift_steps"],
                              seed=HELD_OUT + 3000 + index)
        differs = np.any(current != scene.pixels, axis=-1)
        changed.append(int(np.count_nonzero(differs & keep)))
        moved.append(float(np.count_nonzero(differs & ~keep) / np.count_nonzero(~keep)))
    table.add(f"drift: map-0 px changed, {rounds} chained edits, {size}²", changed[-1], "", 0, "== 0",
              changed[-1] == 0)
    return {"drift": {"size": size, "rounds": rounds, "steps": s["drift_steps"],
                      "map_zero_pixels": int(keep.sum()), "changed_per_round": changed,
                      "changed": changed[-1], "changed_fraction_elsewhere_per_round": moved}}


def _group_inputs(group: str, trial: int, size: int):
    """The scene, strength map and measured region of one prompt-following trial of `group`."""
    seed = HELD_OUT + GROUP_OFFSETS[group] + trial
    rng = np.random.default_rng([seed, 3])
    override = {}
    if group == "night":
        override = {"time": "night", "stars": bool(rng.random() < 0.5)}
    elif group == "house":
        override = {"roof": ("red", "blue", "green")[rng.integers(3)]}
    scene = held_out_scene(seed, size, **override)
    masks, edge = scene.masks, max(1, size // 64)
    if group in ("sky", "night"):
        region = masks["sky"]
        return scene, qm.soft_map(region, 0, edge), qm.erode(region, edge)
    if group == "ground":
        nothing = np.zeros_like(masks["ground"])
        region = masks["ground"] & ~masks.get("house", nothing) & ~masks.get("lake", nothing)
        return scene, qm.soft_map(region, 0, edge), qm.erode(region, edge)
    return scene, qm.soft_map(masks["house"], max(2, size // 32), edge), qm.erode(masks["roof"], size // 256)


def measure_prompts(model, s: dict, table: Table) -> dict:
    """For each prompt pair, the fraction of trials in which the region's property moves the expected way."""
    size, trials = s["prompt_size"], s["prompt_trials"]
    outputs: dict = {}

    def output(group, trial, prompt):
        key = (group, trial, prompt)
        if key not in outputs:
            scene, strength, region = _group_inputs(group, trial, size)
            pixels = edit_pixels(model, scene.pixels, strength, prompt, s, seed=HELD_OUT + trial)
            outputs[key] = (pixels, region)
        return outputs[key]

    pairs = []
    for name, group, prompt, contrast, prop, direction in PAIRS:
        values = []
        for trial in range(trials):
            (first, region), (second, _) = output(group, trial, prompt), output(group, trial, contrast)
            values.append((PROPERTIES[prop](first, region), PROPERTIES[prop](second, region)))
        wins = sum(direction * (a - b) > 0 for a, b in values)
        pairs.append({"name": name, "region": group, "prompt": prompt, "contrast": contrast, "property": prop,
                      "direction": "higher" if direction > 0 else "lower", "trials": trials,
                      "fraction": wins / trials, "values": [list(v) for v in values]})
        table.add(f"prompt: {name}", 100 * wins / trials, " %", 0,
                  ">= 90 %", wins / trials >= 0.9)
    passing = sum(p["fraction"] >= 0.9 for p in pairs)
    table.add(f"prompt pairs at >= 90 % ({trials} trials each, {size}²)", passing, f" of {len(pairs)}", 0,
              ">= 6", passing >= 6)
    return {"prompt_following": {"size": size, "trials": trials, "edits": len(outputs), "pairs": pairs,
                                 "pairs_at_90_percent": passing}}


def machine() -> dict:
    """The machine the figures were measured on."""
    import torch

    return {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


def _finite(value):
    """`value` with every non-finite float replaced by None (strict JSON)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main(argv: list[str] | None = None) -> int:
    from diffdiff.demo import DEMO_MODEL

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEMO_MODEL, help="SD1 model file (default: the demo's)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few seeds and steps")
    parser.add_argument("--json", type=Path, default=ROOT / ".cache" / "quality.json")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if not args.model.exists():
        print(f"model not found: {args.model} (train the demo model first, or pass --model)", file=sys.stderr)
        return 2
    from diffdiff.models import load_model

    started = time.perf_counter()
    model = load_model(args.model, device="cpu")
    settings = dict(QUICK if args.quick else FULL, quick=args.quick, model=str(args.model),
                    sampler="euler", scheduler="normal", seconds_to_load=time.perf_counter() - started)
    results, seconds, table = {}, {}, Table()
    for measure in (measure_vae, measure_adherence, measure_seams, measure_drift, measure_prompts):
        begun = time.perf_counter()
        results.update(measure(model, settings, table))
        seconds[measure.__name__.removeprefix("measure_")] = time.perf_counter() - begun
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    about = machine()
    print(f"quality of {args.model.name}{' (--quick)' if args.quick else ''}, {date}, {about['processor']}, "
          f"{about['cpu_count']} CPUs, torch threads {about['torch_threads']}")
    table.print()
    total = time.perf_counter() - started
    print(f"{total:.1f} s in all ({', '.join(f'{k} {v:.1f} s' for k, v in seconds.items())})")
    report = {"date": date, "machine": about, "settings": settings, **results,
              "seconds": {**seconds, "total": total}, "table": table.rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(_finite(report), indent=1, allow_nan=False) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
