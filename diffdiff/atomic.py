"""Atomic file output: write to a temporary file beside the target, then rename, so no half-written file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import DiffdiffError


def check_writable(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Fail early (before any work) if `path` exists without `overwrite` or its folder is not writable."""
    path = Path(path)
    if path.is_dir():
        raise DiffdiffError(f"cannot write {path}: it is a folder")
    if path.exists() and not overwrite:
        raise DiffdiffError(f"{path} exists; pass --overwrite to replace it")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise DiffdiffError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise DiffdiffError(f"cannot write {path}: folder {folder} is not writable")
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call `write(tmp_path)` and move the result onto `path`; on any failure nothing is left behind."""
    path = check_writable(path, overwrite)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions of a plain open()
    try:
        write(tmp_path)
        if path.exists() and not overwrite:
            raise DiffdiffError(f"{path} exists; pass --overwrite to replace it")
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path
