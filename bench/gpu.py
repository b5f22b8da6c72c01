"""The GPU check, one prepared run: half-precision edits keep map-0 pixels exact, a 1024² edit and a 4096²
upscale timed, each phase reported. Run it through `bench/gpu.sh` on a machine with a CUDA GPU.

Model: `--model FILE` (a real SD1.5 checkpoint gives meaningful pictures), else a full-size SD1.5-shaped
checkpoint with random weights (`bench/inputs.py`), which times the same networks. Every job is one
`python -m diffdiff … --stats` process, as a user runs it:
1. fp16 and bf16 512² edits with a map that is 0 on the left half: those pixels must equal the input's bytes;
2. a 1024² edit at the device's default precision (euler/karras, 20 steps, CFG 7, a gradient map);
3. a 1024² → 4096² upscale (scale 4, detail-driven strengths, tiled at the native size), same sampler.
Prints one JSON object (also to `--json`), and exits non-zero when a map-0 check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.inputs import full_size_checkpoint, gradient_map, synthetic_picture, timed_cli_job  # noqa: E402

SAMPLING = ["--sampler", "euler", "--scheduler", "karras", "--cfg", "7", "--seed", "1", "--device", "cuda"]


def run(verb: str, arguments: list[str], folder: Path, name: str) -> dict:
    arguments = [verb, *arguments, *SAMPLING, "-o", str(folder / f"{name}.png"), "--overwrite", "--quiet"]
    wall, record = timed_cli_job(arguments, folder / f"{name}.json", ROOT)
    return {"wall_s": round(wall, 2), "phases_s": record.get("phases"),
            "network_calls": record.get("network_calls"), "tiles": record.get("tiles")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: this check needs one", file=sys.stderr)
        return 2
    model = args.model or full_size_checkpoint()
    report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "model": str(model),
              "jobs": {}}
    ok = True
    with tempfile.TemporaryDirectory(prefix="diffdiff-gpu-") as temp:
        folder = Path(temp)
        image512 = synthetic_picture(folder / "p512.png", 512)
        image1024 = synthetic_picture(folder / "p1024.png", 1024)
        half_map = gradient_map(folder / "half.png", 512, keep_left_half=True)
        for dtype in ("fp16", "bf16"):
            name = f"edit-512-{dtype}"
            arguments = [str(image512), "--map", str(half_map), "--prompt", "a lake", "--model", str(model),
                         "--steps", str(args.steps), "--dtype", dtype]
            job = run("edit", arguments, folder, name)
            kept = np.asarray(Image.open(folder / f"{name}.png"))[:, :256]
            job["map0_pixels_exact"] = bool(np.array_equal(kept, np.asarray(Image.open(image512))[:, :256]))
            ok &= job["map0_pixels_exact"]
            report["jobs"][name] = job
        gradient = gradient_map(folder / "gradient.png", 1024)
        report["jobs"]["edit-1024-default"] = run(
            "edit", [str(image1024), "--map", str(gradient), "--prompt", "a lake", "--model", str(model),
                     "--steps", str(args.steps)], folder, "edit-1024")
        report["jobs"]["upscale-1024-to-4096"] = run(
            "upscale", [str(image1024), "--scale", "4", "--strength-from", "detail", "--prompt", "a lake",
                        "--model", str(model), "--steps", str(args.steps)], folder, "upscale-4096")
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
