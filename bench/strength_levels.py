"""Benchmark (not a test): how many distinct strengths a run can give, quantised ("steps") vs "continuous".

1. Analytic: a 0→1 ramp of 1024 latent pixels that share one latent and one noise, so a pixel's result depends
   on its strength alone (x0 = (x + 2) / (1 + σ²), a pixelwise denoiser). Counts the distinct results (to
   1e-4) and checks that each pixel goes at least as far towards the strength-1 result as the one below it.
2. Demo model: a flat sky edited "at night" through a 0→1 ramp map with the same noise in every column (raw
   decode, no composite). Per latent column (8 pixels) the mean colour's way from the strength-0 end to the
   strength-1 end, in whole percent: the count of distinct percentages is the number of visible levels (at
   most 101), and "falls" counts columns that step back by more than 2 % of the rise.

    .venv/bin/python bench/strength_levels.py [--threads 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

STEP_COUNTS = (4, 8, 20)
LEVELS = ("steps", "continuous")
RAMP = 1024


@contextmanager
def noise_from(make):
    """`sample` draws its noise with `make(original_prepare_noise, like, seed)` inside the block."""
    sample_module = sys.modules["diffdiff.sampling.sample"]
    original = sample_module.prepare_noise
    sample_module.prepare_noise = lambda like, seed: make(original, like, seed)
    try:
        yield
    finally:
        sample_module.prepare_noise = original


def analytic_row(steps: int, levels: str, sampler: str) -> dict:
    from diffdiff.sampling import model_sampling, sample

    generator = torch.Generator().manual_seed(0)
    latent = torch.randn(1, 4, 1, 1, generator=generator).expand(1, 4, 1, RAMP).contiguous()
    noise = torch.randn(1, 4, 1, 1, generator=generator).expand(1, 4, 1, RAMP).contiguous()
    with noise_from(lambda original, like, seed: noise.clone()):
        ramp = torch.linspace(0, 1, RAMP).reshape(1, 1, 1, RAMP)
        out = sample(lambda x, sigma, **kw: (x + 2.0) / (1 + sigma.view(-1, 1, 1, 1) ** 2), latent,
                     model_sampling=model_sampling("sd1"), sampler=sampler, scheduler="normal", steps=steps,
                     seed=0, strength_map=ramp, strength_levels=levels)
    direction = out[..., -1:] - latent[..., -1:]
    progress = ((out - latent) * direction).sum(1)[0, 0].double() / float((direction * direction).sum())
    distinct = len(torch.unique(torch.round(progress * 1e4)))
    return {"sampler": sampler, "steps": steps, "levels": levels, "distinct": distinct,
            "largest_step_back": round(float(-torch.diff(progress).min().clamp(max=0)), 6)}


def demo_row(model, steps: int, levels: str) -> dict:
    """A flat sky 1024×64 edited "at night" with a horizontal ramp map, the noise the same in every column, so
    a column's result depends on its strength (and its neighbours', through the network's reach) alone."""
    from diffdiff import pipeline

    image = Image.new("RGB", (RAMP, 64), (120, 170, 220))
    ramp = np.tile(np.linspace(0.0, 1.0, RAMP, dtype=np.float32), (64, 1))
    started = time.perf_counter()
    with noise_from(lambda original, like, seed: original(like[..., :1], seed).expand_as(like).contiguous()):
        result = pipeline.edit(image, ramp, "a sky at night", model=model, steps=steps, cfg=5.0, seed=3,
                               sampler="euler", scheduler="normal", strength_levels=levels, composite=False)
    seconds = time.perf_counter() - started
    columns = np.asarray(result.images[0], np.float64).mean(axis=(0, 2)).reshape(-1, 8).mean(1)  # per latent
    rise = columns[-1] - columns[0]
    percent = np.round((columns - columns[0]) / rise * 100)
    falls = int((np.diff(columns) * np.sign(rise) < -0.02 * abs(rise)).sum())
    return {"steps": steps, "levels": levels, "distinct_percent_levels": len(np.unique(percent)),
            "falls_over_2_percent": falls, "rise": round(float(abs(rise)), 1), "seconds": round(seconds, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = {"analytic": [], "demo": []}
    print("analytic ramp (1024 pixels): distinct results and the largest step back")
    for sampler in ("euler", "dpmpp_2m", "heun"):
        for steps in STEP_COUNTS:
            for levels in LEVELS:
                row = analytic_row(steps, levels, sampler)
                rows["analytic"].append(row)
                print(f"  {sampler:9} {steps:3} steps {levels:10} distinct {row['distinct']:5}  "
                      f"step back {row['largest_step_back']:.2e}")
    from diffdiff.demo import DEMO_MODEL
    from diffdiff.models import load_model

    model = load_model(DEMO_MODEL, device="cpu")
    print("demo model, 1024x64 ramp edit: distinct 1 % levels of the change, falls over 2 %")
    for steps in STEP_COUNTS:
        for levels in LEVELS:
            row = demo_row(model, steps, levels)
            rows["demo"].append(row)
            print(f"  {steps:3} steps {levels:10} levels {row['distinct_percent_levels']:4}  "
                  f"falls {row['falls_over_2_percent']:3}  rise {row['rise']}  ({row['seconds']} s)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
