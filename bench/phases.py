"""Where a `diffdiff edit` job's time goes, per phase, per size and precision, as the CLI runs it.

Each job is one `python -m diffdiff edit … --stats` process (so imports count, as they do for a user):
an SD1.5-shaped checkpoint (default: a full-size one with random weights, written once by
`bench/inputs.py`), a synthetic picture with a left-to-right gradient map, euler/karras, 20 steps,
CFG 7. The stats give the phases (import, load, text encode, VAE encode, sampling, decode, composite,
write); `other` is the rest of the process's wall time (interpreter start, reading the image and map,
checks). `--baseline DIR` runs the same jobs with the diffdiff source tree in DIR too (an older commit,
checked out with `git worktree add DIR REV`), alternating with this tree, so the ratio is side by side.
Prints a table and writes JSON with the machine's CPU model and flags.

Usage: `python bench/phases.py [--sizes 512 1024] [--precisions fp32 bf16 fp16 auto] [--steps 20]
[--repeats 1] [--model FILE] [--baseline DIR] [--json OUT.json]`
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.inputs import full_size_checkpoint, gradient_map, synthetic_picture, timed_cli_job  # noqa: E402
from diffdiff.phases import PHASES  # noqa: E402

RELEVANT_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                  "amx_fp16")


def machine() -> dict:
    from diffdiff.models.precision import cpu_flags

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    flags = cpu_flags()
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "flags": [flag for flag in RELEVANT_FLAGS if flag in flags]}


def write_inputs(folder: Path, size: int) -> tuple[Path, Path]:
    picture = synthetic_picture(folder / f"picture-{size}.png", size)
    return picture, gradient_map(folder / f"map-{size}.png", size)


def run_job(source: Path, model: Path, image: Path, strength: Path, precision: str, steps: int,
            folder: Path) -> dict:
    arguments = ["edit", str(image), "--map", str(strength), "--prompt", "a mountain lake at dawn",
                 "--model", str(model), "--steps", str(steps), "--sampler", "euler", "--scheduler", "karras",
                 "--cfg", "7", "--seed", "1", "--device", "cpu", "-o", str(folder / "out.png"), "--overwrite",
                 "--quiet"]
    if precision != "auto":
        arguments += ["--dtype", precision]
    wall, record = timed_cli_job(arguments, folder / "stats.json", source, cwd=folder)
    phases = record.get("phases", {})
    return {"wall": wall, "phases": phases, "other": wall - sum(phases.values()) if phases else None}


def median_of(runs: list[dict]) -> dict:
    phases = {name: statistics.median(run["phases"].get(name, 0.0) for run in runs)
              for name in PHASES if any(name in run["phases"] for run in runs)}
    others = [run["other"] for run in runs if run["other"] is not None]
    return {"wall": statistics.median(run["wall"] for run in runs), "phases": phases,
            "other": statistics.median(others) if others else None, "runs": len(runs)}


def print_table(results: dict) -> None:
    columns = list(results)
    print(f"{'phase':12s}" + "".join(f"{column:>22s}" for column in columns))
    for name in (*PHASES, "other", "wall"):
        cells = []
        for column in columns:
            entry = results[column]
            value = entry["wall"] if name == "wall" else entry["other"] if name == "other" else \
                entry["phases"].get(name)
            cells.append(f"{value:22.2f}" if value is not None else f"{'-':>22s}")
        print(f"{name:12s}" + "".join(cells))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16", "auto"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--baseline", type=Path, help="older diffdiff source, run side by side (fp32)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    model = args.model or full_size_checkpoint()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="diffdiff-phases-") as temp:
        folder = Path(temp)
        for size in args.sizes:
            image, strength = write_inputs(folder, size)
            jobs = [(f"{size} {precision}", ROOT, precision) for precision in args.precisions]
            if args.baseline:
                jobs.insert(0, (f"{size} fp32 baseline", args.baseline, "fp32"))
            runs: dict[str, list] = {name: [] for name, _, _ in jobs}
            for _ in range(args.repeats):
                for name, source, precision in jobs:
                    runs[name].append(run_job(source, model, image, strength, precision, args.steps, folder))
                    print(f"{name}: {runs[name][-1]['wall']:.1f} s", file=sys.stderr, flush=True)
            results.update({name: median_of(done) for name, done in runs.items()})
    print_table(results)
    report = {"machine": machine(), "steps": args.steps, "model": str(model), "results": results}
    for name, entry in results.items():
        size = name.split()[0]
        base = results.get(f"{size} fp32 baseline") or results.get(f"{size} fp32")
        if base:
            entry["wall_ratio_to_fp32_before"] = round(entry["wall"] / base["wall"], 3)
    print(json.dumps(report["machine"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
