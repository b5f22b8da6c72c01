"""One full-size SD1.5 UNet call (random weights, batch 2 = CFG's two halves, 64×64 latents, fp32, CPU) per
variant: eager, eager channels-last, `torch.compile`, and `torch.compile` with inductor's freezing. Each
variant runs in its own process (compile settings are global); the first call is reported apart, since
for the compiled variants it includes compiling. Usage: `python bench/unet_speed.py [--variants ...]
[--calls 3] [--json OUT.json]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

VARIANTS = ("eager", "channels-last", "compile", "compile-freezing")


def run_variant(variant: str, calls: int) -> dict:
    import torch
    from diffusers import UNet2DConditionModel

    from diffdiff.models.tiny import shipped_config

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(shipped_config("sd1", "unet")).eval()
    if variant == "channels-last":
        unet.to(memory_format=torch.channels_last)
    if variant == "compile-freezing":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    network = torch.compile(unet) if variant.startswith("compile") else unet
    latent, context = torch.randn(2, 4, 64, 64), torch.randn(2, 77, 768)
    timestep = torch.tensor([500.0, 500.0])
    seconds = []
    with torch.no_grad():
        for _ in range(calls + 1):
            started = time.perf_counter()
            network(latent, timestep, context)
            seconds.append(time.perf_counter() - started)
    return {"first_call": round(seconds[0], 2), "call_median": round(statistics.median(seconds[1:]), 2),
            "calls": [round(value, 2) for value in seconds[1:]]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--json")
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)  # the child process's variant
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_variant(args.one, args.calls)))
        return 0
    results = {}
    for variant in args.variants:
        child = subprocess.run([sys.executable, __file__, "--one", variant, "--calls", str(args.calls)],
                               check=True, capture_output=True, text=True)
        results[variant] = json.loads(child.stdout.strip().splitlines()[-1])
        entry = results[variant]
        print(f"{variant:18s} first call {entry['first_call']:7.1f} s"
              f"   then {entry['call_median']:6.2f} s/call", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
