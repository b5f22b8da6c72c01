"""Chunks → one CLIP encoder's hidden states (chunks joined on the token axis) and pooled output, with the
token weights applied in ComfyUI's or A1111's way and the layer chosen by CLIP skip (design §12).

- **comfy**: when any weight differs from 1, the empty prompt is encoded in the same batch and each weighted
  token's vector moves along the line from the empty prompt's vector at that position:
  z ← z_empty + w · (z − z_empty).
- **a1111**: each chunk is scaled token by token, z ← z · w, then multiplied by mean(z before) / mean(z
  after) so its overall mean is unchanged.
- CLIP skip N takes the hidden states N layers from the top (1 = the last layer); `final_norm` then passes
  them through the encoder's final layer norm (SD1/SD2; SDXL uses them raw).
- The pooled output (SDXL's second encoder) is the first chunk's, from the last layer, as both tools do.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from ..errors import DiffdiffError
from .chunks import Chunk


def device_of(module) -> torch.device:
    """The device of a network's first parameter (the CPU for one without parameters)."""
    for parameter in module.parameters():
        return parameter.device
    return torch.device("cpu")


@contextmanager
def _embedding_vectors(encoder, chunks: list[Chunk]):
    """Put each chunk's embedding vectors at their positions of the token-embedding output."""
    if not any(chunk.vectors for chunk in chunks):
        yield
        return

    def substitute(module, inputs, output):
        output = output.clone()
        for row, chunk in enumerate(chunks):
            for position, vector in chunk.vectors.items():
                output[row, position] = vector.to(device=output.device, dtype=output.dtype)
        return output

    handle = encoder.get_input_embeddings().register_forward_hook(substitute)
    try:
        yield
    finally:
        handle.remove()


def check_clip_skip(encoder, clip_skip: int) -> None:
    layers = int(encoder.config.num_hidden_layers)
    if not 1 <= clip_skip <= layers:
        raise DiffdiffError(f"clip skip {clip_skip} is out of range: this text encoder has {layers} layers "
                            f"(use 1 to {layers})")


def comfy_weighting(hidden: torch.Tensor, empty: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """z_empty + w (z − z_empty) at every position whose weight is not 1; `hidden` (k, T, d), `empty` (T, d),
    `weights` (k, T)."""
    weighted = (hidden - empty) * weights[..., None] + empty
    return torch.where((weights != 1.0)[..., None], weighted, hidden)


def a1111_weighting(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per chunk: z · w, rescaled to the chunk's original mean; `hidden` (k, T, d), `weights` (k, T). (A chunk
    whose weighted mean is exactly 0 is left unrescaled, where A1111 would divide by zero.)"""
    rows = []
    for row, row_weights in zip(hidden, weights):
        original_mean = row.mean()
        scaled = row * row_weights[:, None]
        new_mean = scaled.mean()
        rows.append(scaled * (original_mean / new_mean) if new_mean != 0 else scaled)
    return torch.stack(rows)


@torch.no_grad()
def encode_chunks(encoder, chunks: list[Chunk], empty: Chunk, *, style: str, clip_skip: int,
                  final_norm: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(hidden states (1, 77·k, d), pooled (1, p) or None) of one prompt's `chunks`; `empty` is the empty
    prompt's chunk (ComfyUI's weighting reference)."""
    check_clip_skip(encoder, clip_skip)
    weights = torch.tensor([chunk.weights for chunk in chunks], dtype=torch.float32)
    with_empty = style == "comfy" and bool((weights != 1.0).any())
    batch = chunks + [empty] if with_empty else chunks
    ids = torch.tensor([chunk.ids for chunk in batch], device=device_of(encoder))
    with _embedding_vectors(encoder, batch):
        output = encoder(ids, output_hidden_states=True)
    hidden = output.hidden_states[-clip_skip]
    if final_norm:
        text_model = getattr(encoder, "text_model", encoder)  # transformers 4 nests the layers one deeper
        hidden = text_model.final_layer_norm(hidden)
    dtype = hidden.dtype
    hidden = hidden.float()
    weights = weights.to(hidden.device)
    if with_empty:
        hidden = comfy_weighting(hidden[:-1], hidden[-1], weights)
    elif style == "a1111":
        hidden = a1111_weighting(hidden, weights)
    pooled = getattr(output, "text_embeds", None)
    pooled = pooled[:1] if pooled is not None else None
    return hidden.to(dtype).reshape(1, -1, hidden.shape[-1]), pooled
