"""Benchmark (not a test): 2× upscale-refine of a photo-like synthetic image with a detail strength map.

For 1024², 2048² and 4096² outputs, each in its own subprocess (honest peak RSS), prints network calls with
skipping vs without, wall time, peak RSS against the float32 output image, and seconds per megapixel.
Run: .venv/bin/python bench/upscale.py [SIZE ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

WORKER = r"""
import json, sys, tempfile, time
import numpy as np
from PIL import Image
from diffdiff.models import load_model, make_tiny_model
from diffdiff.upscale import upscale

size = int(sys.argv[1])
half = size // 2
rng = np.random.default_rng(0)
sky = np.linspace(200, 140, half // 2)[:, None, None] * np.array([0.6, 0.8, 1.0])  # flat sky gradient
ground = rng.normal(110, 45, (half - half // 2, half, 3)).clip(0, 255)           # textured ground
pixels = np.concatenate([np.broadcast_to(sky, (half // 2, half, 3)), ground]).astype(np.uint8)
model = load_model(make_tiny_model(tempfile.mkdtemp() + "/m", "sd1"), device="cpu")
stats = {}
started = time.perf_counter()
upscale(Image.fromarray(pixels), model=model, scale=2, prompt="a landscape photo", steps=4, cfg=1.0,
        tile=1024, overlap=128, strength_from="detail", min_strength=0.05, max_strength=0.7, stats=stats)
stats["wall_seconds"] = time.perf_counter() - started
print(json.dumps(stats))
"""


def main(sizes: list[int]) -> None:
    print(f"{'output':>8} {'calls':>6} {'no-skip':>8} {'ratio':>6} {'mean S':>7} {'wall s':>7} {'s/MP':>6} "
          f"{'RSS MB':>7} {'RSS/out':>8}")
    for size in sizes:
        with tempfile.TemporaryDirectory():
            began = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", WORKER, str(size)], capture_output=True, text=True)
            if done.returncode:
                print(done.stderr[-2000:])
                continue
            stats = json.loads(done.stdout.strip().splitlines()[-1])
            _ = time.perf_counter() - began
        output_mb = size * size * 3 * 4 / 2**20
        ratio = stats["network_calls"] / max(1, stats["network_calls_without_skip"])
        print(f"{size:>8} {stats['network_calls']:>6} {stats['network_calls_without_skip']:>8} {ratio:>6.2f} "
              f"{stats['mean_strength']:>7.3f} {stats['wall_seconds']:>7.1f} "
              f"{stats['wall_seconds'] / (size * size / 1e6):>6.2f} {stats['peak_rss_mb']:>7.0f} "
              f"{stats['peak_rss_mb'] / output_mb:>8.1f}")


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [1024, 2048, 4096])
