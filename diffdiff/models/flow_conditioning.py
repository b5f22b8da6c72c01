"""Prompt → conditioning for the flow-matching families (SD3 / SD3.5, Flux.1, Z-Image), as ComfyUI computes
it (comfy/text_encoders/sd3_clip.py, flux.py, z_image.py and sd1_clip.py's token weights), written anew.

- **SD3** (`encode_sd3`; encoders CLIP-L, CLIP-G, T5-XXL): CLIP-L and CLIP-G read the prompt in chunks of
  77 as for SDXL (`encode_text`: weights, BREAK, embeddings; CLIP skip 2 = the penultimate layer without
  the final norm), joined on the feature axis (768 + 1280) and zero-padded to T5's width (4096); T5's last
  hidden state follows on the token axis. pooled = [CLIP-L pooled before its projection ‖ CLIP-G pooled
  projected] (2048). An absent encoder (None) is handled as ComfyUI does: no CLIP-L → 768 zero features
  in front of CLIP-G's and a zero CLIP-L pooled; no CLIP-G → a zero CLIP-G pooled; no T5 → the CLIP part
  alone (no T5 tokens); no encoder → zeros (1, 77, 4096).
- **Flux** (`encode_flux`; CLIP-L, T5-XXL): embeds = T5's last hidden state, pooled = CLIP-L's pooled output
  (unprojected, first chunk).
- **Z-Image** (`encode_z_image`; Qwen3-4B): the prompt in the chat template
  "<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n", the hidden states of the second-to-last
  layer (`hidden_states[-2]`, no final norm), every token kept (no padding, no truncation).

T5 tokens: each weighted segment tokenized by itself, then </s>, padded with <pad> to at least 77 tokens
(SD3) or 256 (Flux), never truncated; T5 runs without an attention mask (the pads are read, as in ComfyUI
and diffusers). T5 weights, "comfy" style: z ← z_empty + w (z − z_empty) where w ≠ 1, z_empty being the
encoding of the empty prompt (</s> and pads) at the same length, as ComfyUI's ClipTokenWeightEncoder does;
"a1111" style: z · w rescaled to the original mean (Forge's T5 emphasis). Z-Image: ComfyUI disables prompt
weights for Qwen (`disable_weights=True`), so `(word:1.3)` stays literal text, as in diffusers; only `\\(` /
`\\)` become brackets. LoRA tags are removed everywhere; `embedding:NAME` words are removed from the T5 and
Qwen text (ComfyUI ignores CLIP embeddings there, their width does not fit); BREAK is dropped for T5.

Positive and negative are batched: when their token counts differ the shorter is zero-padded and its
`mask` is False there (ComfyUI instead runs the two separately; the masked filler reproduces that when
the transformer masks it out). Masks are always set, True at every token ComfyUI's encoder emits.

Differences from diffusers' pipelines (ComfyUI followed here): SD3 — diffusers truncates CLIP to 77 tokens
and pads / truncates T5 to 256 (`max_sequence_length`); CLIP-L pooled is diffusers' projected
`text_embeds`, which agrees because SD3's CLIP-L projection is the identity (diffusers' single-file loader
sets it so). Flux — diffusers pads / truncates T5 to 512. Z-Image — diffusers pads to 512, truncates, and
keeps the real tokens only (the same tokens for prompts under 512). diffusers has no prompt weights.
Difference from ComfyUI: CLIP skip (`reading.clip_skip`) applies to the CLIP parts only; ComfyUI's
CLIPSetLastLayer also moves T5's output layer. Tensors come in the main encoder's dtype (T5 / Qwen3).
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import torch

from ..errors import DiffdiffError
from ..prompts.encoding import a1111_weighting, comfy_weighting, device_of
from ..prompts.syntax import parse, split_lora_tags
from .conditioning import Conditioning, PromptReading, _repeat, encode_text, pad_token_length
from .families import FAMILY_TABLE

SD3_T5_MIN_TOKENS = 77
FLUX_T5_MIN_TOKENS = 256
CLIP_L_WIDTH, CLIP_G_WIDTH, T5_WIDTH = 768, 1280, 4096  # ComfyUI's fillers when an encoder is absent
Z_IMAGE_TEMPLATE = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
EMBEDDING_WORD = re.compile(r"(?<!\S)embedding:[^\s,]+")


@contextmanager
def _pooled_capture(encoder):
    """Catch the CLIP encoder's pooled output of the first row before any projection: the input of a
    CLIPTextModelWithProjection's `text_projection`, or a CLIPTextModel's `pooler_output`."""
    found: dict = {}
    projection = getattr(encoder, "text_projection", None)

    def before_projection(module, inputs, output):  # a hook returning None leaves the output as it is
        found.setdefault("pooled", inputs[0][:1])

    def pooler(module, inputs, output):
        found.setdefault("pooled", output.pooler_output[:1])

    if projection is not None:
        handle = projection.register_forward_hook(before_projection)
    else:
        handle = encoder.register_forward_hook(pooler)
    try:
        yield found
    finally:
        handle.remove()


def _clip(tokenizer, encoder, text: str, reading: PromptReading, clip_skip: int, index: int):
    """(hidden states (1, 77·k, d), pooled before projection (1, d)) of one CLIP encoder."""
    with _pooled_capture(encoder) as found:
        hidden, _ = encode_text(tokenizer, encoder, text, reading, clip_skip, encoder_index=index,
                                final_norm=False)
    return hidden, found["pooled"]


def _clip_projected(tokenizer, encoder, text: str, reading: PromptReading, clip_skip: int, index: int):
    """(hidden states, projected pooled `text_embeds` (1, p)) of a CLIPTextModelWithProjection."""
    hidden, pooled = encode_text(tokenizer, encoder, text, reading, clip_skip, encoder_index=index,
                                 final_norm=False)
    if pooled is None:
        raise DiffdiffError("SD3's CLIP-G must be a CLIPTextModelWithProjection (its pooled output is "
                            "projected)")
    return hidden, pooled


def t5_tokens(tokenizer, text: str, style: str, min_length: int) -> tuple[list[int], list[float]]:
    """(ids, weights) of a prompt for T5: each weighted segment tokenized alone, </s>, then <pad> up to
    `min_length`."""
    ids: list[int] = []
    weights: list[float] = []
    for segment in parse(split_lora_tags(text)[0], style):
        if segment.weight is None:
            continue
        piece = EMBEDDING_WORD.sub("", segment.text)
        tokens = tokenizer(piece, add_special_tokens=False).input_ids if piece.strip() else []
        ids += tokens
        weights += [float(segment.weight)] * len(tokens)
    ids.append(tokenizer.eos_token_id)
    weights.append(1.0)
    padding = max(0, min_length - len(ids))
    return ids + [tokenizer.pad_token_id] * padding, weights + [1.0] * padding


@torch.no_grad()
def encode_t5(tokenizer, encoder, text: str, style: str, min_length: int) -> torch.Tensor:
    """T5's last hidden state (1, T, d) of a prompt, its token weights applied in `style`."""
    ids, weights = t5_tokens(tokenizer, text, style, min_length)
    weighted = any(weight != 1.0 for weight in weights)
    rows = [ids]
    if weighted and style == "comfy":
        rows.append([tokenizer.eos_token_id] + [tokenizer.pad_token_id] * (len(ids) - 1))
    output = encoder(input_ids=torch.tensor(rows, device=device_of(encoder))).last_hidden_state
    if not weighted:
        return output
    hidden = output.float()
    factors = torch.tensor([weights], dtype=torch.float32, device=hidden.device)
    if style == "comfy":
        hidden = comfy_weighting(hidden[:1], hidden[1], factors)
    else:
        hidden = a1111_weighting(hidden, factors)
    return hidden.to(output.dtype)


