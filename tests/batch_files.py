"""Files for the batch tests: a tiny single-file SD1 model, small random images with gradient maps, and a
manifest of them; plus a way to run `diffdiff batch` in a child process and read its ledger."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from diffdiff.batch.ledger import LEDGER_NAME

SIDE = 64


def make_job_files(root: Path, count: int, *, seed: int = 0) -> Path:
    """`count` images and maps under `root`, a manifest of them (seed = line index, two prompts), and a tiny
    model at root/tiny.safetensors; returns the manifest's path."""
    from diffdiff.models import make_tiny_model

    model = root / "tiny.safetensors"
    if not model.exists():
        make_tiny_model(model, "sd1", single_file=True)
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(exist_ok=True)
    (root / "maps").mkdir(exist_ok=True)
    lines = []
    for index in range(count):
        pixels = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"images/{index}.png")
        ramp = np.tile(np.linspace(0, 255, SIDE), (SIDE, 1)) * rng.uniform(0.3, 1.0)
        Image.fromarray(ramp.astype(np.uint8)).save(root / f"maps/{index}.png")
        lines.append(json.dumps({"image": f"images/{index}.png", "map": f"maps/{index}.png",
                                 "prompt": ["a red roof", "a night sky"][index % 2], "seed": index}))
    manifest = root / "jobs.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def batch_command(manifest: Path, output: Path, *extra: str) -> list[str]:
    """Groups of 4 (the CPU's default is 1), so that resuming a partly written group is exercised too."""
    return [sys.executable, "-m", "diffdiff", "batch", str(manifest), "-o", str(output),
            "--model", str(manifest.parent / "tiny.safetensors"), "--steps", "6", "--threads", "1",
            "--group-size", "4", "--quiet", *extra]


def run_batch(manifest: Path, output: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(batch_command(manifest, output, *extra), capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def ledger_rows(output: Path) -> dict[str, tuple[str, str]]:
    """output name → (state, source) as the ledger records them."""
    with sqlite3.connect(output / LEDGER_NAME) as db:
        return {name: (state, source) for name, state, source in
                db.execute("SELECT output, state, source FROM jobs")}


def outputs_in(folder: Path) -> list[str]:
    """The finished outputs' names (not the hidden temporary files of writes in progress)."""
    return sorted(name for name in os.listdir(folder) if name.endswith(".png") and not name.startswith("."))


def pngs(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.png"))}


def leftovers(folder: Path) -> list[str]:
    """Anything in `folder` but the outputs and the ledger (temporary files, WAL files)."""
    return sorted(p.name for p in folder.iterdir() if not (p.suffix == ".png" and not p.name.startswith("."))
                  and p.name != LEDGER_NAME)
