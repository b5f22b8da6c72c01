"""Command-line pieces shared by the verbs that run a model (edit, generate, upscale).

The model options and their loading, the early model-path checks, and writing the result PNG(s) plus the
optional --stats JSON. Not a verb itself (no `register`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=True, metavar="PATH",
                       help="checkpoint (.safetensors), diffusers folder, or a hub id in the offline cache")
    group.add_argument("--vae", metavar="PATH", help="a separate VAE file (.safetensors)")
    group.add_argument("--family", choices=("sd1", "sd2", "sd2-v", "sdxl"),
                       help="override family detection (must agree with the file's text encoders; "
                            "mainly to choose sd2 vs sd2-v)")
    group.add_argument("--prediction", choices=("eps", "v"),
                       help="override the prediction type of an SD2 checkpoint (eps or v)")
    group.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default auto)")
    group.add_argument("--dtype", choices=("fp16", "bf16", "fp32"),
                       help="network precision (default fp16 on GPUs, fp32 on CPU)")
    group.add_argument("--allow-pickle", action="store_true",
                       help="allow loading pickled .ckpt/.bin files (they can run code: trusted files only)")


def check_model_paths(args) -> None:
    from diffdiff.errors import DiffdiffError

    model = Path(args.model).expanduser()
    if not model.exists() and ("/" not in args.model or args.model.startswith((".", "/", "~"))):
        raise DiffdiffError(f"model {args.model} not found (give a checkpoint file, a folder or a hub id)")
    if args.vae and not Path(args.vae).expanduser().is_file():
        raise DiffdiffError(f"VAE file {args.vae} not found")
    from diffdiff.models.device import resolve_device

    resolve_device(args.device)


def load_model_from_args(args):
    from diffdiff.models import load_model

    return load_model(args.model, family=args.family, prediction=args.prediction, vae=args.vae,
                      device=args.device, dtype=args.dtype, allow_pickle=args.allow_pickle)


def write_results(args, result, stats: dict) -> int:
    from diffdiff.atomic import atomic_write

    written = result.save(args.output, overwrite=args.overwrite)
    if args.stats:
        text = json.dumps(stats, indent=2, sort_keys=True)
        atomic_write(args.stats, lambda tmp: tmp.write_text(text + "\n"), overwrite=True)
    if not args.quiet:
        for path in written:
            print(path)
    return 0
