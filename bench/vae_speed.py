"""VAE encode/decode speed of a full-size SD VAE (random weights) per variant and size, on this machine.

Variants: fp32 (today's path), fp32 channels-last, bf16, bf16 channels-last, and tiled (512 px tiles,
64 px overlap, shared GroupNorm statistics) in fp32, plain or channels-last. Each is timed `--repeats`
times in one process, alternating variants, and the median is reported with its ratio to fp32, so ratios
are side by side.
Usage: `python bench/vae_speed.py [--sizes 512 1024] [--repeats 3] [--variants ...] [--json OUT.json]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

VARIANTS = ("fp32", "fp32-channels-last", "bf16", "bf16-channels-last", "fp32-tiled",
            "fp32-channels-last-tiled")


def build_vae(dtype: torch.dtype):
    from diffusers import AutoencoderKL

    from diffdiff.models.tiny import shipped_config

    torch.manual_seed(0)
    return AutoencoderKL.from_config(shipped_config("sd1", "vae")).eval().to(dtype)


def codecs(names) -> dict:
    """{variant: (VaeCodec, tile or None)}; variants that differ only in tiling share one network."""
    from diffdiff.models.vae import VaeCodec

    networks, made = {}, {}
    for name in names:
        key = (torch.bfloat16 if name.startswith("bf16") else torch.float32, "channels-last" in name)
        if key not in networks:
            networks[key] = VaeCodec(build_vae(key[0]), torch.device("cpu"), channels_last=key[1])
        made[name] = (networks[key], 512 if name.endswith("tiled") else None)
    return made


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["fp32", "fp32-channels-last", "fp32-tiled"],
                        choices=VARIANTS)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    made = codecs(args.variants)
    rows = []
    rng = np.random.default_rng(0)
    for size in args.sizes:
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        times = {(name, phase): [] for name in args.variants for phase in ("encode", "decode")}
        for _ in range(args.repeats):
            for name in args.variants:
                codec, tile = made[name]
                started = time.perf_counter()
                latent = codec.encode(pixels, tile, 64 if tile else 0)
                times[name, "encode"].append(time.perf_counter() - started)
                started = time.perf_counter()
                codec.decode(latent, tile, 64 if tile else 0)
                times[name, "decode"].append(time.perf_counter() - started)
        for phase in ("encode", "decode"):
            base = statistics.median(times["fp32", phase])
            for name in args.variants:
                median = statistics.median(times[name, phase])
                rows.append({"size": size, "phase": phase, "variant": name, "seconds": round(median, 3),
                             "ratio_to_fp32": round(median / base, 3)})
                print(f"{size:5d} {phase:6s} {name:20s} {median:7.2f} s  {median / base:5.2f}x", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}, handle,
                      indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
