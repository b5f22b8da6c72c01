"""Loading side by side: seconds to load a checkpoint, and to load it and encode the first prompt (which
builds lazily loaded text encoders), each in a fresh process, for this tree and optionally an older one.

Default model: the full-size SD1.5-shaped fp16 checkpoint of `bench/inputs.py` (2.1 GB), loaded as fp32
networks on the CPU. Runs alternate between the trees; medians are printed with the file's size.
Usage: `python bench/loading.py [--model FILE] [--baseline DIR] [--repeats 3] [--json OUT.json]`
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.inputs import full_size_checkpoint  # noqa: E402

PROBE = """
import json, sys, time
import torch, diffusers, transformers
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel
from diffdiff.models import load_model
started = time.perf_counter()
model = load_model(sys.argv[1], device="cpu", dtype="fp32")
loaded = time.perf_counter()
model.encode_prompt("a mountain lake at dawn")
print(json.dumps({"load": loaded - started, "load_and_first_prompt": time.perf_counter() - started}))
"""


def measure(source: Path, model: Path) -> dict:
    run = subprocess.run([sys.executable, "-c", PROBE, str(model)], check=True, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(source)}, cwd="/")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    model = args.model or full_size_checkpoint()
    trees = {"this tree": ROOT, **({"baseline": args.baseline} if args.baseline else {})}
    runs = {name: [] for name in trees}
    measure(ROOT, model)  # warm the page cache for every run alike
    for _ in range(args.repeats):
        for name, source in trees.items():
            runs[name].append(measure(source, model))
    size_gb = model.stat().st_size / 1e9
    report = {"model": str(model), "size_gb": round(size_gb, 2), "results": {}}
    for name, done in runs.items():
        entry = {key: round(statistics.median(run[key] for run in done), 2) for key in done[0]}
        report["results"][name] = entry
        print(f"{name:10s} load {entry['load']:6.2f} s   load + first prompt"
              f" {entry['load_and_first_prompt']:6.2f} s   ({size_gb:.2f} GB file)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
