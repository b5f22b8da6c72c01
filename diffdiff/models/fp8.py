"""Float8 checkpoint tensors → a compute dtype before a network is built (CPUs cannot compute in fp8).

Three layouts are read:
- plain fp8: every float8_e4m3fn / float8_e5m2 tensor is cast to the dtype.
- ComfyUI's "scaled fp8" (e.g. t5xxl_fp8_e4m3fn_scaled.safetensors): a `scaled_fp8` marker tensor (empty,
  of the fp8 dtype) and, per linear layer, `<layer>.scale_weight` (a float32 multiplier, usually a scalar):
  weight = fp8 weight · scale_weight, as ComfyUI's scaled-fp8 linear layers compute it. `<layer>.scale_input`
  (an activation scale for fp8 matrix products) does not change the weight and is dropped.
- ComfyUI's newer quantised layout: `<layer>.weight_scale` with an fp8 weight, dequantised the same way;
  `<layer>.input_scale` and `<layer>.comfy_quant` are dropped. Other quantised formats (int8, fp4 packed in
  uint8) are refused.
The product is formed in float32 and then cast to the dtype; markers and scales leave the state dict.
"""

from __future__ import annotations

import torch

from ..errors import DiffdiffError

FP8_DTYPES = tuple(getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
                                                     "float8_e5m2fnuz") if hasattr(torch, name))
MARKER = "scaled_fp8"
LEGACY_SCALE = ".scale_weight"
QUANT_SCALE = ".weight_scale"
DROPPED_SUFFIXES = (".scale_input", ".input_scale", ".comfy_quant")


def is_fp8(tensor: torch.Tensor) -> bool:
    return tensor.dtype in FP8_DTYPES


def has_fp8(state_dict: dict) -> bool:
    """Whether the state dict holds fp8 tensors or ComfyUI's scaled-fp8 marker / scales."""
    return any(is_fp8(v) or _is_extra(k) for k, v in state_dict.items())


def _is_marker(key: str) -> bool:
    return key == MARKER or key.endswith("." + MARKER)


def _is_extra(key: str) -> bool:
    return _is_marker(key) or key.endswith((LEGACY_SCALE, QUANT_SCALE) + DROPPED_SUFFIXES)


def _scaled(key: str, weight: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    scale = scale.float()
    if scale.ndim == 1 and weight.ndim > 1 and scale.numel() == weight.shape[0]:
        scale = scale.reshape(-1, *([1] * (weight.ndim - 1)))  # one multiplier per output row
    try:
        return (weight.float() * scale).to(dtype)
    except RuntimeError:
        raise DiffdiffError(f"cannot apply the fp8 scale of {key} (shape {tuple(scale.shape)}) to its weight"
                            f" of shape {tuple(weight.shape)}; an unsupported quantised layout") from None


def upcast_fp8(state_dict: dict, dtype: torch.dtype) -> dict:
    """A new state dict in which fp8 tensors are `dtype`, scaled weights dequantised and the scaled-fp8
    markers and scales removed; other tensors are passed through unchanged (the same objects)."""
    if not has_fp8(state_dict):
        return state_dict
    result = {}
    for key, tensor in state_dict.items():
        if _is_extra(key):
            continue
        base = key[: -len(".weight")] if key.endswith(".weight") else None
        legacy = state_dict.get(base + LEGACY_SCALE) if base is not None else None
        quant = state_dict.get(base + QUANT_SCALE) if base is not None else None
        if quant is not None and not is_fp8(tensor):
            raise DiffdiffError(f"{key} is quantised as {tensor.dtype} with a weight_scale; only fp8 "
                                "quantised weights can be read (convert the file to fp16/bf16)")
        scale = legacy if legacy is not None else quant
        if scale is not None:
            result[key] = _scaled(key, tensor, scale, dtype)
        elif is_fp8(tensor):
            result[key] = tensor.to(dtype)
        else:
            result[key] = tensor
    return result
