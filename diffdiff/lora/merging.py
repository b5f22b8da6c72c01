"""Merge mode: add each LoRA's delta into the layer weights (W' = W + strength × up·down, alpha / rank already
in `up`), keeping a copy of exactly the weights touched, taken before their first change, so that `restore()`
puts every one back bit for bit (copies, never subtraction)."""

from __future__ import annotations

import torch

from .resolve import ResolvedLora


class MergedWeights:
    """The weights changed so far and their original values."""

    def __init__(self) -> None:
        self._saved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self._saved)

    @torch.no_grad()
    def add(self, weight: torch.Tensor, delta: torch.Tensor) -> None:
        """weight += delta, in float32, stored in the weight's dtype; the original is kept once."""
        if id(weight) not in self._saved:
            self._saved[id(weight)] = (weight, weight.detach().clone())
        merged = weight.detach().to(torch.float32) + delta.to(device=weight.device, dtype=torch.float32)
        weight.data.copy_(merged.to(weight.dtype))

    @torch.no_grad()
    def restore(self) -> None:
        """Every changed weight back to its saved original (bit for bit); the copies are then dropped."""
        for weight, original in self._saved.values():
            weight.data.copy_(original)
        self._saved.clear()


def merge_lora(
    merged: MergedWeights, lora: ResolvedLora, weight: float, text_weight: float, low_rank: bool = True
) -> None:
    """Add `lora`'s deltas into the model: UNet ones × `weight`, text-encoder ones × `text_weight`. The full
    differences are always merged; the low-rank updates only when `low_rank` (adapter mode passes False)."""
    for network, updates in lora.updates.items():
        strength = weight if network == "unet" else text_weight
        if low_rank:
            for update in updates.values():
                merged.add(update.layer.weight, strength * update.delta())
        for parameter, diff in lora.full_diffs.get(network, []):
            merged.add(parameter, strength * diff)
