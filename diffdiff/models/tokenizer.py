"""The shipped tokenizers (CLIP, T5 v1.1, Qwen3): load one by kind or copy it into a folder.

The files live in `diffdiff/models/tokenizers/<name>/`, each with a LICENSE note (built offline by
scripts/build_tokenizers.py), so nothing is downloaded:
- "clip" / "clip-pad0": CLIP's BPE vocabulary, which every Stable Diffusion CLIP encoder uses; they differ
  only in the padding token: SD1.x, SDXL's first encoder, SD3's CLIP-L and Flux's CLIP-L pad with
  <|endoftext|> (id 49407), SD2.x and the OpenCLIP encoders (SDXL's second, SD3's CLIP-G) pad with "!" (id 0).
- "t5": the T5 v1.1 SentencePiece tokenizer of T5-XXL (SD3, Flux), a transformers T5TokenizerFast.
- "qwen3": Qwen3's byte-level BPE tokenizer with its chat template (Z-Image's Qwen3-4B), a
  Qwen2TokenizerFast.
`FAMILY_TOKENIZERS` lists the kinds of each family's encoders in diffusers' component order.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import DiffdiffError

TOKENIZERS = Path(__file__).resolve().parent / "tokenizers"
TOKENIZER_FOLDER = TOKENIZERS / "clip"
PAD_TOKENS = {"clip": "<|endoftext|>", "clip-pad0": "!"}
FOLDERS = {"clip": "clip", "clip-pad0": "clip", "t5": "t5", "qwen3": "qwen3"}
TOKENIZER_KINDS = tuple(FOLDERS)

# Which tokenizer each family's encoders use, in the order of the diffusers components tokenizer,
# tokenizer_2, tokenizer_3.
FAMILY_TOKENIZERS = {
    "sd1": ("clip",),
    "sd2": ("clip-pad0",),
    "sd2-v": ("clip-pad0",),
    "sdxl": ("clip", "clip-pad0"),
    "sd3": ("clip", "clip-pad0", "t5"),
    "flux": ("clip", "t5"),
    "flux-schnell": ("clip", "t5"),
    "flux-fill": ("clip", "t5"),
    "z-image": ("qwen3",),
}


def _folder(kind: str) -> Path:
    if kind not in FOLDERS:
        raise DiffdiffError(f"unknown tokenizer kind {kind!r}; choose one of {', '.join(TOKENIZER_KINDS)}")
    return TOKENIZERS / FOLDERS[kind]


def load_tokenizer(kind: str = "clip"):
    """A transformers tokenizer from the shipped files: CLIPTokenizer for "clip" / "clip-pad0" (pads with
    "!"), T5TokenizerFast for "t5", Qwen2TokenizerFast for "qwen3"."""
    folder = str(_folder(kind))
    if kind == "t5":
        from transformers import T5TokenizerFast

        return T5TokenizerFast.from_pretrained(folder, local_files_only=True)
    if kind == "qwen3":
        from transformers import Qwen2TokenizerFast

        return Qwen2TokenizerFast.from_pretrained(folder, local_files_only=True)
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(folder, pad_token=PAD_TOKENS[kind], local_files_only=True)


def write_tokenizer_files(folder: str | Path, kind: str = "clip") -> Path:
    """Copy the shipped tokenizer of `kind` and its licence note into `folder` (a diffusers `tokenizer_N/`
    folder); the CLIP kinds get their pad token written into the settings."""
    source = _folder(kind)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if kind not in PAD_TOKENS:
        for path in sorted(source.iterdir()):
            if path.is_file():
                shutil.copyfile(path, folder / path.name)
        return folder
    for name in ("vocab.json", "merges.txt", "LICENSE"):
        shutil.copyfile(source / name, folder / name)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        settings = json.loads((source / name).read_text())
        settings["pad_token"] = PAD_TOKENS[kind]
        (folder / name).write_text(json.dumps(settings, indent=2) + "\n")
    return folder
