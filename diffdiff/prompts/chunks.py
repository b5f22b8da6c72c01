"""Weighted segments → chunks of 77 tokens (start, up to 75 prompt tokens, end, padding), as ComfyUI or
A1111 cut them; textual-inversion embeddings take one position per vector.

- **comfy**: each space-separated word is tokenized alone; a word that would cross the 75-token limit moves
  whole to the next chunk, unless it is 8 tokens or longer, which is cut. `embedding:NAME` is an embedding.
- **a1111**: each segment is tokenized as one text; when a chunk is full and a comma lies within its last 20
  tokens, the tokens after that comma move to the next chunk. A bare word that is an embedding's file name
  is that embedding; an embedding never straddles two chunks.
- BREAK ends the chunk (a1111 always, so `BREAK BREAK` leaves an empty chunk as A1111 does; comfy only when
  the chunk holds prompt tokens).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..errors import DiffdiffError
from .syntax import Segment

CHUNK_TOKENS = 75  # prompt tokens per chunk; with the start and end tokens, CLIP's window of 77
LONG_WORD_TOKENS = 8  # ComfyUI cuts a word this long at a chunk boundary instead of moving it whole
COMMA_BACKTRACK = 20  # A1111's default "comma padding backtrack"
EMBEDDING_PREFIX = "embedding:"
PLACEHOLDER_ID = 0  # the id under an embedding vector: below the end token, so pooling still finds the end


@dataclass
class Chunk:
    """One window of the text encoder: token ids, a weight per position, embedding vectors by position."""

    ids: list[int]
    weights: list[float]
    vectors: dict[int, torch.Tensor] = field(default_factory=dict)


Item = tuple[int | torch.Tensor, float]  # a token id or one embedding vector, with its weight
VectorsOf = Callable[[str], torch.Tensor]  # embedding name → its (n, width) vectors


class _Chunker:
    """Collects items into chunks; `close` pads the open chunk and starts the next."""

    def __init__(self, tokenizer):
        self.start, self.end = tokenizer.bos_token_id, tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.end
        self.chunks: list[Chunk] = []
        self.items: list[Item] = []

    def close(self) -> None:
        ids, weights, vectors = [self.start], [1.0], {}
        for position, (token, weight) in enumerate(self.items, start=1):
            if isinstance(token, torch.Tensor):
                vectors[position] = token
                token = PLACEHOLDER_ID
            ids.append(token)
            weights.append(weight)
        padding = CHUNK_TOKENS + 1 - len(ids)
        ids += [self.end] + [self.pad] * padding
        weights += [1.0] * (padding + 1)
        self.chunks.append(Chunk(ids, weights, vectors))
        self.items = []


def vocabulary_id(tokenizer, token: str) -> int | None:
    """The id of `token` if the vocabulary has it, else None (without copying the vocabulary, which
    `get_vocab` does on every call)."""
    found = tokenizer.convert_tokens_to_ids(token)
    return None if found is None or found == tokenizer.unk_token_id else found


def _word_ids(tokenizer, word: str) -> list[int]:
    known = vocabulary_id(tokenizer, f"{word}</w>")
    if known is not None:
        return [known]
    return tokenizer(word, add_special_tokens=False).input_ids


def _comfy_words(text: str, vectors_of: VectorsOf | None):
    """(word, vectors or None) for each space-separated word; `embedding:NAME` words give vectors (with
    trailing commas of the word kept as text when NAME without them is the embedding)."""
    for word in text.replace("\n", " ").split(" "):
        if not word:
            continue
        if word.startswith(EMBEDDING_PREFIX):
            if vectors_of is None:
                raise DiffdiffError(f"the prompt uses {word!r} but no embeddings folder was given "
                                    "(--embeddings-dir)")
            name = word[len(EMBEDDING_PREFIX):]
            stripped = name.rstrip(",")
            yield word, vectors_of(stripped)
            if stripped != name:
                yield name[len(stripped):], None
            continue
        yield word, None


def chunk_comfy(tokenizer, segments: list[Segment], vectors_of: VectorsOf | None) -> list[Chunk]:
    chunker = _Chunker(tokenizer)
    for segment in segments:
        if segment.weight is None:
            if chunker.items:
                chunker.close()
            continue
        for word, vectors in _comfy_words(segment.text, vectors_of):
            tokens = list(vectors) if vectors is not None else _word_ids(tokenizer, word)
            group: list[Item] = [(token, segment.weight) for token in tokens]
            long_word = len(group) >= LONG_WORD_TOKENS
            while group:
                room = CHUNK_TOKENS - len(chunker.items)
                if len(group) <= room:
                    chunker.items += group
                    group = []
                elif long_word:
                    chunker.items += group[:room]
                    group = group[room:]
                    chunker.close()
                else:
                    chunker.close()
    if chunker.items or not chunker.chunks:
        chunker.close()
    return chunker.chunks


def a1111_pieces(text: str, names: list[str]) -> list[str]:
    """`text` split so that every bare embedding name is a piece of its own (odd indices)."""
    if not names:
        return [text]
    alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    return re.split(rf"(?<![\w-])({alternatives})(?![\w-])", text)


def chunk_a1111(tokenizer, segments: list[Segment], vectors_of: VectorsOf | None,
                names: list[str]) -> list[Chunk]:
    chunker = _Chunker(tokenizer)
    comma = vocabulary_id(tokenizer, ",</w>")
    last_comma = -1

    def close():
        nonlocal last_comma
        chunker.close()
        last_comma = -1

    for segment in segments:
        if segment.weight is None:
            close()
            continue
        for index, piece in enumerate(a1111_pieces(segment.text, names)):
            is_embedding = index % 2 == 1  # a1111_pieces puts the names at odd places
            if is_embedding:
                units = [vectors_of(piece)]
            else:
                units = tokenizer(piece, add_special_tokens=False).input_ids
            for unit in units:
                if isinstance(unit, int) and unit == comma:
                    last_comma = len(chunker.items)
                elif len(chunker.items) == CHUNK_TOKENS and last_comma != -1 \
                        and len(chunker.items) - last_comma <= COMMA_BACKTRACK:
                    moved = chunker.items[last_comma + 1:]
                    chunker.items = chunker.items[:last_comma + 1]
                    close()
                    chunker.items = moved
                if len(chunker.items) == CHUNK_TOKENS:
                    close()
                if isinstance(unit, int):
                    chunker.items.append((unit, segment.weight))
                    continue
                if len(chunker.items) + len(unit) > CHUNK_TOKENS:
                    close()
                chunker.items += [(vector, segment.weight) for vector in unit]
    if chunker.items or not chunker.chunks:
        close()
    return chunker.chunks


def referenced_embeddings(segments: list[Segment], style: str, names: list[str]) -> list[str]:
    """The embedding names the segments use, in order of first use (what `chunk_*` will look up)."""
    found: dict[str, None] = {}
    for segment in segments:
        if segment.weight is None:
            continue
        if style == "a1111":
            found.update(dict.fromkeys(a1111_pieces(segment.text, names)[1::2]))
        else:
            for word in segment.text.replace("\n", " ").split(" "):
                if word.startswith(EMBEDDING_PREFIX):
                    found[word[len(EMBEDDING_PREFIX):].rstrip(",")] = None
    return list(found)


def chunk_prompt(tokenizer, segments: list[Segment], style: str, vectors_of: VectorsOf | None,
                 names: list[str]) -> list[Chunk]:
    """The chunks of `segments` in `style`; `vectors_of` resolves embedding names (None: no library)."""
    if style == "a1111":
        return chunk_a1111(tokenizer, segments, vectors_of, names)
    return chunk_comfy(tokenizer, segments, vectors_of)
