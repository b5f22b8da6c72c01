"""Benchmark (not a test): what the differential gate costs and what skipping saves.

Runs 20 euler steps with a small random-weight diffusers UNet2DConditionModel and prints, side by side,
network calls and wall time for: no map, a map peaking at 1, a map peaking at 0.5 with skip on and with skip
off. Then the gate's own time per call (with a free inner denoiser) as a fraction of one UNet step.

    .venv/bin/python bench/gate_overhead.py [--size 32] [--repeats 2] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from diffusers import UNet2DConditionModel  # noqa: E402

from diffdiff.sampling import DifferentialGate, calculate_sigmas, model_sampling, prepare_noise, sample  # noqa: E402


def tiny_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=16,
    ).eval()


def unet_denoiser(unet, ms, context):
    """eps UNet → x0 through the model sampling (what models.ParametrisedNetwork does)."""

    def denoise(x, sigma, **kwargs):
        out = unet(ms.calculate_input(sigma, x), ms.timestep(sigma), encoder_hidden_states=context).sample
        return ms.calculate_denoised(sigma, out, x)

    return denoise


def timed_run(denoiser, latent, ms, steps, strength_map=None, skip=True):
    """(stats, wall seconds, CPU seconds) of one run; CPU time is the steadier figure on a shared machine."""
    stats = {}
    start, start_cpu = time.perf_counter(), time.process_time()
    sample(denoiser, latent, model_sampling=ms, sampler="euler", scheduler="normal", steps=steps, seed=0,
           strength_map=strength_map, skip=skip, stats=stats)
    return stats, time.perf_counter() - start, time.process_time() - start_cpu


def fastest_rows(denoiser, latent, ms, steps, cases, repeats):
    """Runs the cases round-robin `repeats` times (machine load hits all alike); keeps the fastest of each."""
    best = {}
    for _ in range(repeats):
        for name, (strength_map, skip) in cases.items():
            stats, wall, cpu = timed_run(denoiser, latent, ms, steps, strength_map, skip)
            old = best.get(name, (stats, float("inf"), float("inf")))
            best[name] = (stats, min(wall, old[1]), min(cpu, old[2]))
    return list(best.items())


def gate_seconds_per_call(latent, ms, steps, strength_map, repeats=20) -> float:
    """Gate work alone: every call of a run with a free inner denoiser (returns its input)."""
    sigmas = calculate_sigmas(ms, "normal", steps)
    noise = prepare_noise(latent, 0)
    gate = DifferentialGate(lambda x, sigma, **kw: x, strength_map, latent, noise, sigmas, ms, skip=False)
    ones = latent.new_ones(latent.shape[0])
    start = time.process_time()
    for _ in range(repeats):
        for sigma in sigmas[:-1]:
            gate(latent, sigma * ones)
    return (time.process_time() - start) / (repeats * steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="latent side (pixels / 8)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per row; the fastest is shown")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    ms = model_sampling("sd1")
    unet = tiny_unet()
    context = torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(1))
    latent = torch.randn(1, 4, args.size, args.size, generator=torch.Generator().manual_seed(2))
    ramp = torch.linspace(0, 1, args.size).repeat(args.size, 1)
    with torch.no_grad():
        denoiser = unet_denoiser(unet, ms, context)
        timed_run(denoiser, latent, ms, args.steps)  # warm-up: allocator and kernel caches
        cases = {
            "no map": (None, True),
            "map peak 1.0, skip on": (ramp, True),
            "map peak 0.5, skip on": (0.5 * ramp, True),
            "map peak 0.5, skip off": (0.5 * ramp, False),
        }
        rows = fastest_rows(denoiser, latent, ms, args.steps, cases, args.repeats)
        step_seconds = rows[0][1][2] / args.steps
        gate_seconds = gate_seconds_per_call(latent, ms, args.steps, ramp)
    print(f"latent 1x4x{args.size}x{args.size}, {args.steps} euler steps, tiny UNet2DConditionModel, "
          f"{torch.get_num_threads()} threads")
    print(f"{'run':<24}{'network calls':>14}{'calls w/o skip':>16}{'wall s':>9}{'CPU s':>9}")
    for name, (stats, wall, cpu) in rows:
        calls, without = stats["network_calls"], stats["network_calls_without_skip"]
        print(f"{name:<24}{calls:>14}{without:>16}{wall:>9.3f}{cpu:>9.3f}")
    print(f"gate's own CPU time per call: {gate_seconds * 1e3:.3f} ms = {gate_seconds / step_seconds:.2%} "
          f"of a {step_seconds * 1e3:.1f} ms (CPU) UNet step")


if __name__ == "__main__":
    main()
