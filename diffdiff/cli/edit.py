"""The `edit` and `generate` verbs: check every input first, then load the model, run, and write PNGs.

Everything that can be checked without the model is checked before loading it (output writable and not
existing unless --overwrite, image and map readable and of the same aspect ratio, sampler / scheduler /
option values), so mistakes fail in well under a second. With --batch N the images go to OUT.png,
OUT-1.png, ..., OUT-(N-1).png; image k used seed + k.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffdiff.cli.options import add_model_options, check_model_paths, load_model_from_args, write_results


def _add_sampling_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampling")
    group.add_argument("--prompt", required=True, help="what the result should show")
    group.add_argument("--negative", default="", help="negative prompt")
    group.add_argument("--sampler", default="euler", help="sampler name (see `diffdiff samplers`)")
    group.add_argument("--scheduler", default="normal", help="scheduler name (see `diffdiff samplers`)")
    group.add_argument("--steps", type=int, default=20)
    group.add_argument("--cfg", type=float, default=7.0, help="classifier-free guidance scale")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--batch", type=int, default=1, help="images to make; image k uses seed + k")
    tiles = parser.add_argument_group("tiles")
    tiles.add_argument("--tile", default="auto", help="auto | off | tile size in pixels (multiple of 8)")
    tiles.add_argument("--overlap", type=int, help="tile overlap in pixels (default a quarter tile)")
    tiles.add_argument("--blend", default="mixture", help="mixture | multidiffusion | spot")
    tiles.add_argument("--tile-batch", type=int, default=4, help="tiles evaluated per network call")


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("-o", "--output", required=True, metavar="OUT.png",
                       help="output PNG (a batch adds OUT-1.png, OUT-2.png, ...)")
    group.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    group.add_argument("--stats", metavar="FILE.json", help="write network calls, tiles, steps and seconds")
    group.add_argument("--quiet", action="store_true", help="no progress bar and no output listing")


def register(subparsers) -> None:
    edit = subparsers.add_parser(
        "edit", help="edit an image where a strength map says (white = change, black = keep)",
        description="Differential-diffusion edit: each pixel is denoised as strongly as the map says.")
    edit.add_argument("image", metavar="IMAGE", help="the image to edit")
    edit.add_argument("--map", required=True, metavar="MAP",
                      help="strength map image (white = change fully, black = keep exactly) or a number 0..1")
    edit.add_argument("--denoise", type=float, default=1.0, help="overall strength scale in (0, 1]")
    edit.add_argument("--gate", default="exact", help="exact (default) | comfy | mask")
    edit.add_argument("--gate-strength", type=float, default=1.0, help="soft gate strength in (0, 1]")
    edit.add_argument("--invert-map", action="store_true", help="use 1 - map (white = keep)")
    edit.add_argument("--no-composite", action="store_true",
                      help="keep the raw decoded image (no laying back of unchanged original pixels)")
    edit.add_argument("--alpha", action="store_true",
                      help="write the generated image with the composite opacity as its alpha channel")
    _add_sampling_options(edit)
    add_model_options(edit)
    _add_output_options(edit)
    edit.set_defaults(func=run_edit)

    generate = subparsers.add_parser("generate", help="make an image from a prompt",
                                     description="Text to image with the same samplers, tiles and metadata.")
    generate.add_argument("--width", type=int, default=512)
    generate.add_argument("--height", type=int, default=512)
    _add_sampling_options(generate)
    add_model_options(generate)
    _add_output_options(generate)
    generate.set_defaults(func=run_generate)


def _common_options(args, **extra) -> dict:
    from diffdiff.pipeline_inputs import validate_options

    return validate_options(
        sampler=args.sampler, scheduler=args.scheduler, steps=args.steps, cfg=args.cfg,
        denoise=extra.get("denoise", 1.0), batch=args.batch, gate=extra.get("gate", "exact"),
        gate_strength=extra.get("gate_strength", 1.0), seed=args.seed, tile=args.tile, overlap=args.overlap,
        blend=args.blend, tile_batch=args.tile_batch)


def _check_outputs(args) -> list[Path]:
    from diffdiff.atomic import check_writable
    from diffdiff.imageio import check_outputs

    outputs = check_outputs(args.output, args.batch, overwrite=args.overwrite)
    if args.stats:
        check_writable(args.stats, overwrite=True)
    return outputs


def _map_argument(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def run_edit(args) -> int:
    from diffdiff.imageio import load_image
    from diffdiff.pipeline import edit
    from diffdiff.pipeline_inputs import check_size, pixel_map
    from diffdiff.progress import StepProgress

    options = _common_options(args, denoise=args.denoise, gate=args.gate, gate_strength=args.gate_strength)
    if args.alpha and args.no_composite:
        from diffdiff.errors import DiffdiffError

        raise DiffdiffError("--alpha writes the composite opacity; drop --no-composite to use it")
    _check_outputs(args)
    image = load_image(args.image)
    check_size(*image.size)
    strength, description = pixel_map(_map_argument(args.map), image.size, invert=args.invert_map)
    check_model_paths(args)
    model = load_model_from_args(args)
    stats: dict = {}
    with StepProgress(options["steps"], description="edit", quiet=args.quiet) as progress:
        result = edit(image, strength, args.prompt, model=model, negative=args.negative,
                      sampler=options["sampler"], scheduler=options["scheduler"], steps=options["steps"],
                      cfg=options["cfg"], seed=options["seed"], denoise=options["denoise"],
                      batch=options["batch"], gate=options["gate"], gate_strength=options["gate_strength"],
                      composite=not args.no_composite, alpha=args.alpha, tile=options["tile"],
                      overlap=options["overlap"], blend=options["blend"], tile_batch=options["tile_batch"],
                      callback=progress, stats=stats)
    result.settings["map"] = description
    result.settings["invert_map"] = bool(args.invert_map)
    result.settings["image"] = Path(args.image).name
    return write_results(args, result, stats)


def run_generate(args) -> int:
    from diffdiff.errors import DiffdiffError
    from diffdiff.pipeline import generate
    from diffdiff.progress import StepProgress

    options = _common_options(args)
    for value, name in ((args.width, "--width"), (args.height, "--height")):
        if not 8 <= value <= 16384:
            raise DiffdiffError(f"{name} must lie in [8, 16384]; got {value}")
    _check_outputs(args)
    check_model_paths(args)
    model = load_model_from_args(args)
    stats: dict = {}
    with StepProgress(options["steps"], description="generate", quiet=args.quiet) as progress:
        result = generate(args.prompt, model=model, width=args.width, height=args.height,
                          negative=args.negative, sampler=options["sampler"], scheduler=options["scheduler"],
                          steps=options["steps"], cfg=options["cfg"], seed=options["seed"],
                          batch=options["batch"], tile=options["tile"], overlap=options["overlap"],
                          blend=options["blend"], tile_batch=options["tile_batch"], callback=progress,
                          stats=stats)
    return write_results(args, result, stats)
