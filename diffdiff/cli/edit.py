"""The `edit` and `generate` verbs: build the request (every option, the image and the map checked), check
the files, then load the model, run, and write PNGs. Mistakes fail in well under a second, before the
model loads. With --batch N the images go to OUT.png, OUT-1.png, ..., OUT-(N-1).png; image k used seed + k.
"""

from __future__ import annotations

from diffdiff.cli.options import (
    HelpFormatter,
    add_file_options,
    add_gate_options,
    add_model_options,
    add_prompt_options,
    add_region_options,
    add_sampling_options,
    add_tiling_options,
    request_keywords,
    run_request,
)

TILE_HELP = "network tile size in pixels (multiple of 8), auto (tile well above the model's size) or off"


def register(subparsers) -> None:
    edit = subparsers.add_parser(
        "edit", help="edit an image where a strength map says (white = change, black = keep)",
        description="Differential-diffusion edit: each pixel is denoised as strongly as the map says.",
        formatter_class=HelpFormatter)
    edit.add_argument("image", metavar="IMAGE", help="the image to edit")
    edit.add_argument("--prompt", required=True, help="what the changed areas should show")
    edit.add_argument("--negative", default="", help="negative prompt")
    edit.add_argument("--map", required=True, metavar="MAP",
                      help="strength map image (white = change fully, black = keep exactly) or a number 0..1")
    add_gate_options(edit)
    add_region_options(edit)
    add_sampling_options(edit, denoise=True)
    add_tiling_options(edit, tile_help=TILE_HELP)
    add_prompt_options(edit)
    add_model_options(edit)
    add_file_options(edit)
    edit.set_defaults(func=run_edit)

    generate = subparsers.add_parser("generate", help="make an image from a prompt",
                                     description="Text to image with the same samplers, tiles and metadata.",
                                     formatter_class=HelpFormatter)
    generate.add_argument("--prompt", required=True, help="what the image should show")
    generate.add_argument("--negative", default="", help="negative prompt")
    generate.add_argument("--width", type=int, default=512, help="image width in pixels")
    generate.add_argument("--height", type=int, default=512, help="image height in pixels")
    add_sampling_options(generate)
    add_tiling_options(generate, tile_help=TILE_HELP)
    add_prompt_options(generate)
    add_model_options(generate)
    add_file_options(generate)
    generate.set_defaults(func=run_generate)


def run_edit(args) -> int:
    from diffdiff.pipeline import run_edit as run
    from diffdiff.request import EditRequest, map_argument

    strength_map = map_argument(args.map)
    request = EditRequest.build(args.image, strength_map, args.prompt, negative=args.negative,
                                **request_keywords(args, EditRequest))
    inputs = [args.image] + ([strength_map] if isinstance(strength_map, str) else [])
    return run_request(args, request, run, inputs)


def run_generate(args) -> int:
    from diffdiff.pipeline import run_generate as run
    from diffdiff.request import GenerateRequest

    request = GenerateRequest.build(args.prompt, negative=args.negative, width=args.width, height=args.height,
                                    **request_keywords(args, GenerateRequest))
    return run_request(args, request, run, [])
