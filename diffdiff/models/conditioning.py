"""Prompt → conditioning tensors for SD1.x, SD2.x and SDXL text encoders, as ComfyUI / A1111 compute them.

The text is read by `diffdiff.prompts` (weights, BREAK, embeddings, LoRA tags removed) into chunks of 77
tokens, each encoded on its own and joined on the token axis, so prompts have no length limit. By default
(CLIP skip at the family's default):
- SD1: CLIP-L's last hidden state (after the final layer norm).
- SD2: OpenCLIP-H's penultimate layer through the final layer norm. diffusers' SD2 text-encoder config
  keeps 23 of OpenCLIP-H's 24 layers (its converter drops the last), so that is the encoder's
  `last_hidden_state`.
- SDXL: the penultimate hidden states (no final norm) of CLIP-L and OpenCLIP-bigG concatenated on the
  feature axis, the pooled, projected `text_embeds` of encoder 2, and time_ids = (original height, width,
  crop top 0, crop left 0, target height, width). The negative prompt is encoded like the positive one
  (also when empty, as A1111 and ComfyUI do; diffusers' `force_zeros_for_empty_prompt` is not used).

A prompt and its negative of different chunk counts are repeated to a common token length
(`same_token_length`), so they batch together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from ..prompts.embeddings import EmbeddingLibrary


@dataclass(frozen=True)
class PromptReading:
    """How prompt text is read: the weighting `style` ("comfy" | "a1111"), `clip_skip` (None = the family's
    default) and the textual-inversion `embeddings` library (None = none)."""

    style: str = "comfy"
    clip_skip: int | None = None
    embeddings: EmbeddingLibrary | None = None


@dataclass
class Conditioning:
    """Encoded positive and negative prompts; all tensors batch `batch` (usually 1, expanded later).

    `pooled` / `negative_pooled` are None for SD1 / SD2; `time_ids` is None except for SDXL. `mask` /
    `negative_mask` ((B, T) bool, True at the tokens to attend to) are None for the UNet families; the
    flow-matching encoders (flow_conditioning) set them: False marks zero filler that brings a shorter
    prompt to the common token length, so it must be masked out of attention.
    """

    embeds: torch.Tensor
    negative_embeds: torch.Tensor
    pooled: torch.Tensor | None = None
    negative_pooled: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    negative_mask: torch.Tensor | None = None

    def network_kwargs(self, negative: bool = False) -> dict:
        """Keyword arguments for `ParametrisedNetwork`: `encoder_hidden_states`; SDXL's `added_cond_kwargs`;
        the flow transformers' `pooled_projections`; `text_mask` when the encoder marks its real tokens."""
        kwargs = {"encoder_hidden_states": self.negative_embeds if negative else self.embeds}
        pooled = self.negative_pooled if negative else self.pooled
        if pooled is not None and self.time_ids is not None:
            kwargs["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": self.time_ids}
        elif pooled is not None:
            kwargs["pooled_projections"] = pooled
        mask = self.negative_mask if negative else self.mask
        if mask is not None:
            kwargs["text_mask"] = mask
        return kwargs


