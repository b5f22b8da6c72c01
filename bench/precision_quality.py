"""How much each precision changes the output, measured against fp32 on the demo model — the evidence behind
the default precision of each device.

The demo edit (examples/demo.png with its sky map, "a night sky with stars", euler/karras, 20 steps, CFG 6)
runs with the networks and the VAE in each combination below, for several seeds, all in one process on
this machine's CPU (half-precision numerics are the same IEEE formats on a GPU; only the speed differs):
fp32/fp32 (the reference), bf16/bf16 (a CPU with native bf16), fp16/fp32 (an fp16 GPU without bf16),
fp16/bf16 (a GPU with both), fp32/bf16 (the VAE alone in bf16). For each: PSNR against the fp32 output over
the changed region (map > 0), the mean CIE ΔE76 there, and whether every map-0 pixel is the input's byte.
Usage: `python bench/precision_quality.py [--seeds 1 2 3] [--steps 20] [--json OUT.json]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.quality_measures import delta_e76, psnr  # noqa: E402

COMBINATIONS = {  # name: (network dtype, VAE dtype)
    "fp32/fp32": (torch.float32, torch.float32),
    "bf16/bf16": (torch.bfloat16, torch.bfloat16),
    "fp16/fp32": (torch.float16, torch.float32),
    "fp16/bf16": (torch.float16, torch.bfloat16),
    "fp32/bf16": (torch.float32, torch.bfloat16),
}


def edit_with(models: dict, name: str, image, strength, steps: int, seed: int) -> np.ndarray:
    from diffdiff import pipeline

    network, vae = COMBINATIONS[name]
    model = models[network]
    model.vae.to(vae)
    result = pipeline.edit(image, strength, "a night sky with stars", model=model, steps=steps, cfg=6.0,
                           seed=seed, sampler="euler", scheduler="karras")
    return np.asarray(result.images[0].convert("RGB"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from diffdiff.demo import DEMO_MODEL
    from diffdiff.models import load_model

    image = Image.open(ROOT / "examples" / "demo.png").convert("RGB")
    strength = np.asarray(Image.open(ROOT / "examples" / "sky-map.png").convert("L"), np.float32) / 255
    changed, kept = strength > 0, strength == 0
    original = np.asarray(image)
    models = {dtype: load_model(DEMO_MODEL, device="cpu", dtype=dtype)
              for dtype in (torch.float32, torch.bfloat16, torch.float16)}
    rows = {name: {"psnr_db": [], "delta_e": [], "map0_exact": [], "seconds": []} for name in COMBINATIONS}
    for seed in args.seeds:
        reference = None
        for name in COMBINATIONS:
            started = time.perf_counter()
            output = edit_with(models, name, image, strength, args.steps, seed)
            rows[name]["seconds"].append(time.perf_counter() - started)
            reference = output if reference is None else reference
            rows[name]["psnr_db"].append(psnr(reference[changed], output[changed]))
            rows[name]["delta_e"].append(float(delta_e76(reference, output)[changed].mean()))
            rows[name]["map0_exact"].append(bool(np.array_equal(output[kept], original[kept])))
    print(f"{'network/VAE':12s} {'PSNR dB':>9s} {'min':>7s} {'ΔE mean':>8s} {'map-0 exact':>12s}"
          f" {'s/edit':>7s}")
    table = {}
    for name, row in rows.items():
        entry = table[name] = {
            "psnr_db_median": statistics.median(row["psnr_db"]), "psnr_db_min": min(row["psnr_db"]),
            "delta_e_mean": statistics.fmean(row["delta_e"]), "map0_exact": all(row["map0_exact"]),
            "seconds_median": statistics.median(row["seconds"])}
        print(f"{name:12s} {entry['psnr_db_median']:9.1f} {entry['psnr_db_min']:7.1f}"
              f" {entry['delta_e_mean']:8.2f} {str(entry['map0_exact']):>12s} {entry['seconds_median']:7.1f}")
    if args.json:
        args.json.write_text(json.dumps({"seeds": args.seeds, "steps": args.steps, "table": table}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
