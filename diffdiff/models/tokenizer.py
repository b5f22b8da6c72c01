"""The shipped CLIP tokenizer: load it (padding with <|endoftext|> or with "!") or copy it into a folder.

One copy of CLIP's BPE vocabulary lives in `diffdiff/models/tokenizers/clip/` (built offline by
scripts/build_tokenizers.py). Every Stable Diffusion text encoder uses it; they differ only in the padding
token: SD1.x and SDXL's first encoder pad with <|endoftext|> (id 49407), SD2.x and SDXL's second encoder
(OpenCLIP) pad with "!" (id 0). `TOKENIZER_KINDS` names the two variants.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import DiffdiffError

TOKENIZER_FOLDER = Path(__file__).resolve().parent / "tokenizers" / "clip"
PAD_TOKENS = {"clip": "<|endoftext|>", "clip-pad0": "!"}
TOKENIZER_KINDS = tuple(PAD_TOKENS)

# Which tokenizer each family's encoders use, in the order of the diffusers components tokenizer, tokenizer_2.
FAMILY_TOKENIZERS = {
    "sd1": ("clip",),
    "sd2": ("clip-pad0",),
    "sd2-v": ("clip-pad0",),
    "sdxl": ("clip", "clip-pad0"),
}


def _check_kind(kind: str) -> str:
    if kind not in PAD_TOKENS:
        raise DiffdiffError(f"unknown tokenizer kind {kind!r}; choose one of {', '.join(TOKENIZER_KINDS)}")
    return PAD_TOKENS[kind]


def load_tokenizer(kind: str = "clip"):
    """A transformers CLIPTokenizer from the shipped files; `kind` "clip" or "clip-pad0" (pads with "!")."""
    from transformers import CLIPTokenizer

    pad_token = _check_kind(kind)
    return CLIPTokenizer.from_pretrained(str(TOKENIZER_FOLDER), pad_token=pad_token, local_files_only=True)


def write_tokenizer_files(folder: str | Path, kind: str = "clip") -> Path:
    """Copy the shipped tokenizer and its licence note into `folder` (diffusers `tokenizer/` layout) with the
    kind's pad token."""
    pad_token = _check_kind(kind)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt", "LICENSE"):
        shutil.copyfile(TOKENIZER_FOLDER / name, folder / name)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        settings = json.loads((TOKENIZER_FOLDER / name).read_text())
        settings["pad_token"] = pad_token
        (folder / name).write_text(json.dumps(settings, indent=2) + "\n")
    return folder