def same_token_length(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Hidden states (B, T_i, d) repeated along the token axis to the least common multiple of the T_i, as
    ComfyUI batches prompts of different chunk counts: cross-attention over a sequence repeated n times
    equals attention over the sequence itself, so each prompt's result is unchanged."""
    length = math.lcm(*(tensor.shape[1] for tensor in tensors))
    return [tensor.repeat(1, length // tensor.shape[1], 1) for tensor in tensors]


def pad_token_length(tensors: list[torch.Tensor], masks: list[torch.Tensor | None],
                     length: int | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Hidden states (B, T_i, d) zero-padded at the end to `length` (default the longest T_i), with their
    masks (B, T) extended by False (a missing mask counts as all True). For joint-attention transformers,
    where repeating a sequence (`same_token_length`) would change the result, the filler is masked out."""
    length = length or max(tensor.shape[1] for tensor in tensors)
    padded, padded_masks = [], []
    for tensor, mask in zip(tensors, masks):
        batch, tokens = tensor.shape[:2]
        if mask is None:
            mask = torch.ones(batch, tokens, dtype=torch.bool, device=tensor.device)
        padded.append(torch.nn.functional.pad(tensor, (0, 0, 0, length - tokens)))
        padded_masks.append(torch.nn.functional.pad(mask.bool(), (0, length - tokens), value=False))
    return padded, padded_masks


def stack_conditionings(rows: list[Conditioning]) -> Conditioning:
    """One conditioning whose item k is `rows[k]` (each of batch 1): the rows joined on the batch axis (the
    hidden states first brought to one token length: repeated as ComfyUI does for cross-attention, or, when
    the rows carry masks, zero-padded with the masks extended by False)."""
    masked = any(row.mask is not None or row.negative_mask is not None for row in rows)
    padded = {}
    if masked:
        length = max(tensor.shape[1] for row in rows for tensor in (row.embeds, row.negative_embeds))
        for name, mask_name in (("embeds", "mask"), ("negative_embeds", "negative_mask")):
            tensors, masks = pad_token_length([getattr(row, name) for row in rows],
                                              [getattr(row, mask_name) for row in rows], length)
            padded[name], padded[mask_name] = tensors, masks

    def joined(name):
        tensors = padded.get(name) or [getattr(row, name) for row in rows]
        if tensors[0] is None:
            return None
        if name in ("embeds", "negative_embeds") and not masked:
            tensors = same_token_length(tensors)
        return torch.cat(tensors)

    return Conditioning(*(joined(f.name) for f in fields(Conditioning)))


def encode_text(tokenizer, text_encoder, text: str, reading: PromptReading, clip_skip: int, *,
                encoder_index: int = 0, final_norm: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(hidden states (1, 77·chunks, d), pooled or None) of one prompt through one encoder."""
    from ..prompts.chunks import chunk_prompt
    from ..prompts.encoding import encode_chunks
    from ..prompts.syntax import parse, split_lora_tags

    library = reading.embeddings
    width = int(text_encoder.config.hidden_size)
    vectors_of = None if library is None else (lambda name: library.vectors(name, encoder_index, width))
    names = library.names if library is not None and reading.style == "a1111" else []
    segments = parse(split_lora_tags(text)[0], reading.style)
    chunks = chunk_prompt(tokenizer, segments, reading.style, vectors_of, names)
    empty = chunk_prompt(tokenizer, [], reading.style, None, [])[0]
    return encode_chunks(text_encoder, chunks, empty, style=reading.style, clip_skip=clip_skip,
                         final_norm=final_norm)


def sdxl_time_ids(width: int, height: int) -> torch.Tensor:
    """SDXL micro-conditioning (orig h, orig w, crop top, crop left, target h, target w), shape (1, 6)."""
    return torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32)


def _repeat(tensor: torch.Tensor | None, batch: int) -> torch.Tensor | None:
    if tensor is None or batch == 1:
        return tensor
    return tensor.repeat(batch, *([1] * (tensor.ndim - 1)))


def encode_sd(tokenizer, text_encoder, prompt: str, negative: str = "", batch: int = 1,
              reading: PromptReading | None = None, clip_skip: int = 1) -> Conditioning:
    """SD1 / SD2 conditioning: the hidden states `clip_skip` layers from the top through the final layer norm
    (the encoder's last hidden state at 1; see the module docstring for SD2)."""
    reading = reading or PromptReading()
    clip_skip = reading.clip_skip or clip_skip
    embeds, _ = encode_text(tokenizer, text_encoder, prompt, reading, clip_skip, final_norm=True)
    negative_embeds, _ = encode_text(tokenizer, text_encoder, negative, reading, clip_skip, final_norm=True)
    embeds, negative_embeds = same_token_length([embeds, negative_embeds])
    return Conditioning(_repeat(embeds, batch), _repeat(negative_embeds, batch))


def encode_sdxl(tokenizers, text_encoders, prompt: str, negative: str = "", *, width: int, height: int,
                batch: int = 1, reading: PromptReading | None = None, clip_skip: int = 2) -> Conditioning:
    """SDXL conditioning from (tokenizer, tokenizer_2) and (text_encoder, text_encoder_2)."""
    reading = reading or PromptReading()
    clip_skip = reading.clip_skip or clip_skip

    def both(text):
        hidden = [encode_text(tokenizer, encoder, text, reading, clip_skip, encoder_index=index,
                              final_norm=False)
                  for index, (tokenizer, encoder) in enumerate(zip(tokenizers, text_encoders))]
        (hidden_1, _), (hidden_2, pooled) = hidden
        length = min(hidden_1.shape[1], hidden_2.shape[1])  # differ only if an embedding does
        return torch.cat([hidden_1[:, :length], hidden_2[:, :length].to(hidden_1.dtype)], dim=-1), pooled

    embeds, pooled = both(prompt)
    negative_embeds, negative_pooled = both(negative)
    embeds, negative_embeds = same_token_length([embeds, negative_embeds])
    time_ids = sdxl_time_ids(width, height).to(device=embeds.device, dtype=embeds.dtype)
    return Conditioning(
        _repeat(embeds, batch),
        _repeat(negative_embeds, batch),
        _repeat(pooled, batch),
        _repeat(negative_pooled, batch),
        _repeat(time_ids, batch),
    )
