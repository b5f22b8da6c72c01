"""The `upscale` verb: enlarge an image, then refine it with a tiled differential edit; writes one PNG.

Every option is checked before the model loads (output writable, sizes multiples of 8, strengths in
range, a map file for --strength-from map), so mistakes fail at once.
"""

from __future__ import annotations

from pathlib import Path

from diffdiff.cli.options import add_model_options, check_model_paths, load_model_from_args, write_results
from diffdiff.errors import DiffdiffError

BLENDS = ("mixture", "multidiffusion", "spot")
STRENGTH_SOURCES = ("detail", "quadtree", "map", "uniform")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "upscale", help="enlarge an image and refine it tile by tile (strength per pixel)",
        description="Pixel upscale (Lanczos or an upscaler model), then a tiled differential-diffusion "
                    "refine; tiles with no active pixel at a step are skipped exactly.")
    parser.add_argument("image", metavar="IMAGE", help="the image to upscale")
    parser.add_argument("--scale", type=float, default=2.0, help="enlargement factor (default 2)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.png", help="output PNG")
    parser.add_argument("--prompt", default="", help="what the image shows")
    parser.add_argument("--negative", default="", help="negative prompt")
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--scheduler", default="normal")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tile", type=int, metavar="SIZE", help="tile px, multiple of 8 (default native)")
    parser.add_argument("--overlap", type=int, metavar="PX", help="tile overlap in px, multiple of 8")
    parser.add_argument("--blend", default="mixture", choices=BLENDS)
    parser.add_argument("--tile-batch", type=int, default=4, help="tiles per network call")
    parser.add_argument("--strength", type=float, help="uniform strength in [0, 1] (default 0.35)")
    parser.add_argument("--strength-from", choices=STRENGTH_SOURCES,
                        help="per-pixel strength from image detail, a detail quadtree, or --map")
    parser.add_argument("--map", metavar="FILE", help="strength map file for --strength-from map")
    parser.add_argument("--min-strength", type=float, default=0.0)
    parser.add_argument("--max-strength", type=float, default=0.5)
    parser.add_argument("--upscaler", metavar="MODEL", help=".pth/.safetensors upscaler (spandrel)")
    parser.add_argument("--stats", metavar="FILE.json", help="write calls, tiles, steps, peak RSS, seconds")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--quiet", action="store_true", help="no progress bar; print nothing on success")
    add_model_options(parser)
    parser.set_defaults(func=run_upscale)


def _multiple_of_8(value, name: str, minimum: int) -> None:
    if value is not None and (value < minimum or value % 8):
        raise DiffdiffError(f"{name} must be a multiple of 8 and at least {minimum}, got {value}")


def check_arguments(args) -> None:
    """Every check that needs no model: raises DiffdiffError naming the problem."""
    from diffdiff.atomic import check_writable
    from diffdiff.imageio import check_aspect, check_outputs, check_readable_image
    from diffdiff.sampling import SAMPLERS, SCHEDULERS
    from diffdiff.upscale import check_scale

    check_scale(args.scale)
    if args.sampler not in SAMPLERS:
        raise DiffdiffError(f"unknown sampler {args.sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    if args.scheduler not in SCHEDULERS:
        raise DiffdiffError(f"unknown scheduler {args.scheduler!r}; choose one of: {', '.join(SCHEDULERS)}")
    if args.steps < 1:
        raise DiffdiffError(f"--steps must be at least 1, got {args.steps}")
    _multiple_of_8(args.tile, "--tile", 64)
    _multiple_of_8(args.overlap, "--overlap", 0)
    if args.tile is not None and args.overlap is not None and args.overlap >= args.tile:
        raise DiffdiffError(f"--overlap ({args.overlap}) must be smaller than --tile ({args.tile})")
    if args.tile_batch < 1:
        raise DiffdiffError(f"--tile-batch must be at least 1, got {args.tile_batch}")
    for name, value in (("--strength", args.strength), ("--min-strength", args.min_strength),
                        ("--max-strength", args.max_strength)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise DiffdiffError(f"{name} must be in [0, 1], got {value}")
    if args.min_strength > args.max_strength:
        raise DiffdiffError("--min-strength must not exceed --max-strength")
    if args.strength is not None and args.strength_from not in (None, "uniform"):
        raise DiffdiffError("give either --strength or --strength-from detail|quadtree|map, not both")
    if args.strength_from == "map":
        if not args.map:
            raise DiffdiffError("--strength-from map needs --map FILE")
        map_width, map_height = check_readable_image(args.map)
        check_aspect(check_readable_image(args.image), (map_height, map_width))
    elif args.map:
        raise DiffdiffError("--map is used only with --strength-from map")
    if args.upscaler and not Path(args.upscaler).is_file():
        raise DiffdiffError(f"upscaler model {args.upscaler} not found")
    check_readable_image(args.image)
    check_outputs(args.output, 1, overwrite=args.overwrite)  # a .png: the metadata lives in its text chunks
    if args.stats:
        check_writable(args.stats, overwrite=True)
    check_model_paths(args)


def run_upscale(args) -> int:
    from diffdiff.progress import StepProgress
    from diffdiff.upscale import upscale

    check_arguments(args)
    model = load_model_from_args(args)
    stats: dict = {}
    with StepProgress(args.steps, description="upscale", quiet=args.quiet) as progress:
        result = upscale(
            args.image, model=model, scale=args.scale, prompt=args.prompt, negative=args.negative,
            sampler=args.sampler, scheduler=args.scheduler, steps=args.steps, cfg=args.cfg, seed=args.seed,
            tile=args.tile, overlap=args.overlap, blend=args.blend, tile_batch=args.tile_batch,
            strength=args.strength, strength_from=args.strength_from, map_path=args.map,
            min_strength=args.min_strength, max_strength=args.max_strength, upscaler=args.upscaler,
            stats=stats, callback=progress)
    return write_results(args, result, stats)
