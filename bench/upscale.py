"""Benchmark (not a test): 2× upscale-refine of a photo-like synthetic image with a detail strength map.

For 1024², 2048² and 4096² outputs, each in its own subprocess (honest peak RSS), prints tile evaluations with
skipping vs without and their ratio, wall and CPU seconds, seconds per output megapixel, peak RSS of the
process and peak RSS above the baseline taken just before the upscale (torch, diffusers and the model
loaded), each also as a multiple of the float32 output image (goal: ≤ 3×).
Settings: tiny SD1 model (`make_tiny_model`), euler/normal, 20 steps, cfg 1, 512 px tiles with 64 px
overlap (network and VAE), detail map in [0.05, 0.7]. Torch runs on `--threads` threads (default 1: on a
shared 2-core machine two threads under load time badly).
Run: .venv/bin/python bench/upscale.py [--steps N] [--tile PX] [--threads N] [SIZE ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

WORKER = r"""
import json, sys, tempfile, time
import numpy as np
import torch
from PIL import Image
from diffdiff.models import load_model, make_tiny_model
from diffdiff.pipeline import upscale

size, steps, tile, threads = (int(v) for v in sys.argv[1:5])
torch.set_num_threads(threads)


def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(key + ":"))


half = size // 2
rng = np.random.default_rng(0)
sky = np.linspace(200, 140, half // 2)[:, None, None] * np.array([0.6, 0.8, 1.0])  # flat sky gradient
ground = rng.normal(110, 45, (half - half // 2, half, 3)).clip(0, 255)           # textured ground
image = Image.fromarray(np.concatenate([np.broadcast_to(sky, (half // 2, half, 3)), ground]).astype(np.uint8))
del sky, ground
model = load_model(make_tiny_model(tempfile.mkdtemp() + "/m", "sd1"), device="cpu")
baseline = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # restart the peak (VmHWM) from here
    f.write("5")
stats = {}
started, cpu = time.perf_counter(), time.process_time()
upscale(image, model=model, scale=2, prompt="a landscape photo", steps=steps, cfg=1.0, tile=tile,
        overlap=tile // 8, vae_tile=tile, strength_from="detail", min_strength=0.05, max_strength=0.7,
        stats=stats)
stats["wall_seconds"] = time.perf_counter() - started
stats["cpu_seconds"] = time.process_time() - cpu
stats["baseline_mb"] = baseline
stats["peak_mb"] = status("VmHWM")
print(json.dumps(stats))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1024, 2048, 4096])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    print(f"steps {args.steps}, tile {args.tile} px, overlap {args.tile // 8} px, "
          f"torch threads {args.threads}")
    print(f"{'output':>8} {'evals':>6} {'no-skip':>8} {'ratio':>6} {'mean S':>7} {'wall s':>7} {'cpu s':>7} "
          f"{'s/MP':>6} {'RSS MB':>7} {'base MB':>8} {'+MB':>6} {'RSS/out':>8} {'+/out':>6}")
    for size in args.sizes:
        command = [sys.executable, "-c", WORKER, *map(str, (size, args.steps, args.tile, args.threads))]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            print(done.stderr[-2000:])
            continue
        stats = json.loads(done.stdout.strip().splitlines()[-1])
        output_mb = size * size * 3 * 4 / 2**20
        ratio = stats["tile_evaluations"] / max(1, stats["tile_evaluations_without_skip"])
        above = stats["peak_mb"] - stats["baseline_mb"]
        evaluations, without = stats["tile_evaluations"], stats["tile_evaluations_without_skip"]
        print(f"{size:>8} {evaluations:>6} {without:>8} {ratio:>6.2f} "
              f"{stats['mean_strength']:>7.3f} {stats['wall_seconds']:>7.1f} {stats['cpu_seconds']:>7.1f} "
              f"{stats['wall_seconds'] / (size * size / 1e6):>6.2f} {stats['peak_mb']:>7.0f} "
              f"{stats['baseline_mb']:>8.0f} {above:>6.0f} {stats['peak_mb'] / output_mb:>8.2f} "
              f"{above / output_mb:>6.2f}")


if __name__ == "__main__":
    main()
