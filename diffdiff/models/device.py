"""Device and precision choice: "auto|cpu|cuda|mps" → torch.device, dtype defaults, the VAE's safe dtype."""

from __future__ import annotations

import torch

from ..errors import DiffdiffError

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPE_NAMES = {
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device for a name: "auto" picks CUDA, then MPS, then CPU; "cuda:1" style indices allowed."""
    if isinstance(device, torch.device):
        device = str(device)
    name = str(device).strip().lower()
    kind = name.split(":", 1)[0]
    if kind not in DEVICES or (kind == "auto" and name != "auto"):
        raise DiffdiffError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DiffdiffError("device 'cuda' requested but no CUDA GPU is available; use --device auto or cpu")
    if kind == "mps" and not _mps_available():
        raise DiffdiffError("device 'mps' requested but MPS is not available; use --device auto or cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DiffdiffError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}") from None


def resolve_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """The network dtype: as asked, else fp16 on CUDA/MPS and fp32 on CPU."""
    if dtype is None:
        return torch.float32 if device.type == "cpu" else torch.float16
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPE_NAMES.values():
            raise DiffdiffError(f"unsupported dtype {dtype}; choose one of fp16, bf16, fp32")
        return dtype
    name = str(dtype).strip().lower()
    if name not in DTYPE_NAMES:
        raise DiffdiffError(f"unknown dtype {dtype!r}; choose one of fp16, bf16, fp32")
    return DTYPE_NAMES[name]


def vae_dtype(dtype: torch.dtype) -> torch.dtype:
    """SD-family VAEs overflow in fp16, so an fp16 model keeps its VAE in fp32; bf16 and fp32 stay."""
    return torch.float32 if dtype == torch.float16 else dtype
