"""Benchmark inputs: a full-size SD1.5-shaped checkpoint with random weights, a synthetic picture, a map;
and `timed_cli_job`, one `python -m diffdiff` process timed with its --stats.

`full_size_checkpoint(path)` writes (once; an existing file is reused) an A1111-layout `.safetensors` whose
UNet, CLIP-L text encoder and VAE have the real SD1.5 shapes from the configs shipped in
`diffdiff/models/configs/sd1`, stored in fp16 like the common pruned checkpoints (about 2.1 GB). The header
carries no configs, so the loader takes the shipped ones, as for a downloaded checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

DEFAULT_CHECKPOINT = Path(tempfile.gettempdir()) / "sd15-random-fp16.safetensors"


def full_size_checkpoint(path: str | Path = DEFAULT_CHECKPOINT, dtype: torch.dtype = torch.float16,
                         seed: int = 0) -> Path:
    """Write the checkpoint to `path` unless it is there; return the path."""
    path = Path(path)
    if path.is_file():
        return path
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from diffdiff.models.tiny import checkpoint_state, shipped_config, write_checkpoint

    torch.manual_seed(seed)
    components = {
        "unet": UNet2DConditionModel.from_config(shipped_config("sd1", "unet")),
        "vae": AutoencoderKL.from_config(shipped_config("sd1", "vae")),
        "text_encoder": CLIPTextModel(CLIPTextConfig.from_dict(shipped_config("sd1", "text_encoder"))),
    }
    state, _ = checkpoint_state(components, "sd1", dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_checkpoint(path, state, {"format": "pt"})


def synthetic_picture(path: Path, size: int) -> Path:
    """A size² PNG: colour ramps with a little noise (so the VAE and the composite see texture)."""
    rng = np.random.default_rng(size)
    y, x = np.mgrid[0:size, 0:size] / size
    pixels = np.stack([x * 200 + 30, y * 180 + 40, (1 - x) * 150 + 60], -1)
    pixels += rng.normal(0, 12, (size, size, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return path


def gradient_map(path: Path, size: int, keep_left_half: bool = False) -> Path:
    """A size² grey map rising from 0 at the left edge to 1 at the right (0 on the left half if asked)."""
    x = np.tile(np.linspace(0, 1, size, dtype=np.float32), (size, 1))
    if keep_left_half:
        x[:, : size // 2] = 0
    Image.fromarray(np.round(x * 255).astype(np.uint8)).save(path)
    return path


def timed_cli_job(arguments: list[str], stats: Path, source: Path,
                  cwd: Path | None = None) -> tuple[float, dict]:
    """Run `python -m diffdiff ARGUMENTS --stats STATS` with the diffdiff source tree `source` first on the
    path; (the process's wall seconds, the stats it wrote)."""
    command = [sys.executable, "-m", "diffdiff", *arguments, "--stats", str(stats)]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=cwd, env={**os.environ, "PYTHONPATH": str(source)})
    return time.perf_counter() - started, json.loads(Path(stats).read_text())


if __name__ == "__main__":
    import sys

    print(full_size_checkpoint(*sys.argv[1:2]))
