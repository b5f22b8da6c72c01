"""The one exception type for bad user input, and how any failure becomes the single line the CLI prints
(and a batch job's ledger entry records)."""


class DiffdiffError(ValueError):
    """A problem with what the user gave us (file, map, option); the message says what and how to fix it."""


def one_line(exc: BaseException) -> str:
    """`exc` as one line: its message alone for our errors and the usual user-facing ones (ValueError,
    OSError, KeyError), else prefixed with its type name."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (ValueError, OSError, KeyError)) or type(exc).__module__.startswith("diffdiff"):
        return text
    return f"{type(exc).__name__}: {text}"
