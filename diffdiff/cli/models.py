"""The `make-tiny-model` verb: write a small random model of a family (diffusers folder or .safetensors)."""

from __future__ import annotations

import argparse

from ..models.families import FAMILIES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-tiny-model",
        help="write a tiny random-weight model (for tests and demos)",
        description=(
            "Write a tiny model of FAMILY with random weights and the real network classes: a diffusers "
            "folder at DIR, or with --single-file one A1111/ComfyUI-layout DIR/tiny-FAMILY.safetensors "
            "(or DIR itself when it ends in .safetensors)."
        ),
    )
    parser.add_argument("directory", metavar="DIR", help="output folder (or .safetensors with --single-file)")
    parser.add_argument("--family", choices=FAMILIES, default="sd1", help="model family (default sd1)")
    parser.add_argument("--single-file", action="store_true", help="write one .safetensors checkpoint")
    parser.add_argument("--inpainting", action="store_true",
                        help="an inpainting UNet (the latent, a mask and a masked-image latent as input)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from ..atomic import CLI_OVERWRITE_HINT
    from ..models.tiny import make_tiny_model

    # main() turns SIGTERM into KeyboardInterrupt: a killed run removes its staging folder first
    path = make_tiny_model(args.directory, args.family, single_file=args.single_file,
                           overwrite=args.overwrite, hint=CLI_OVERWRITE_HINT, inpainting=args.inpainting)
    print(path)
    return 0
