"""Entry point of the `diffdiff` command: builds the verb parsers and turns every failure into one line.

Each sibling module that defines `register(subparsers)` adds one verb; its parser sets `func=handler`, where
`handler(args) -> int | None`. Any exception ends with `error: <message>` on stderr and exit code 2; `--debug`
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback

import diffdiff.cli as cli_package

EXIT_USAGE = 2


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one `error:` line (with a pointer to --help), exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="diffdiff",
        description="Diffusion image editing where the denoising strength is a per-pixel map.",
    )
    parser.add_argument("--debug", action="store_true", help="show a full traceback on errors")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda m: m.name):
        if info.name == "main":
            continue
        module = importlib.import_module(f"{cli_package.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def _message(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (ValueError, OSError, KeyError)) or type(exc).__module__.startswith("diffdiff"):
        return text
    return f"{type(exc).__name__}: {text}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args([a for a in argv if a != "--debug"])  # before or after the verb
        if getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
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
        print(f"error: {_message(exc)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