def _batched(embeds: torch.Tensor, negative: torch.Tensor, pooled, negative_pooled,
             batch: int) -> Conditioning:
    """Positive and negative brought to one token length (zero filler, mask False), repeated `batch` times."""
    (embeds, negative), (mask, negative_mask) = pad_token_length([embeds, negative], [None, None])
    tensors = (embeds, negative, pooled, negative_pooled, None, mask, negative_mask)
    return Conditioning(*(_repeat(tensor, batch) for tensor in tensors))


def _parts(items, count: int, what: str) -> list:
    items = list(items)
    if len(items) != count:
        raise DiffdiffError(f"{what}: expected {count} tokenizers / text encoders, got {len(items)}")
    return items


def encode_sd3(tokenizers, text_encoders, prompt: str, negative: str = "", *, batch: int = 1,
               reading: PromptReading | None = None) -> Conditioning:
    """SD3 / SD3.5 conditioning from (CLIP-L, CLIP-G, T5) tokenizers and encoders (any encoder may be None):
    embeds (B, 77·k + T, 4096), pooled (B, 2048), masks (B, ·)."""
    reading = reading or PromptReading()
    clip_skip = reading.clip_skip or FAMILY_TABLE["sd3"].clip_skip  # both CLIPs' penultimate layer
    tok_l, tok_g, tok_t5 = _parts(tokenizers, 3, "SD3")
    enc_l, enc_g, enc_t5 = _parts(text_encoders, 3, "SD3")
    width = int(enc_t5.config.d_model) if enc_t5 is not None else T5_WIDTH

    def one(text: str):
        clip, pooled = None, None
        if enc_l is not None or enc_g is not None:
            pooled_l = pooled_g = None
            if enc_l is not None:
                clip, pooled_l = _clip(tok_l, enc_l, text, reading, clip_skip, 0)
            if enc_g is not None:
                hidden_g, pooled_g = _clip_projected(tok_g, enc_g, text, reading, clip_skip, 1)
                if clip is None:
                    clip = torch.nn.functional.pad(hidden_g, (CLIP_L_WIDTH, 0))
                else:
                    length = min(clip.shape[1], hidden_g.shape[1])  # differ only if an embedding does
                    clip = torch.cat([clip[:, :length], hidden_g[:, :length].to(clip.dtype)], dim=-1)
            reference = pooled_l if pooled_l is not None else pooled_g
            pooled_l = pooled_l if pooled_l is not None else reference.new_zeros(1, CLIP_L_WIDTH)
            pooled_g = pooled_g if pooled_g is not None else reference.new_zeros(1, CLIP_G_WIDTH)
            pooled = torch.cat([pooled_l, pooled_g.to(pooled_l.dtype)], dim=-1)
            if clip.shape[-1] > width:
                raise DiffdiffError(f"SD3's CLIP features ({clip.shape[-1]} wide) exceed T5's width "
                                    f"({width})")
            clip = torch.nn.functional.pad(clip, (0, width - clip.shape[-1]))
        out = clip
        if enc_t5 is not None:
            hidden = encode_t5(tok_t5, enc_t5, text, reading.style, SD3_T5_MIN_TOKENS)
            out = hidden if clip is None else torch.cat([clip.to(hidden.dtype), hidden], dim=-2)
        if out is None:
            out = torch.zeros(1, SD3_T5_MIN_TOKENS, T5_WIDTH)
        if pooled is None:
            pooled = torch.zeros(1, CLIP_L_WIDTH + CLIP_G_WIDTH, device=out.device)
        return out, pooled.to(out.dtype)

    embeds, pooled = one(prompt)
    negative_embeds, negative_pooled = one(negative)
    return _batched(embeds, negative_embeds, pooled, negative_pooled, batch)


