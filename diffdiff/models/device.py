"""Device choice: "auto|cpu|cuda|mps" → torch.device (the precision policy is `precision`)."""

from __future__ import annotations

import torch

from ..errors import DiffdiffError

DEVICES = ("auto", "cpu", "cuda", "mps")


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
