"""Prompt → conditioning tensors for SD1.x, SD2.x and SDXL text encoders, as diffusers / A1111 compute them.

- SD1: CLIP-L's last hidden state (after the final layer norm).
- SD2: OpenCLIP-H's penultimate layer through the final layer norm. diffusers' SD2 text-encoder config
  keeps 23 of OpenCLIP-H's 24 layers (its converter drops the last), so that is the encoder's
  `last_hidden_state`.
- SDXL: the penultimate hidden states (no final norm) of CLIP-L and OpenCLIP-bigG concatenated on the
  feature axis, the pooled, projected `text_embeds` of encoder 2, and time_ids = (original height, width,
  crop top 0, crop left 0, target height, width). The negative prompt is encoded like the positive one
  (also when empty, as A1111 and ComfyUI do; diffusers' `force_zeros_for_empty_prompt` is not used).

Prompts longer than the encoder's 77 tokens are truncated (no A1111-style chunking) with one logged warning
line of our own (logging, logger "diffdiff.models.conditioning"), once per prompt even for SDXL's two
tokenizers; without a logging setup Python prints just the message to stderr.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

import torch

logger = logging.getLogger(__name__)
CUT_SHOWN = 60  # characters of the dropped text quoted in the truncation warning


@dataclass
class Conditioning:
    """Encoded positive and negative prompts; all tensors batch `batch` (usually 1, expanded later).

    `pooled` / `negative_pooled` / `time_ids` are None except for SDXL.
    """

    embeds: torch.Tensor
    negative_embeds: torch.Tensor
    pooled: torch.Tensor | None = None
    negative_pooled: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None

    def network_kwargs(self, negative: bool = False) -> dict:
        """Keyword arguments for `ParametrisedNetwork` (encoder_hidden_states, added_cond_kwargs)."""
        kwargs = {"encoder_hidden_states": self.negative_embeds if negative else self.embeds}
        pooled = self.negative_pooled if negative else self.pooled
        if pooled is not None:
            kwargs["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": self.time_ids}
        return kwargs


def stack_conditionings(rows: list[Conditioning]) -> Conditioning:
    """One conditioning whose item k is `rows[k]` (each of batch 1): the rows joined on the batch axis."""
    def joined(name):
        tensors = [getattr(row, name) for row in rows]
        return None if tensors[0] is None else torch.cat(tensors)

    return Conditioning(*(joined(f.name) for f in fields(Conditioning)))


def tokenize(tokenizer, text: str, what: str | None = "prompt") -> torch.Tensor:
    """Token ids (1, max_length) padded to the tokenizer's length.

    A text longer than the encoder's window is truncated; unless `what` is None one line is logged (logger
    "diffdiff.models.conditioning", level WARNING) saying how much of the `what` ("prompt", "negative
    prompt") was dropped. transformers' own "Token indices sequence length" warning is not shown.
    """
    max_length = tokenizer.model_max_length
    if what is not None:
        full = tokenizer(text, truncation=False, verbose=False).input_ids  # with start and end tokens
        if len(full) > max_length:
            dropped = full[max_length - 1 : -1]  # the content tokens past the window, before the end token
            cut = " ".join(tokenizer.decode(dropped).split())
            cut = cut if len(cut) <= CUT_SHOWN else cut[: CUT_SHOWN - 3].rstrip() + "..."
            logger.warning(
                "warning: the %s was truncated to %d tokens (the text encoder's limit; it had %d), "
                "dropping %d: %r", what, max_length, len(full), len(dropped), cut,
            )
    ids = tokenizer(text, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    return ids.input_ids


def _device_of(module) -> torch.device:
    for parameter in module.parameters():
        return parameter.device
    return torch.device("cpu")


@torch.no_grad()
def encode_clip(tokenizer, text_encoder, text: str, layer: str = "last",
                what: str | None = "prompt") -> torch.Tensor:
    """One prompt, one encoder; layer "last" (last_hidden_state) or "penultimate" (hidden_states[-2])."""
    ids = tokenize(tokenizer, text, what).to(_device_of(text_encoder))
    output = text_encoder(ids, output_hidden_states=(layer == "penultimate"))
    if layer == "last":
        return output.last_hidden_state
    return output.hidden_states[-2]


@torch.no_grad()
def encode_clip_pooled(tokenizer, text_encoder, text: str,
                       what: str | None = "prompt") -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate hidden states, projected pooled text_embeds) of a CLIPTextModelWithProjection."""
    ids = tokenize(tokenizer, text, what).to(_device_of(text_encoder))
    output = text_encoder(ids, output_hidden_states=True)
    return output.hidden_states[-2], output.text_embeds


def sdxl_time_ids(width: int, height: int) -> torch.Tensor:
    """SDXL micro-conditioning (orig h, orig w, crop top, crop left, target h, target w), shape (1, 6)."""
    return torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32)


def _repeat(tensor: torch.Tensor | None, batch: int) -> torch.Tensor | None:
    if tensor is None or batch == 1:
        return tensor
    return tensor.repeat(batch, *([1] * (tensor.ndim - 1)))


def encode_sd(tokenizer, text_encoder, prompt: str, negative: str = "", batch: int = 1) -> Conditioning:
    """SD1 / SD2 conditioning: the encoder's last hidden state (see the module docstring for SD2)."""
    embeds = encode_clip(tokenizer, text_encoder, prompt, "last")
    negative_embeds = encode_clip(tokenizer, text_encoder, negative, "last", what="negative prompt")
    return Conditioning(_repeat(embeds, batch), _repeat(negative_embeds, batch))


def encode_sdxl(
    tokenizers, text_encoders, prompt: str, negative: str = "", *, width: int, height: int, batch: int = 1
) -> Conditioning:
    """SDXL conditioning from (tokenizer, tokenizer_2) and (text_encoder, text_encoder_2)."""
    tokenizer_1, tokenizer_2 = tokenizers
    encoder_1, encoder_2 = text_encoders

    def both(text, what):
        hidden_1 = encode_clip(tokenizer_1, encoder_1, text, "penultimate", what)
        hidden_2, pooled = encode_clip_pooled(tokenizer_2, encoder_2, text, what=None)  # warned once above
        return torch.cat([hidden_1, hidden_2.to(hidden_1.dtype)], dim=-1), pooled

    embeds, pooled = both(prompt, "prompt")
    negative_embeds, negative_pooled = both(negative, "negative prompt")
    time_ids = sdxl_time_ids(width, height).to(device=embeds.device, dtype=embeds.dtype)
    return Conditioning(
        _repeat(embeds, batch),
        _repeat(negative_embeds, batch),
        _repeat(pooled, batch),
        _repeat(negative_pooled, batch),
        _repeat(time_ids, batch),
    )