def encode_flux(tokenizers, text_encoders, prompt: str, negative: str = "", *, batch: int = 1,
                reading: PromptReading | None = None) -> Conditioning:
    """Flux.1 conditioning from (CLIP-L, T5) tokenizers and encoders: embeds = T5's states (B, T ≥ 256, d),
    pooled = CLIP-L's pooled output (B, 768), masks (B, T)."""
    reading = reading or PromptReading()
    clip_skip = reading.clip_skip or 1  # only the pooled output is used, which is the last layer's anyway
    tok_l, tok_t5 = _parts(tokenizers, 2, "Flux")
    enc_l, enc_t5 = _parts(text_encoders, 2, "Flux")
    if enc_l is None or enc_t5 is None:
        raise DiffdiffError("Flux needs both its text encoders, CLIP-L and T5-XXL")

    def one(text: str):
        hidden = encode_t5(tok_t5, enc_t5, text, reading.style, FLUX_T5_MIN_TOKENS)
        _, pooled = _clip(tok_l, enc_l, text, reading, clip_skip, 0)
        return hidden, pooled.to(hidden.dtype)

    embeds, pooled = one(prompt)
    negative_embeds, negative_pooled = one(negative)
    return _batched(embeds, negative_embeds, pooled, negative_pooled, batch)


def z_image_text(text: str) -> str:
    """The prompt as Z-Image's Qwen3 reads it: LoRA tags and `embedding:` words removed, `\\(` `\\)` made
    brackets, weights left as literal text (ComfyUI reads no weights for Qwen), in the chat template."""
    text = EMBEDDING_WORD.sub("", split_lora_tags(text)[0])
    return Z_IMAGE_TEMPLATE.format(text.replace("\\(", "(").replace("\\)", ")"))


@torch.no_grad()
def encode_qwen3(tokenizer, encoder, text: str) -> torch.Tensor:
    """Qwen3's second-to-last hidden states (1, T, d) of a prompt in Z-Image's chat template."""
    ids = tokenizer(z_image_text(text), add_special_tokens=False).input_ids
    input_ids = torch.tensor([ids], device=device_of(encoder))
    mask = torch.ones_like(input_ids)
    output = encoder(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
    return output.hidden_states[-2]


def encode_z_image(tokenizers, text_encoders, prompt: str, negative: str = "", *, batch: int = 1,
                   reading: PromptReading | None = None) -> Conditioning:
    """Z-Image conditioning from the Qwen3 tokenizer and a transformers Qwen3Model: embeds (B, T, d), masks
    (B, T) True at the real tokens; no pooled output. `reading` is accepted for a common signature; Qwen3
    reads no weights, CLIP skip or embeddings."""
    (tokenizer,), (encoder,) = _parts(tokenizers, 1, "Z-Image"), _parts(text_encoders, 1, "Z-Image")
    embeds = encode_qwen3(tokenizer, encoder, prompt)
    negative_embeds = encode_qwen3(tokenizer, encoder, negative)
    return _batched(embeds, negative_embeds, None, None, batch)


FLOW_ENCODERS = {"sd3": encode_sd3, "flux": encode_flux, "z-image": encode_z_image}
