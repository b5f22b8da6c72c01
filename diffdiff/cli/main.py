"""Entry point of the `diffdiff` command: builds the verb parsers and turns every failure into one line.

`VERBS` lists every verb and the module whose `register(subparsers)` adds it; its parser sets
`func=handler`, where `handler(args) -> int | None`. Only the named verb's module is imported, so a quick
verb such as `samplers` does not pay for OpenCV or the models.
Any exception ends with `error: <message>` on stderr and exit code 2; `--debug`
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

EXIT_USAGE = 2
VERBS = {  # verb → module in diffdiff.cli that registers it
    "edit": "edit",
    "generate": "edit",
    "upscale": "upscale",
    "map": "map",
    "samplers": "samplers",
    "batch": "batch",
    "make-tiny-model": "models",
    "ui": "ui",
}


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one `error:` line (with a pointer to --help), exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser with every verb, or with `verb` alone when it is one of VERBS."""
    parser = OneLineErrorParser(
        prog="diffdiff",
        description="Diffusion image editing where the denoising strength is a per-pixel map.",
    )
    parser.add_argument("--debug", action="store_true", help="show a full traceback on errors")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    modules = [VERBS[verb]] if verb in VERBS else list(dict.fromkeys(VERBS.values()))
    for name in modules:
        importlib.import_module(f"diffdiff.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        argv = [a for a in argv if a != "--debug"]  # before or after the verb
        parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        from diffdiff.atomic import sigterm_as_interrupt

        with sigterm_as_interrupt():  # a killed run removes its temporary files before it ends
            result = args.func(args)
        return int(result or 0)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # argparse: usage errors already printed
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_USAGE
    except BaseException as exc:  # noqa: BLE001 - the CLI's contract: one line, never a traceback
        if debug:
            traceback.print_exc()
        from diffdiff.errors import one_line

        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
