"""What the user asks for: `LoraUse` (file + strengths), the `FILE[:WEIGHT[:TEXT_WEIGHT]]` flag, A1111's
`<lora:NAME:W>` lookup in a LoRA folder, and A1111's short LoRA hash for the image metadata."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import DiffdiffError

LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt", ".bin", ".pth")
HASH_DIGITS = 12  # A1111's "Lora hashes": the first 12 hex digits


@dataclass(frozen=True)
class LoraUse:
    """One LoRA as the user asked for it: `weight` = strength on the UNet, `text_weight` = on the text
    encoder(s) (None: same as `weight`)."""

    path: Path
    weight: float = 1.0
    text_weight: float | None = None

    @property
    def name(self) -> str:
        """The file's stem, as A1111 shows it."""
        return Path(self.path).stem

    @property
    def text_strength(self) -> float:
        """The strength on the text encoder(s)."""
        return self.weight if self.text_weight is None else self.text_weight


def _number(text: str, what: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DiffdiffError(
            f"bad LoRA {what} {text!r} in {flag!r}: expected a number such as 0.8"
            " (FILE[:WEIGHT[:TEXT_WEIGHT]])"
        )
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_lora_flag(text: str) -> LoraUse:
    """`FILE[:WEIGHT[:TEXT_WEIGHT]]` -> LoraUse. The numbers are split off from the right, so a path with ':'
    (C:\\loras\\x.safetensors) survives; whatever follows a LoRA file's suffix must be numbers."""
    path, numbers = text, []
    while len(numbers) < 2 and ":" in path and not path.lower().endswith(LORA_SUFFIXES):
        head, _, tail = path.rpartition(":")
        if not (_is_number(tail) or head.lower().endswith(LORA_SUFFIXES)):
            break  # the ':' belongs to the path
        numbers.insert(0, tail)
        path = head
    if any(f"{suffix}:" in path.lower() for suffix in LORA_SUFFIXES):
        raise DiffdiffError(
            f"bad LoRA flag {text!r}: after the file name expected at most two numbers"
            " (FILE[:WEIGHT[:TEXT_WEIGHT]])"
        )
    if not path.strip():
        raise DiffdiffError(f"LoRA flag {text!r} names no file (FILE[:WEIGHT[:TEXT_WEIGHT]])")
    weight = _number(numbers[0], "weight", text) if numbers else 1.0
    text_weight = _number(numbers[1], "text weight", text) if len(numbers) > 1 else None
    return LoraUse(Path(path).expanduser(), weight, text_weight)


def find_lora(name: str, lora_dir: Path | None) -> Path:
    """A1111's `<lora:NAME:W>` lookup: NAME.safetensors in `lora_dir` or its sub-folders (case-insensitive
    stem match; NAME may include sub-folders, 'style/ink'); one-line errors: missing, ambiguous, no folder."""
    if lora_dir is None:
        raise DiffdiffError(f"<lora:{name}> needs a LoRA folder to look in (lora_dir / --lora-dir)")
    folder = Path(lora_dir).expanduser()
    if not folder.is_dir():
        raise DiffdiffError(f"LoRA folder not found: {folder}")
    wanted = name.strip().replace("\\", "/")
    if wanted.lower().endswith(LORA_SUFFIXES):
        wanted = wanted.rsplit(".", 1)[0]
    wanted_lower = wanted.lower()
    found = []
    for candidate in sorted(folder.rglob("*")):
        if not candidate.is_file() or candidate.suffix.lower() != ".safetensors":
            continue
        relative = candidate.relative_to(folder).with_suffix("").as_posix().lower()
        if candidate.stem.lower() == wanted_lower or relative == wanted_lower:
            found.append(candidate)
    exact = [
        path for path in found if path.relative_to(folder).with_suffix("").as_posix().lower() == wanted_lower
    ]
    if len(found) > 1 and len(exact) == 1:
        return exact[0]
    if not found:
        raise DiffdiffError(
            f"no LoRA named {name!r} in {folder} (looked for {wanted}.safetensors, also in sub-folders)"
        )
    if len(found) > 1:
        listed = ", ".join(str(path.relative_to(folder)) for path in found[:4])
        raise DiffdiffError(f"LoRA name {name!r} is ambiguous in {folder}: {listed}; name the sub-folder too")
    return found[0]


def _safetensors_data_offset(path: Path) -> int | None:
    """Where a .safetensors file's tensor data starts (8 + header length), None if it is not one."""
    with open(path, "rb") as handle:
        start = handle.read(8)
        if len(start) < 8:
            return None
        length = int.from_bytes(start, "little")
        if length <= 0 or length > path.stat().st_size - 8:
            return None
        header = handle.read(length)
    try:
        json.loads(header)
    except ValueError:
        return None
    return 8 + length


def lora_short_hash(path: Path) -> str:
    """A1111's "Lora hashes" value: the first 12 hex digits of the sha256 of a .safetensors file's bytes after
    its header (A1111's "addnet" hash), of the whole file for other files."""
    from ..models.loaded import file_sha256_once

    path = Path(path)
    try:
        offset = _safetensors_data_offset(path) if path.suffix.lower() == ".safetensors" else None
        return file_sha256_once(path, start=offset or 0)[:HASH_DIGITS]
    except OSError as error:
        reason = (error.strerror or str(error) or type(error).__name__).lower()
        raise DiffdiffError(f"cannot read LoRA {path}: {reason}") from None
