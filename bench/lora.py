"""LoRA cost, merged into the weights vs as PEFT adapters, side by side in one run on the demo SD1 model
with a random rank-RANK LoRA (kohya layout) on every attention projection of its UNet and text encoder:

(a) applying and removing it (entering / leaving `applied_loras`; the file is read and checked either way);
(b) a SIZE², STEPS-step loop of UNet calls on a (1, 4, SIZE/8, SIZE/8) latent with the encoded prompt, with
    no LoRA, merged, and as adapters;
(c) consecutive jobs switching between two LoRA sets (the batch case): per job, apply the job's set, run
    JOB_STEPS UNet calls, remove it.

Prints a table and writes JSON; figures are reported, never asserted. The `mode="auto"` choice in
`diffdiff/lora/applying.py` is taken from these figures.

Usage: python bench/lora.py [--model PATH (default the demo model)] [--rank 8] [--size 512] [--steps 20]
[--jobs 6] [--job-steps 4] [--repeat 5] [--loop-repeat 1] [--chunk 5] [--json PATH (default .cache/lora.json)]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ATTENTION_ENDINGS = (".to_q", ".to_k", ".to_v", ".to_out.0", ".q_proj", ".k_proj", ".v_proj", ".out_proj")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def random_lora(model, rank: int, seed: int, path: Path) -> tuple[Path, int]:
    """A kohya-layout LoRA on every attention projection of the UNet and the text encoder; (path, layers)."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for prefix, network in (("lora_unet_", model.unet), ("lora_te_", model.text_encoders[0])):
        for name, module in network.named_modules():
            if not (isinstance(module, torch.nn.Linear) and name.endswith(ATTENTION_ENDINGS)):
                continue
            if prefix == "lora_te_" and not name.startswith("text_model."):
                name = "text_model." + name
            stem = prefix + name.replace(".", "_")
            out_features, in_features = module.weight.shape
            state[stem + ".lora_down.weight"] = torch.randn(rank, in_features, generator=generator) * 0.02
            state[stem + ".lora_up.weight"] = torch.randn(out_features, rank, generator=generator) * 0.02
            state[stem + ".alpha"] = torch.tensor(float(rank))
    save_file(state, str(path))
    return path, len(state) // 3


def unet_loop(model, latent, context, steps: int) -> float:
    started = time.perf_counter()
    with torch.no_grad():
        for step in range(steps):
            model.unet(latent, torch.tensor([999.0 - 50 * step]), encoder_hidden_states=context)
    return time.perf_counter() - started


def apply_remove(model, uses, mode: str) -> tuple[float, float]:
    from diffdiff.lora import applied_loras

    block = applied_loras(model, uses, mode=mode)
    started = time.perf_counter()
    block.__enter__()
    entered = time.perf_counter()
    block.__exit__(None, None, None)
    return entered - started, time.perf_counter() - entered


def interleaved_loops(model, uses, latent, context, steps: int, chunk: int) -> dict[str, float]:
    """Seconds of `steps` UNet calls with no LoRA, merged and as adapters, run in rotating chunks of `chunk`
    calls so that other load on the machine falls on all three alike (apply / remove time not counted)."""
    from diffdiff.lora import applied_loras

    totals = {"no LoRA": 0.0, "merge": 0.0, "adapter": 0.0}
    done = 0
    while done < steps:
        calls = min(chunk, steps - done)
        for label in totals:
            if label == "no LoRA":
                totals[label] += unet_loop(model, latent, context, calls)
                continue
            with applied_loras(model, uses, mode=label):
                totals[label] += unet_loop(model, latent, context, calls)
        done += calls
    return totals


def switching(model, sets, mode: str, latent, context, jobs: int, job_steps: int) -> float:
    from diffdiff.lora import applied_loras

    started = time.perf_counter()
    for job in range(jobs):
        with applied_loras(model, sets[job % 2], mode=mode), torch.no_grad():
            for step in range(job_steps):
                model.unet(latent, torch.tensor([999.0 - 50 * step]), encoder_hidden_states=context)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "diffdiff/demo/demo-sd1.safetensors"))
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--job-steps", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5, help="repeats of (a), median")
    parser.add_argument("--loop-repeat", type=int, default=1, help="repeats of (b) and (c), median")
    parser.add_argument("--chunk", type=int, default=5, help="(b) takes turns of this many calls")
    parser.add_argument("--json", default=str(ROOT / ".cache/lora.json"))
    args = parser.parse_args()
    from diffdiff.lora import LoraUse
    from diffdiff.models import load_model

    model = load_model(args.model, device="cpu")
    context = model.encode_prompt(
        "a watercolor landscape", width=args.size, height=args.size
    ).network_kwargs()
    context = context["encoder_hidden_states"]
    latent = torch.randn(1, 4, args.size // 8, args.size // 8, generator=torch.Generator().manual_seed(0))
    folder = Path(tempfile.mkdtemp(prefix="diffdiff-bench-lora-"))
    first, layers = random_lora(model, args.rank, 1, folder / "first.safetensors")
    second, _ = random_lora(model, args.rank, 2, folder / "second.safetensors")
    uses = [LoraUse(first, 0.8)]
    sets = [[LoraUse(first, 0.8)], [LoraUse(second, 0.6)]]
    unet_loop(model, latent, context, 2)  # warm-up

    figures: dict[str, float] = {}
    for mode in ("merge", "adapter"):
        apply_remove(model, uses, mode)  # warm-up: first imports and allocations
    for mode in ("merge", "adapter"):
        timings = [apply_remove(model, uses, mode) for _ in range(args.repeat)]
        figures[f"apply {mode}"] = statistics.median(t[0] for t in timings)
        figures[f"remove {mode}"] = statistics.median(t[1] for t in timings)
    loops = [interleaved_loops(model, uses, latent, context, args.steps, args.chunk)
             for _ in range(args.loop_repeat)]
    for label in loops[0]:
        figures[f"{args.steps}-call loop {label}"] = statistics.median(run[label] for run in loops)
    for mode in ("merge", "adapter"):
        runs = [
            switching(model, sets, mode, latent, context, args.jobs, args.job_steps)
            for _ in range(args.loop_repeat)
        ]
        figures[f"{args.jobs} switching jobs {mode}"] = statistics.median(runs)

    machine = (
        f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{Path(args.model).name}: rank-{args.rank} LoRA on {layers} attention layers; {machine}")
    print(
        f"loop: {args.steps} UNet calls at {args.size}²; switching: {args.jobs} jobs"
        f" × {args.job_steps} calls,"
        " alternating two LoRA sets"
    )
    print(f"{'measure':36} {'seconds':>9}")
    for name, seconds in figures.items():
        print(f"{name:36} {seconds:9.3f}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "machine": machine,
        "model": Path(args.model).name,
        "rank": args.rank,
        "layers": layers,
        "size": args.size,
        "steps": args.steps,
        "jobs": args.jobs,
        "job_steps": args.job_steps,
        "seconds": figures,
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    for path in (first, second):
        path.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main()
