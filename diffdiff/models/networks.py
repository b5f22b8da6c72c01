"""Network adapters: one call, `network(model_input, timestep, concat=None, **conditioning) -> output`, for
the UNet and for each flow transformer, all on the unpacked latent grid (B, C, h, w).

The sampler, the strength map, the gate and the tiles only ever see unpacked latents; what a network needs
beyond them happens here and is undone on the way out:
- `UNetNetwork`: an inpainting UNet's extra channels are appended to the input.
- `SD3Network`: MMDiT patchifies inside; sides are padded to its patch size.
- `FluxNetwork`: 2×2 latent patches become tokens (`pack_latents`, feature order channel, row, column),
  image ids are (0, row, column) per token, text ids zero; the distilled guidance goes in as a number per
  item. Flux Fill's extra inputs are its masked-image latent and its mask, each 8×8 pixel block of which
  becomes 64 channels; they are appended before packing, which equals packing them apart and joining the
  token features.
- `ZImageNetwork`: the transformer takes lists (one latent (C, 1, h, w) and one caption of its real tokens
  per item), reads time as 1 − σ and predicts −velocity: both conventions are turned back here.
Sides not divisible by the patch size are padded circularly (as ComfyUI does) and cropped back. A caption
padded to batch with a longer one (`text_mask` False on the filler) is cut back to its real tokens: such
items run one by one, as ComfyUI runs a prompt and its negative of different lengths.

`conditioning` carries the names `Conditioning.network_kwargs` gives: `encoder_hidden_states`,
`pooled_projections`, `added_cond_kwargs` (SDXL) and `text_mask` (which caption tokens are real).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """x (B, C, h, w) padded circularly on the bottom and right to sides divisible by `multiple`."""
    pad_h, pad_w = (-x.shape[-2]) % multiple, (-x.shape[-1]) % multiple
    if not (pad_h or pad_w):
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="circular")


def pack_latents(x: torch.Tensor, patch: int = 2) -> torch.Tensor:
    """(B, C, h, w) → (B, h/p · w/p, C·p·p) tokens, row-major over patches; features ordered (C, row, col)."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // patch) * (w // patch), c * patch * patch)


