"""The `batch` verb: many edits from a JSON Lines manifest (or image and map folders matched by name) into
one output folder, each model loaded once, surviving kills (see `diffdiff.batch`). Bad lines are reported by
line number and the good ones run; the exit code is 0 only when every job is done."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from diffdiff.cli.options import (
    HelpFormatter,
    add_gate_options,
    add_model_options,
    add_prompt_options,
    add_region_options,
    add_sampling_options,
    add_tiling_options,
    load_options,
    request_keywords,
)

EXIT_SOME_FAILED = 1


def register(subparsers) -> None:
    from diffdiff.batch.work import GROUP_SIZE_ON_CPU, GROUP_SIZE_ON_GPU

    batch = subparsers.add_parser(
        "batch", help="run many edits from a manifest or image/map folders; resumable",
        description="Run a list of edits into one folder. Outputs are named by each job's content hash "
                    "(unless the line names one) and written atomically; a ledger beside them lets a killed "
                    "or repeated run skip what is done. Options given here are defaults for every line.",
        formatter_class=HelpFormatter)
    batch.add_argument("manifest", nargs="?", metavar="MANIFEST.jsonl",
                       help="one JSON object per line (see --example)")
    batch.add_argument("--example", action="store_true", help="print an example manifest and exit")
    batch.add_argument("--images", metavar="DIR", help="instead of a manifest: the images ...")
    batch.add_argument("--maps", metavar="DIR", help="... and their maps, matched by file stem")
    batch.add_argument("-o", "--output", metavar="DIR",
                       help="output folder (made if missing; holds the ledger)")
    batch.add_argument("--prompt", help="prompt of every line that gives none")
    batch.add_argument("--negative", default="", help="negative prompt of every line that gives none")
    run = batch.add_argument_group("running")
    run.add_argument("--group-size", default="auto",
                     help=f"edits of one size and settings sampled together; auto: {GROUP_SIZE_ON_CPU} on "
                          f"the CPU, {GROUP_SIZE_ON_GPU} on a GPU")
    run.add_argument("--retry-failed", action="store_true", help="run again the jobs that failed before")
    run.add_argument("--ray", metavar="auto|ADDRESS|local",
                     help="run on a Ray cluster (auto: the one this machine is part of; local: start one "
                          "here) - needs `pip install diffdiff[ray]`")
    run.add_argument("--workers", type=int, default=2, help="Ray: model-holding workers")
    run.add_argument("--threads", type=int,
                     help="CPU threads per worker (default: torch's choice here, 1 per Ray worker)")
    run.add_argument("--stats", metavar="FILE.json", help="write the summary as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    add_gate_options(batch)
    add_region_options(batch)
    add_sampling_options(batch, denoise=True, batch=False)
    add_tiling_options(batch, tile_help="network tile size in pixels, auto or off")
    add_prompt_options(batch)
    add_model_options(batch, model_help="model of every line that names none (a checkpoint or a diffusers "
                                        "folder)")
    batch.set_defaults(func=run_batch_verb)


def _identify(args):
    """path → the model's identity in job keys: its file hash, with the VAE's, the separate text encoders'
    and the precision."""
    from diffdiff.models.loaded import file_short_hash
    from diffdiff.models.loading import hash_file_of_folder

    vae = file_short_hash(Path(args.vae)) if args.vae else "own"
    text = ",".join(file_short_hash(Path(path)) for path in args.text_encoders or ()) or "own"
    known: dict[str, str] = {}

    def identify(path: str) -> str:
        if path not in known:
            file = hash_file_of_folder(Path(path)) if Path(path).is_dir() else Path(path)
            digest = file_short_hash(file) if file is not None else str(Path(path).resolve())
            known[path] = f"{digest}|vae={vae}|text={text}|dtype={args.dtype or 'auto'}"
        return known[path]

    return identify


def _jobs(args):
    from diffdiff.batch import Defaults, pair_folders, read_manifest
    from diffdiff.errors import DiffdiffError
    from diffdiff.request import EditRequest

    if bool(args.manifest) == bool(args.images or args.maps):
        raise DiffdiffError("give a manifest or --images DIR --maps DIR (see `diffdiff batch --example`)")
    if not args.manifest and not (args.images and args.maps):
        raise DiffdiffError("--images and --maps go together")
    defaults = Defaults(args.prompt, args.negative, args.model, request_keywords(args, EditRequest),
                        _identify(args))
    if args.manifest:
        return read_manifest(args.manifest, defaults)
    return pair_folders(args.images, args.maps, defaults)


def run_batch_verb(args) -> int:
    from diffdiff.atomic import CLI_OVERWRITE_HINT, atomic_write, check_writable
    from diffdiff.batch import EXAMPLE, EXAMPLE_NOTE, BatchSettings, run_batch
    from diffdiff.errors import DiffdiffError
    from diffdiff.request import checks

    if args.example:
        print(EXAMPLE_NOTE + EXAMPLE, end="")
        return 0
    if not args.output:
        raise DiffdiffError("give the output folder with -o DIR")
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise DiffdiffError(f"output {args.output} is a file, not a folder")
    group_size = None if args.group_size == "auto" else checks.count(
        int(args.group_size) if args.group_size.isdigit() else args.group_size, "group size", 1, 64)
    workers = checks.count(args.workers, "workers", 1, 1024)
    threads = checks.count(args.threads, "threads", 1, 1024) if args.threads is not None else None
    if args.stats:
        check_writable(args.stats, True, hint=CLI_OVERWRITE_HINT)
    found = _jobs(args)
    for message in found.errors:
        print(f"error: {message}", file=sys.stderr)
    for message in found.duplicates:
        print(f"note: {message}", file=sys.stderr)
    if not found.jobs:
        raise DiffdiffError("no job to run" + (" (every line has an error)" if found.errors else ""))
    settings = BatchSettings(Path(args.output).absolute(), group_size, args.retry_failed, load_options(args),
                             args.ray, workers, threads, args.quiet)
    summary = run_batch(found.jobs, settings)
    for message in summary.failures:
        print(f"error: {message}", file=sys.stderr)
    print(f"{len(found.errors)} bad line(s); " * bool(found.errors) + summary.line(), file=sys.stderr)
    if args.stats:
        record = {**summary.to_dict(), "bad_lines": found.errors}
        text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        atomic_write(args.stats, lambda tmp: tmp.write_text(text), overwrite=True)
    return EXIT_SOME_FAILED if found.errors or summary.failed or summary.failed_before else 0
