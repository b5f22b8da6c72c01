#!/usr/bin/env python
"""Build the shipped CLIP BPE tokenizer files (diffdiff/models/tokenizers/clip/) from OpenAI's BPE list.

Offline: the input is `bpe_simple_vocab_16e6.txt.gz`, the byte-pair merge list OpenAI's CLIP ships (MIT) and
which the open-clip-torch wheel also contains. Get it without installing anything, e.g.

    .venv/bin/pip download --no-deps open-clip-torch -d /tmp/oc
    cd /tmp/oc && unzip -o open_clip_torch-*.whl 'open_clip/bpe_simple_vocab_16e6.txt.gz'
    .venv/bin/python scripts/build_tokenizers.py /tmp/oc/open_clip/bpe_simple_vocab_16e6.txt.gz

The vocabulary is rebuilt as OpenAI's `SimpleTokenizer` builds it: the 256 byte symbols, the same with the
end-of-word marker `</w>`, one token per merge (the first 48,894 merges), then the two special tokens —
49,408 ids in all, the vocabulary of every CLIP text encoder that Stable Diffusion uses. The files written
are the Hugging Face layout: vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json.
Padding with "!" (SD2, SDXL's second encoder) is a loading option (diffdiff.models.tokenizer), not a copy.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

MERGE_COUNT = 49152 - 256 - 2  # as in OpenAI's CLIP simple_tokenizer.py
START, END = "<|startoftext|>", "<|endoftext|>"
OUTPUT = Path(__file__).resolve().parent.parent / "diffdiff" / "models" / "tokenizers" / "clip"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters (used by CLIP's BPE)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    shift = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + shift)
            shift += 1
    return dict(zip(printable, (chr(code) for code in codes)))


def read_merges(bpe_path: Path) -> list[tuple[str, str]]:
    lines = gzip.open(bpe_path, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGE_COUNT + 1]]
    if len(merges) != MERGE_COUNT or any(len(m) != 2 for m in merges):
        raise SystemExit(f"{bpe_path}: not CLIP's BPE merge list")
    return merges


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [START, END]
    return {token: index for index, token in enumerate(tokens)}


def tokenizer_config(pad_token: str = END) -> dict:
    return {
        "tokenizer_class": "CLIPTokenizer",
        "bos_token": START,
        "eos_token": END,
        "unk_token": END,
        "pad_token": pad_token,
        "add_prefix_space": False,
        "do_lower_case": True,
        "errors": "replace",
        "model_max_length": 77,
    }


def special_tokens_map(pad_token: str = END) -> dict:
    return {"bos_token": START, "eos_token": END, "unk_token": END, "pad_token": pad_token}


def write_tokenizer(folder: Path, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merge_lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(merge_lines) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(special_tokens_map(), indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bpe", type=Path, help="path to bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    merges = read_merges(args.bpe)
    vocab = build_vocab(merges)
    write_tokenizer(args.output, vocab, merges)
    print(f"wrote {args.output} ({len(vocab)} tokens, {len(merges)} merges)")


if __name__ == "__main__":
    main()
