#!/usr/bin/env python
# ruff: noqa: E501  (the Qwen3 chat template below is kept verbatim, long lines and all)
"""Build the shipped tokenizer files (diffdiff/models/tokenizers/{clip,t5,qwen3}/) from their sources.

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

`--t5-from DIR` copies a T5 v1.1 fast-tokenizer folder (tokenizer.json, tokenizer_config.json,
special_tokens_map.json; the `google/t5-v1_1-xxl` files) into tokenizers/t5/. `--qwen3-from DIR` builds
tokenizers/qwen3/ from a Qwen2.5 tokenizer folder (vocab.json, merges.txt, tokenizer_config.json): Qwen3
has the same vocabulary and merges, and its tokenizer_config.json differs in the added tokens 151665-151668
and the chat template, which are set here to Qwen3's published ones. The bpe argument may then be omitted.
The LICENSE files beside the tokenizers are kept by hand.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
from pathlib import Path

MERGE_COUNT = 49152 - 256 - 2  # as in OpenAI's CLIP simple_tokenizer.py
START, END = "<|startoftext|>", "<|endoftext|>"
TOKENIZERS = Path(__file__).resolve().parent.parent / "diffdiff" / "models" / "tokenizers"
OUTPUT = TOKENIZERS / "clip"
T5_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
QWEN3_ADDED = {151665: "<tool_response>", 151666: "</tool_response>", 151667: "<think>", 151668: "</think>"}
QWEN3_MAX_LENGTH = 131072
# Qwen3's chat template as published in the Qwen3 release's tokenizer_config.json.
QWEN3_CHAT_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is defined and message.reasoning_content is not none %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in message.content %}
                {%- set content = message.content.split('</think>')[-1].lstrip('\n') %}
                {%- set reasoning_content = message.content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}"""


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


def copy_t5(source: Path, folder: Path) -> None:
    """The T5 v1.1 fast-tokenizer files, copied unchanged."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in T5_FILES:
        shutil.copyfile(source / name, folder / name)


def qwen3_config(qwen25_config: dict) -> dict:
    """Qwen3's tokenizer_config.json from Qwen2.5's: Qwen3's added tokens 151665-151668 and chat template."""
    config = {k: v for k, v in qwen25_config.items() if k not in ("processor_class", "extra_special_tokens")}
    added = dict(config["added_tokens_decoder"])
    for index, content in QWEN3_ADDED.items():
        added[str(index)] = {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
                             "single_word": False, "special": False}
    config["added_tokens_decoder"] = added
    config["chat_template"] = QWEN3_CHAT_TEMPLATE
    config["model_max_length"] = QWEN3_MAX_LENGTH
    return config


def build_qwen3(source: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(source / name, folder / name)
    config = qwen3_config(json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8")))
    text = json.dumps(config, indent=2, ensure_ascii=False) + "\n"
    (folder / "tokenizer_config.json").write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bpe", type=Path, nargs="?", help="path to bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--t5-from", type=Path, help="a T5 v1.1 fast-tokenizer folder to copy")
    parser.add_argument("--qwen3-from", type=Path, help="a Qwen2.5 tokenizer folder to build Qwen3's from")
    args = parser.parse_args()
    if args.bpe is None and args.t5_from is None and args.qwen3_from is None:
        parser.error("give the CLIP bpe file, --t5-from or --qwen3-from")
    if args.bpe is not None:
        merges = read_merges(args.bpe)
        vocab = build_vocab(merges)
        write_tokenizer(args.output, vocab, merges)
        print(f"wrote {args.output} ({len(vocab)} tokens, {len(merges)} merges)")
    if args.t5_from is not None:
        copy_t5(args.t5_from, TOKENIZERS / "t5")
        print(f"wrote {TOKENIZERS / 't5'}")
    if args.qwen3_from is not None:
        build_qwen3(args.qwen3_from, TOKENIZERS / "qwen3")
        print(f"wrote {TOKENIZERS / 'qwen3'}")


if __name__ == "__main__":
    main()
