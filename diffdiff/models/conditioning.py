"""Prompt → conditioning tensors for SD1.x, SD2.x and SDXL text encoders, as diffusers / A1111 compute them.

- SD1: CLIP-L's last hidden state (after the final layer norm).
- SD2: OpenCLIP-H's penultimate layer through the final layer norm. diffusers' SD2 text-encoder config
  keeps 23 of OpenCLIP-H's 24 layers (its converter drops the last), so that is the encoder's
  `last_hidden_state`.
- SDXL: the penultimate hidden states (no final norm) of CLIP-L and OpenCLIP-bigG concatenated on the
  feature axis, the pooled, projected `text_embeds` of encoder 2, and time_ids = (original height, width,
  crop top 0, crop left 0, target height, width). The negative prompt is encoded like the positive one
  (also when empty, as A1111 and ComfyUI do; diffusers' `force_zeros_for_empty_prompt` is not used).

Prompts longer than the encoder's 77 tokens are truncated with a warning (no A1111-style chunking).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch


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


def tokenize(tokenizer, text: str) -> torch.Tensor:
    """Token ids (1, max_length) padded to the tokenizer's length; warns when the prompt is truncated."""
    max_length = tokenizer.model_max_length
    full = tokenizer(text, padding="longest", truncation=False, return_tensors="pt").input_ids
    if full.shape[-1] > max_length:
        kept = tokenizer.batch_decode(full[:, 1 : max_length - 1])[0]
        warnings.warn(
            f"prompt longer than {max_length} tokens was truncated to: {kept!r}", UserWarning, stacklevel=3
        )
    ids = tokenizer(text, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    return ids.input_ids


def _device_of(module) -> torch.device:
    for parameter in module.parameters():
        return parameter.device
    return torch.device("cpu")


@torch.no_grad()
def encode_clip(tokenizer, text_encoder, text: str, layer: str = "last") -> torch.Tensor:
    """One prompt, one encoder; layer "last" (last_hidden_state) or "penultimate" (hidden_states[-2])."""
    ids = tokenize(tokenizer, text).to(_device_of(text_encoder))
    output = text_encoder(ids, output_hidden_states=(layer == "penultimate"))
    if layer == "last":
        return output.last_hidden_state
    return output.hidden_states[-2]


@torch.no_grad()
def encode_clip_pooled(tokenizer, text_encoder, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate hidden states, projected pooled text_embeds) of a CLIPTextModelWithProjection."""
    ids = tokenize(tokenizer, text).to(_device_of(text_encoder))
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
    negative_embeds = encode_clip(tokenizer, text_encoder, negative, "last")
    return Conditioning(_repeat(embeds, batch), _repeat(negative_embeds, batch))


def encode_sdxl(
    tokenizers, text_encoders, prompt: str, negative: str = "", *, width: int, height: int, batch: int = 1
) -> Conditioning:
    """SDXL conditioning from (tokenizer, tokenizer_2) and (text_encoder, text_encoder_2)."""
    tokenizer_1, tokenizer_2 = tokenizers
    encoder_1, encoder_2 = text_encoders

    def both(text):
        hidden_1 = encode_clip(tokenizer_1, encoder_1, text, "penultimate")
        hidden_2, pooled = encode_clip_pooled(tokenizer_2, encoder_2, text)
        return torch.cat([hidden_1, hidden_2.to(hidden_1.dtype)], dim=-1), pooled

    embeds, pooled = both(prompt)
    negative_embeds, negative_pooled = both(negative)
    time_ids = sdxl_time_ids(width, height).to(device=embeds.device, dtype=embeds.dtype)
    return Conditioning(
        _repeat(embeds, batch),
        _repeat(negative_embeds, batch),
        _repeat(pooled, batch),
        _repeat(negative_pooled, batch),
        _repeat(time_ids, batch),
    )
