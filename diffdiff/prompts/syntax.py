"""Prompt text → weighted segments, in ComfyUI's or A1111's reading of the emphasis syntax; LoRA tags.

Both styles give a list of `Segment(text, weight)`, with `BREAK` (a segment of weight None) where the word
BREAK forces a new 75-token chunk. The rules (design §12):

- **comfy** (ComfyUI): `(text)` multiplies the weight by 1.1, `(text:w)` *sets* it to w (so `((a:1.5))` is
  1.5), `\\(` and `\\)` are literal brackets; square brackets are plain text. An unbalanced `(` or `)` stays
  in the text as a literal character, grouped the way ComfyUI's scanner groups it.
- **a1111** (Automatic1111): `(text)` multiplies by 1.1, `[text]` divides by 1.1, `(text:w)` multiplies by w
  (so `((a:1.5))` is 1.65); `\\(`, `\\)`, `\\[`, `\\]`, `\\\\` are literal; an unclosed bracket applies to the
  rest of the prompt and a stray closing one is literal text; neighbours of equal weight merge.

`<lora:NAME:WEIGHT[:TEXT_WEIGHT]>` tags (A1111's extra-network syntax) are taken out of the text by
`split_lora_tags` before either parser runs.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from ..errors import DiffdiffError

STYLES = ("comfy", "a1111")
EMPHASIS = 1.1  # what one pair of round brackets multiplies by (square brackets divide)
BREAK_WORD = re.compile(r"\s*\bBREAK\b\s*")
LORA_TAG = re.compile(r"<lora:([^:<>]+)(?::([^:<>]*))?(?::([^:<>]*))?>")


class Segment(NamedTuple):
    """A run of prompt text and its weight; weight None marks a BREAK."""

    text: str
    weight: float | None


BREAK = Segment("BREAK", None)


class LoraTag(NamedTuple):
    """A `<lora:NAME:WEIGHT[:TEXT_WEIGHT]>` tag: the name and its weights (text_weight None = weight)."""

    name: str
    weight: float
    text_weight: float | None


def check_style(style: str) -> str:
    if style not in STYLES:
        raise DiffdiffError(f"unknown prompt style {style!r}; choose one of {', '.join(STYLES)}")
    return style


def _tag_number(text: str | None, tag: str, default: float | None) -> float | None:
    if text is None or text.strip() == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise DiffdiffError(f"bad weight {text!r} in the prompt's tag {tag}; expected a number") from None
    if not math.isfinite(value):
        raise DiffdiffError(f"bad weight {text!r} in the prompt's tag {tag}; expected a finite number")
    return value


def split_lora_tags(text: str) -> tuple[str, list[LoraTag]]:
    """The text without its `<lora:...>` tags, and the tags in order (weight 1 when not given)."""
    tags = []
    for match in LORA_TAG.finditer(text):
        name, weight, text_weight = match.groups()
        weight_value = _tag_number(weight, match.group(0), 1.0)
        tags.append(LoraTag(name.strip(), weight_value, _tag_number(text_weight, match.group(0), None)))
    return LORA_TAG.sub("", text), tags


def _with_breaks(segments: list[Segment]) -> list[Segment]:
    """Split every segment at the word BREAK, inserting BREAK markers."""
    result = []
    for segment in segments:
        for index, part in enumerate(BREAK_WORD.split(segment.text)):
            if index:
                result.append(BREAK)
            if part:
                result.append(Segment(part, segment.weight))
    return result


# ComfyUI style ------------------------------------------------------------------------------------------

ESCAPED_CLOSE, ESCAPED_OPEN = "\0\1", "\0\2"


def _top_level_groups(text: str) -> list[str]:
    """Split at top-level round brackets: each bracketed group (brackets kept) or run of other text.

    A depth counter that may go below zero, as ComfyUI's scanner has: a stray `)` at depth 0 is kept as text
    and the counter then stays negative until a later `(` brings it back."""
    groups, current, depth = [], "", 0
    for char in text:
        if char == "(":
            if depth == 0:
                if current:
                    groups.append(current)
                current = "("
            else:
                current += char
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                groups.append(current + ")")
                current = ""
            else:
                current += char
        else:
            current += char
    if current:
        groups.append(current)
    return groups


def _comfy_weights(text: str, weight: float) -> list[Segment]:
    segments = []
    for group in _top_level_groups(text):
        if len(group) >= 2 and group[0] == "(" and group[-1] == ")":
            inner = group[1:-1]
            inner_weight = weight * EMPHASIS
            colon = inner.rfind(":")
            if colon > 0:
                try:
                    explicit = float(inner[colon + 1 :])
                except ValueError:
                    explicit = None
                if explicit is not None:
                    if not math.isfinite(explicit):
                        raise DiffdiffError(f"the weight in {group!r} is not a finite number")
                    inner, inner_weight = inner[:colon], explicit
            segments += _comfy_weights(inner, inner_weight)
        else:
            segments.append(Segment(group, weight))
    return segments


def parse_comfy(text: str) -> list[Segment]:
    """ComfyUI's reading (see the module docstring), with BREAK markers."""
    text = text.replace("\\)", ESCAPED_CLOSE).replace("\\(", ESCAPED_OPEN)
    segments = [Segment(s.text.replace(ESCAPED_CLOSE, ")").replace(ESCAPED_OPEN, "("), s.weight)
                for s in _comfy_weights(text, 1.0)]
    return _with_breaks(segments)


# A1111 style --------------------------------------------------------------------------------------------

A1111_TOKENS = re.compile(r"""
\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:
""", re.X)


def parse_a1111(text: str) -> list[Segment]:
    """Automatic1111's reading (see the module docstring), with BREAK markers."""
    parts: list[list] = []  # [text, weight] pairs, weights multiplied in place as brackets close
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply_from(start: int, factor: float) -> None:
        for part in parts[start:]:
            if part[1] is not None:  # a BREAK stays a BREAK
                part[1] *= factor

    for match in A1111_TOKENS.finditer(text):
        token, explicit = match.group(0), match.group(1)
        if token.startswith("\\") and len(token) == 2:
            parts.append([token[1], 1.0])
        elif token == "(":
            round_open.append(len(parts))
        elif token == "[":
            square_open.append(len(parts))
        elif explicit is not None and round_open:
            try:
                factor = float(explicit)
            except ValueError:  # e.g. "1.2.3": A1111's float() would fail too; keep the text literal
                parts.append([token, 1.0])
                continue
            multiply_from(round_open.pop(), factor)
        elif token == ")" and round_open:
            multiply_from(round_open.pop(), EMPHASIS)
        elif token == "]" and square_open:
            multiply_from(square_open.pop(), 1 / EMPHASIS)
        else:
            for index, piece in enumerate(BREAK_WORD.split(token)):
                if index:
                    parts.append(["BREAK", None])
                parts.append([piece, 1.0])
    for start in round_open:
        multiply_from(start, EMPHASIS)
    for start in square_open:
        multiply_from(start, 1 / EMPHASIS)

    merged: list[list] = []
    for text_part, weight in parts:
        if weight is not None and merged and merged[-1][1] == weight:
            merged[-1][0] += text_part
        else:
            merged.append([text_part, weight])
    return [BREAK if weight is None else Segment(part, weight) for part, weight in merged
            if weight is None or part]


def parse(text: str, style: str) -> list[Segment]:
    """The segments of `text` in `style` ("comfy" | "a1111")."""
    return parse_a1111(text) if check_style(style) == "a1111" else parse_comfy(text)
