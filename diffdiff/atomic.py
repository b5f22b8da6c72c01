"""Atomic file output: write to a temporary file beside the target, then rename, so no half-written file.

An existing target is refused without `overwrite`; the message's `hint` says how to allow it: by default
for Python callers and the command line both, `CLI_OVERWRITE_HINT` for the CLI's own checks. Inside
`sigterm_as_interrupt()` a SIGTERM raises KeyboardInterrupt, so the clean-ups here run before the exit.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import DiffdiffError

OVERWRITE_HINT = "pass overwrite=True (--overwrite on the command line) to replace it"
CLI_OVERWRITE_HINT = "pass --overwrite to replace it"


def check_writable(path: str | os.PathLike, overwrite: bool = False, *, hint: str = OVERWRITE_HINT) -> Path:
    """Fail early (before any work) if `path` exists without `overwrite` or its folder is not writable."""
    path = Path(path)
    if path.is_dir():
        raise DiffdiffError(f"cannot write {path}: it is a folder")
    if path.exists() and not overwrite:
        raise DiffdiffError(f"{path} exists; {hint}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise DiffdiffError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise DiffdiffError(f"cannot write {path}: folder {folder} is not writable")
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False, *,
                 hint: str = OVERWRITE_HINT) -> Path:
    """Call `write(tmp_path)` and move the result onto `path`; on any failure nothing is left behind."""
    path = check_writable(path, overwrite, hint=hint)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions of a plain open()
    try:
        write(tmp_path)
        if path.exists() and not overwrite:
            raise DiffdiffError(f"{path} exists; {hint}")
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises KeyboardInterrupt, so `finally` / `except BaseException` clean-ups (temporary
    files, staging folders) run; Python's default for SIGTERM ends the process without them.

    Only the main thread can set signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
