"""Read one LoRA file into float32 tensors: `.safetensors` by default, pickled files only on opt-in; every
failure (missing, unreadable, corrupt, truncated, empty, non-finite numbers) is one DiffdiffError line."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DiffdiffError
from ..models.single_file import read_checkpoint


def read_lora_file(
    path: Path, *, allow_pickle: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors as float32 on the CPU, safetensors header metadata) of the LoRA file at `path`."""
    path = Path(path)
    if not path.exists():
        raise DiffdiffError(f"LoRA file not found: {path}")
    if path.is_dir():
        raise DiffdiffError(f"LoRA {path} is a folder; give the .safetensors file inside it")
    tensors, metadata = read_checkpoint(path, allow_pickle=allow_pickle)  # its errors name the file
    if not tensors:
        raise DiffdiffError(f"LoRA {path.name} holds no tensors")
    converted = {}
    for key, tensor in tensors.items():
        if not (tensor.is_floating_point() or key.endswith(".alpha")):
            raise DiffdiffError(f"LoRA {path.name}: tensor {key!r} holds {tensor.dtype} values, not weights")
        tensor = tensor.to(torch.float32)
        if not torch.isfinite(tensor).all():
            raise DiffdiffError(f"LoRA {path.name}: tensor {key!r} holds NaN or infinite values; refusing it")
        converted[key] = tensor
    return converted, metadata