def unpack_latents(tokens: torch.Tensor, height: int, width: int, patch: int = 2) -> torch.Tensor:
    """The inverse of `pack_latents` for a (height, width) latent."""
    b, _, features = tokens.shape
    c = features // (patch * patch)
    x = tokens.view(b, height // patch, width // patch, c, patch, patch).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, height, width)


def image_ids(height: int, width: int, patch: int, device, dtype) -> torch.Tensor:
    """Flux's per-token position ids (h/p · w/p, 3): (0, row, column)."""
    rows = torch.arange(height // patch, device=device, dtype=dtype)
    columns = torch.arange(width // patch, device=device, dtype=dtype)
    ids = torch.zeros(height // patch, width // patch, 3, device=device, dtype=dtype)
    ids[..., 1] = rows[:, None]
    ids[..., 2] = columns[None, :]
    return ids.reshape(-1, 3)


def fill_inputs(concat: torch.Tensor, channels: int) -> torch.Tensor:
    """Flux Fill's extra channels from the inpainting link's `[mask, masked latent]` (B, 1 + C, h, w):
    `[masked latent, mask repeated 64 times]` — each latent cell's 8×8 pixels of the mask, which are equal
    on the latent grid."""
    mask, masked = concat[:, :1], concat[:, 1:1 + channels]
    return torch.cat([masked, mask.expand(-1, 64, -1, -1)], dim=1)


def by_caption(run, model_input, timestep, concat, encoder_hidden_states, text_mask, **per_item):
    """`run(model_input, timestep, concat, context, **per_item)` over the batch: in one call when every
    caption token is real, else item by item with each caption cut to its real tokens."""
    if text_mask is None or bool(text_mask.all()):
        return run(model_input, timestep, concat, encoder_hidden_states, **per_item)
    outputs = []
    for index in range(model_input.shape[0]):
        item = slice(index, index + 1)
        caption = encoder_hidden_states[item][:, text_mask[index].bool()]
        extra = {name: value[item] for name, value in per_item.items()}
        outputs.append(run(model_input[item], timestep[item], None if concat is None else concat[item],
                           caption, **extra))
    return torch.cat(outputs)


class UNetNetwork:
    """A diffusers UNet2DConditionModel; `concat` (an inpainting UNet's mask and masked latent) is appended to
    the input channels."""

    patch = 1

    def __init__(self, unet):
        self.module = unet

    def __call__(self, model_input, timestep, concat=None, *, encoder_hidden_states, added_cond_kwargs=None,
                 **unused):
        if concat is not None:
            model_input = torch.cat([model_input, concat], dim=1)
        kwargs = {} if added_cond_kwargs is None else {"added_cond_kwargs": added_cond_kwargs}
        output = self.module(model_input, timestep, encoder_hidden_states=encoder_hidden_states, **kwargs)
        return output.sample


class PooledTextNetwork:
    """What SD3's and Flux's adapters share: a caption and a pooled text vector per item, 2×2 patches;
    `_run(model_input, timestep, concat, context, pooled_projections)` is each one's own call (SD3's also
    takes `skip_layers`)."""

    patch = 2

    def __init__(self, transformer):
        self.module = transformer

    def __call__(self, model_input, timestep, concat=None, *, encoder_hidden_states, pooled_projections,
                 text_mask=None, skip_layers=None, **unused):
        run = self._run
        if skip_layers is not None:
            run = functools.partial(self._run, skip_layers=list(skip_layers))
        return by_caption(run, model_input, timestep, concat, encoder_hidden_states, text_mask,
                          pooled_projections=pooled_projections)


class SD3Network(PooledTextNetwork):
    """A diffusers SD3Transformer2DModel (SD3, SD3.5); `skip_layers` (block numbers) runs it with those
    blocks passed through (skip-layer guidance)."""

    def _run(self, model_input, timestep, concat, context, pooled_projections, skip_layers=None):
        height, width = model_input.shape[-2:]
        output = self.module(hidden_states=pad_to_multiple(model_input, self.patch), timestep=timestep,
                             encoder_hidden_states=context, pooled_projections=pooled_projections,
                             skip_layers=skip_layers).sample
        return output[..., :height, :width]


class FluxNetwork(PooledTextNetwork):
    """A diffusers FluxTransformer2DModel (dev, schnell, Fill); `guidance` is the distilled guidance scale,
    required when the network embeds one (the family table holds each family's default); `concat` is Flux
    Fill's inpainting input (see `fill_inputs`)."""

    def __init__(self, transformer, guidance: float | None = None):
        super().__init__(transformer)
        self.embeds_guidance = bool(getattr(transformer.config, "guidance_embeds", False))
        if self.embeds_guidance and guidance is None:
            raise ValueError("this Flux transformer embeds a distilled guidance scale; give `guidance`")
        self.guidance = guidance

    def _run(self, model_input, timestep, concat, context, pooled_projections):
        height, width = model_input.shape[-2:]
        channels = model_input.shape[1]
        if concat is not None:
            model_input = torch.cat([model_input, fill_inputs(concat, channels)], dim=1)
        padded = pad_to_multiple(model_input, self.patch)
        padded_h, padded_w = padded.shape[-2:]
        batch, device, dtype = padded.shape[0], padded.device, padded.dtype
        guidance = None
        if self.embeds_guidance:
            guidance = torch.full((batch,), float(self.guidance), device=device, dtype=dtype)
        tokens = self.module(
            hidden_states=pack_latents(padded, self.patch), timestep=timestep, guidance=guidance,
            pooled_projections=pooled_projections, encoder_hidden_states=context,
            txt_ids=torch.zeros(context.shape[1], 3, device=device, dtype=dtype),
            img_ids=image_ids(padded_h, padded_w, self.patch, device, dtype),
        ).sample
        return unpack_latents(tokens, padded_h, padded_w, self.patch)[:, :channels, :height, :width]


class ZImageNetwork:
    """A diffusers ZImageTransformer2DModel: one list item per batch item, captions cut to their real tokens
    (`text_mask`), time 1 − σ and the output negated (it predicts −velocity)."""

    patch = 2

    def __init__(self, transformer):
        self.module = transformer

    def __call__(self, model_input, timestep, concat=None, *, encoder_hidden_states, text_mask=None,
                 **unused):
        height, width = model_input.shape[-2:]
        padded = pad_to_multiple(model_input, self.patch)
        captions = list(encoder_hidden_states.unbind(0))
        if text_mask is not None:
            captions = [caption[mask.bool()] for caption, mask in zip(captions, text_mask.unbind(0))]
        outputs = self.module(list(padded.unsqueeze(2).unbind(0)), 1.0 - timestep, captions).sample
        return -torch.stack(outputs).squeeze(2)[..., :height, :width]


ADAPTERS = {"unet": UNetNetwork, "sd3": SD3Network, "flux": FluxNetwork, "z-image": ZImageNetwork}


def network_patch(family: str) -> int:
    """The latent cells per side of one network token of `family` (1 for the UNets): sizes and tile offsets
    on the latent grid are kept multiples of it, so a tile's tokens are the whole image's tokens."""
    from .families import FAMILY_TABLE

    return ADAPTERS[FAMILY_TABLE[family].network].patch


def network_adapter(kind: str, module, guidance: float | None = None):
    """The adapter of a family's `network` kind around its diffusers module."""
    if kind == "flux":
        return FluxNetwork(module, guidance)
    return ADAPTERS[kind](module)
