"""The `samplers` verb: list the sampler and scheduler names that `edit` and `generate` accept."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("samplers", help="list samplers and schedulers",
                                   description="List the sampler and scheduler names (ComfyUI's names).")
    parser.add_argument("--json", action="store_true", help="print {samplers: [...], schedulers: [...]}")
    parser.set_defaults(func=run)


def run(args) -> int:
    from diffdiff.metadata import SAMPLER_LABELS, SCHEDULER_LABELS
    from diffdiff.sampling import SAMPLERS, SCHEDULERS

    samplers, schedulers = tuple(SAMPLERS), SCHEDULERS
    if args.json:
        print(json.dumps({"samplers": list(samplers), "schedulers": list(schedulers)}))
        return 0
    print("samplers:")
    for name in samplers:
        label = SAMPLER_LABELS.get(name)
        print(f"  {name}" + (f"  ({label})" if label else ""))
    print("schedulers:")
    for name in schedulers:
        label = SCHEDULER_LABELS.get(name)
        print(f"  {name}" + (f"  ({label})" if label else ""))
    return 0
