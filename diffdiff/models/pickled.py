"""Read a pickled checkpoint (.ckpt/.pt/.bin/.pth) safely: torch's weights-only loader, one-line errors.

Only on opt-in (`allow_pickle`). torch's own messages run to many lines with advice about `weights_only=False`
(the unsafe option we never take) and its warnings about pickle protocols say nothing the user can act on,
so warnings are silenced and a failure is described by what the file holds, read without running it
(`pickletools` walks the opcodes; nothing is unpickled).
"""

from __future__ import annotations

import pickletools
import re
import warnings
import zipfile
from pathlib import Path

import torch

from ..errors import DiffdiffError

# torch.save's legacy (pre-zip) format starts with this number pickled on its own.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
OPCODE_LIMIT = 100_000  # enough to see what a pickle holds; a huge plain pickle is not walked to its end
CONTAINERS = {"EMPTY_DICT": "a dict", "DICT": "a dict", "EMPTY_LIST": "a list", "LIST": "a list",
              "EMPTY_TUPLE": "a tuple", "TUPLE": "a tuple", "EMPTY_SET": "a set"}


def read_pickled(path: Path) -> dict:
    """The tensors of a pickled state dict (a top-level `state_dict` entry is unwrapped)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4 in the checkpoint ..."
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise DiffdiffError(describe_failure(path, error)) from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        found = type(loaded).__name__
        raise DiffdiffError(f"{path.name} holds a {found}, not a state dict (a dict of tensors)")
    tensors = {key: value for key, value in loaded.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        if not loaded:
            raise DiffdiffError(f"{path.name} holds an empty dict, not model weights")
        keys = ", ".join(str(key) for key in list(loaded)[:5]) + (", ..." if len(loaded) > 5 else "")
        raise DiffdiffError(f"{path.name} holds a dict with no tensors (keys: {keys}), not model weights")
    return tensors


def describe_failure(path: Path, error: Exception) -> str:
    """One line saying why torch's weights-only loader refused `path`."""
    text = str(error)
    found = UNSUPPORTED_GLOBAL.search(text)
    if found:
        return (f"{path.name} refers to {found.group(1)}, which the safe (weights-only) loader refuses;"
                " it is not a plain state dict of tensors")
    if path.stat().st_size > 0 and not zipfile.is_zipfile(path):
        kind = _first_pickle_kind(path)
        if kind is None:
            return f"{path.name} is not a PyTorch checkpoint (neither torch.save's format nor a pickle)"
        if kind != "legacy":
            holding = f" (holding {kind})" if kind else ""
            return f"{path.name} is a plain Python pickle{holding}, not a checkpoint saved with torch.save"
    first = re.sub(r"\x1b\[[0-9;]*m", "", text).strip().splitlines()
    reason = " ".join(first[0].split())[:200] if first else type(error).__name__  # EOFError('') when empty
    return f"cannot load pickled checkpoint {path.name}: {reason}"


def _first_pickle_kind(path: Path) -> str | None:
    """"legacy" for torch's pre-zip format, else what the file's first pickle holds ("a dict", ... or "");
    None when it is not a well-formed pickle (opcodes are only read, never run)."""
    kind = None
    try:
        with open(path, "rb") as handle:
            for count, (opcode, argument, _) in enumerate(pickletools.genops(handle)):
                if kind is None and opcode.name not in ("PROTO", "FRAME", "MARK"):
                    if opcode.name in ("LONG1", "LONG4", "LONG") and argument == LEGACY_MAGIC:
                        return "legacy"
                    kind = CONTAINERS.get(opcode.name, "")
                if count >= OPCODE_LIMIT:
                    break
    except Exception:  # noqa: BLE001 - any failure to walk the opcodes means "not a pickle"
        return None
    return kind
