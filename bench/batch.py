"""Batch throughput: the same edits run four ways, side by side in one run — one `diffdiff edit` process per
job (each loads the model), the local batch runner (one process, the model loaded once, the next group read
while one samples) with groups of 1 and of 4 edits sampled together, and the Ray runner on a local Ray
instance with 2 CPUs and 2 single-thread workers (groups of 1). Reports images per second, each way's ratio
to the per-process way, and the share of the time spent starting up and loading the model. Figures are
reported, never asserted.

Jobs: held-out demo scenes (`diffdiff.demo.scenes`, seeds ≥ 10,000,000) at SIZE², each with a vertical ramp
map recipe (1 at the top, 0 at the bottom), alternating prompts "a night sky with stars" / "a sunset sky",
euler / normal, cfg 6, seed = job index.

Usage: python bench/batch.py [--jobs 32] [--size 512] [--steps 8] [--model PATH (default the demo model)]
[--json PATH (default .cache/batch.json)] [--skip-ray]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ("a night sky with stars", "a sunset sky")
RAMP = [{"op": "linear", "angle": 90, "start": 0.0, "end": 1.0}]


def make_jobs(folder: Path, jobs: int, size: int) -> Path:
    from PIL import Image

    from diffdiff.demo.data import HELD_OUT_SEEDS
    from diffdiff.demo.scenes import random_scene

    (folder / "images").mkdir(parents=True)
    lines = []
    for index in range(jobs):
        scene, _ = random_scene(HELD_OUT_SEEDS + index, size)
        Image.fromarray(scene.pixels).save(folder / f"images/{index}.png")
        lines.append(
            json.dumps(
                {"image": f"images/{index}.png", "map": RAMP, "prompt": PROMPTS[index % 2], "seed": index}
            )
        )
    manifest = folder / "jobs.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def timed(command: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def per_process(manifest: Path, model: str, steps: int, out: Path) -> dict:
    """One `diffdiff edit` per job; the map is the recipe's ramp written as a file once."""
    import numpy as np
    from PIL import Image

    from diffdiff.batch.recipes import make_map

    out.mkdir()
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    first = Image.open(manifest.parent / lines[0]["image"])
    ramp = manifest.parent / "ramp.png"
    Image.fromarray(np.round(make_map(RAMP, first.size) * 255).astype(np.uint8)).save(ramp)
    total, run = 0.0, 0.0
    for index, line in enumerate(lines):
        stats = out / f"{index}.json"
        total += timed(
            [
                sys.executable,
                "-m",
                "diffdiff",
                "edit",
                str(manifest.parent / line["image"]),
                "--map",
                str(ramp),
                "--prompt",
                line["prompt"],
                "--seed",
                str(line["seed"]),
                "--steps",
                str(steps),
                "--cfg",
                "6",
                "--model",
                model,
                "-o",
                str(out / f"{index}.png"),
                "--stats",
                str(stats),
                "--quiet",
            ]
        )
        run += json.loads(stats.read_text())["seconds"]
    return {"seconds": total, "images": len(lines), "startup_and_load_share": 1 - run / total}


def batch(manifest: Path, model: str, steps: int, out: Path, extra: list[str], env=None) -> dict:
    stats = out.with_suffix(".json")
    seconds = timed(
        [
            sys.executable,
            "-m",
            "diffdiff",
            "batch",
            str(manifest),
            "-o",
            str(out),
            "--model",
            model,
            "--steps",
            str(steps),
            "--cfg",
            "6",
            "--quiet",
            "--stats",
            str(stats),
            *extra,
        ],
        env,
    )
    summary = json.loads(stats.read_text())
    return {
        "seconds": seconds,
        "images": summary["done"],
        "startup_and_load_share": 1 - summary["seconds"] / seconds,
        "model_load_seconds": summary["model_load_seconds"],
        "worker_peak_rss_mb": summary["worker_peak_rss_mb"],
    }


def ray_head() -> tuple[str, dict]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    ray = str(Path(sys.executable).with_name("ray"))
    subprocess.run(
        [
            ray,
            "start",
            "--head",
            "--num-cpus=2",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    return f"127.0.0.1:{port}", env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--model", default=str(ROOT / "diffdiff/demo/demo-sd1.safetensors"))
    parser.add_argument("--json", default=str(ROOT / ".cache/batch.json"))
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="diffdiff-bench-batch-"))
    try:
        manifest = make_jobs(work, args.jobs, args.size)
        rows = {
            "one process per job": per_process(manifest, args.model, args.steps, work / "edit"),
            "local runner, groups of 1": batch(manifest, args.model, args.steps, work / "local-1",
                                               ["--group-size", "1"]),
            "local runner, groups of 4": batch(manifest, args.model, args.steps, work / "local", []),
        }
        if not args.skip_ray:
            address, env = ray_head()
            try:
                rows["Ray, 2 workers, groups of 1"] = batch(
                    manifest,
                    args.model,
                    args.steps,
                    work / "ray",
                    ["--ray", address, "--workers", "2", "--threads", "1", "--group-size", "1"],
                    env,
                )
            finally:
                subprocess.run(
                    [str(Path(sys.executable).with_name("ray")), "stop", "--force"], capture_output=True
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = rows["one process per job"]["images"] / rows["one process per job"]["seconds"]
    print(
        f"{args.jobs} jobs at {args.size}², {args.steps} steps, {platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'way':26} {'images/s':>9} {'× per-process':>14} {'startup+load share':>19}")
    for name, row in rows.items():
        rate = row["images"] / row["seconds"]
        row["images_per_second"], row["ratio"] = rate, rate / base
        print(f"{name:26} {rate:9.3f} {rate / base:14.2f} {row['startup_and_load_share']:19.0%}")
    record = {
        "date": datetime.date.today().isoformat(),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "jobs": args.jobs,
        "size": args.size,
        "steps": args.steps,
        "rows": rows,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
