"""The `ui` verb: serve the local web page (paint a strength map, edit, watch it run, keep results)."""

from __future__ import annotations

import sys

from diffdiff.cli.options import HelpFormatter, add_device_options


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ui", help="a local web page: paint a strength map and edit",
        description="Serve the editing page on this computer (http://127.0.0.1:7860 by default). With no "
                    "model given, the page offers the bundled demo model.",
        formatter_class=HelpFormatter)
    parser.add_argument("--model", metavar="PATH", help="the model the page starts with (.safetensors or a "
                                                        "diffusers folder; default: the demo model)")
    parser.add_argument("--models-dir", metavar="DIR", help="also offer every model in this folder")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; 0.0.0.0 exposes the page to your network (see the "
                             "warning it prints)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--output", default="diffdiff-ui-output", metavar="DIR",
                        help="where results are written; the only folder the page serves files from")
    parser.add_argument("--depth-model", metavar="DIR", help="a Depth Anything folder for the Depth map tool")
    parser.add_argument("--max-pixels", type=int, help="largest image the page accepts, in pixels")
    add_device_options(parser)
    parser.set_defaults(func=run_ui)


def run_ui(args) -> int:
    from diffdiff.errors import DiffdiffError
    from diffdiff.ui.server import exposure_warning

    if not 0 < args.port < 65536:
        raise DiffdiffError(f"--port must be in 1..65535; got {args.port}")
    if args.max_pixels is not None and args.max_pixels < 64 * 64:
        raise DiffdiffError(f"--max-pixels must be at least {64 * 64}; got {args.max_pixels}")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise DiffdiffError("the page needs Gradio: pip install 'diffdiff[web]'") from None
    warning = exposure_warning(args.host, args.port)
    if warning:
        print(warning, file=sys.stderr)
    studio = make_studio(args)
    print(f"loading {studio.shelf.default_name()} …", file=sys.stderr)
    studio.shelf.get()  # once, before the first visitor
    from diffdiff.ui.server import launch

    launch(studio, args.host, args.port)
    return 0


def make_studio(args):
    from diffdiff.demo import DEMO_MODEL
    from diffdiff.ui.handlers import Studio
    from diffdiff.ui.models import ModelShelf
    from diffdiff.ui.uploads import PAGE_MAX_PIXELS

    default = args.model or (None if args.models_dir else DEMO_MODEL)
    shelf = ModelShelf(default, args.models_dir, device=args.device, dtype=args.dtype)
    if not shelf.names():
        from diffdiff.errors import DiffdiffError

        raise DiffdiffError(f"no models in {args.models_dir!r}; give --model FILE")
    return Studio(shelf, args.output, max_pixels=args.max_pixels or PAGE_MAX_PIXELS,
                  depth_model=args.depth_model)
