"""The `upscale` verb: build the upscale request (options, image, map and the output's size checked), check
the files, then load the model, enlarge, refine with a tiled differential edit, and write one PNG."""

from __future__ import annotations

from diffdiff.cli.options import (
    HelpFormatter,
    add_file_options,
    add_model_options,
    add_prompt_options,
    add_sampling_options,
    add_tiling_options,
    request_keywords,
    run_request,
)


def register(subparsers) -> None:
    from diffdiff.request import STRENGTH_SOURCES

    parser = subparsers.add_parser(
        "upscale", help="enlarge an image and refine it tile by tile (strength per pixel)",
        description="Pixel upscale (Lanczos or an upscaler model), then a tiled differential-diffusion "
                    "refine; tiles with no active pixel at a step are skipped exactly.",
        formatter_class=HelpFormatter)
    parser.add_argument("image", metavar="IMAGE", help="the image to upscale")
    parser.add_argument("--prompt", default="", help="what the image shows")
    parser.add_argument("--negative", default="", help="negative prompt")
    enlarge = parser.add_argument_group("enlarge and refine")
    enlarge.add_argument("--scale", type=float, default=2.0, help="enlargement factor in (0, 16]")
    enlarge.add_argument("--strength", type=float, help="uniform refine strength in [0, 1] (default 0.35)")
    enlarge.add_argument("--strength-from", choices=STRENGTH_SOURCES,
                         help="per-pixel strength from image detail, a detail quadtree, or --map")
    enlarge.add_argument("--map", metavar="FILE", help="strength map file for --strength-from map")
    enlarge.add_argument("--min-strength", type=float, default=0.0, help="strength of the flattest areas")
    enlarge.add_argument("--max-strength", type=float, default=0.5, help="strength of the most detailed")
    enlarge.add_argument("--upscaler", metavar="MODEL", help=".pth/.safetensors upscaler (needs spandrel)")
    add_sampling_options(parser, batch=False)
    add_tiling_options(parser, tile_help="network tile size in pixels (multiple of 8); auto = the model's "
                                         "native size")
    add_prompt_options(parser)
    add_model_options(parser)
    add_file_options(parser, batch=False)
    parser.set_defaults(func=run_upscale)


def run_upscale(args) -> int:
    from diffdiff.pipeline import run_upscale as run
    from diffdiff.request import UpscaleRequest

    request = UpscaleRequest.build(args.image, args.prompt, negative=args.negative,
                                   **request_keywords(args, UpscaleRequest))
    return run_request(args, request, run, [args.image, args.map, args.upscaler])
