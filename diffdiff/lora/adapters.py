"""Adapter mode: each LoRA becomes a PEFT adapter on the layers it targets (weights untouched; the update runs
beside each layer at every call), all active at once with their strengths as PEFT scales; `remove()` takes
every LoRA layer out again (diffusers' `recurse_remove_peft_layers`), leaving the original modules in place.

The adapters are injected with PEFT's `inject_adapter_in_model` and filled with `set_peft_model_state_dict`
(the calls diffusers' `load_lora_adapter` and transformers' `load_adapter` make), from the already checked,
alpha-folded updates, so PEFT's scale is exactly the strength (lora_alpha = r)."""

from __future__ import annotations

from collections import Counter

from torch import nn

from ..errors import DiffdiffError
from .resolve import LayerUpdate, model_networks

ADAPTER_PREFIX = "diffdiff_lora_"


def _config(updates: dict[str, LayerUpdate]):
    from peft import LoraConfig

    ranks = {module: int(update.down.shape[0]) for module, update in updates.items()}
    common = Counter(ranks.values()).most_common(1)[0][0]
    pattern = {module.replace(".", r"\."): rank for module, rank in ranks.items() if rank != common}
    return LoraConfig(
        r=common,
        lora_alpha=common,
        target_modules=sorted(updates),
        rank_pattern=pattern,
        alpha_pattern=dict(pattern),
        lora_dropout=0.0,
        bias="none",
    )


class Adapters:
    """The PEFT adapters attached to one model's networks."""

    def __init__(self, model) -> None:
        self._networks = model_networks(model)
        self._names: dict[str, list[str]] = {}  # network -> adapter names on it
        self._scales: dict[str, list[float]] = {}
        self._had_config = {name: hasattr(net, "peft_config") for name, net in self._networks.items()}

    def add(
        self, index: int, updates: dict[str, dict[str, LayerUpdate]], weight: float, text_weight: float
    ) -> None:
        """Attach one LoRA's low-rank `updates` (network -> module -> update) as adapter number `index`."""
        from peft import inject_adapter_in_model, set_peft_model_state_dict

        adapter = f"{ADAPTER_PREFIX}{index}"
        for network_name, network_updates in updates.items():
            if not network_updates:
                continue
            network = self._networks[network_name]
            self._names.setdefault(network_name, []).append(adapter)
            self._scales.setdefault(network_name, []).append(
                weight if network_name == "unet" else text_weight
            )
            inject_adapter_in_model(
                _config(network_updates), network, adapter_name=adapter, low_cpu_mem_usage=True
            )
            state = {}
            for module, update in network_updates.items():
                target = update.layer.weight
                state[f"{module}.lora_A.weight"] = update.down.to(device=target.device, dtype=target.dtype)
                state[f"{module}.lora_B.weight"] = update.up.to(device=target.device, dtype=target.dtype)
            result = set_peft_model_state_dict(network, state, adapter_name=adapter, low_cpu_mem_usage=True)
            unexpected = [
                key for key in getattr(result, "unexpected_keys", []) if adapter in key or "lora_" in key
            ]
            if unexpected:
                raise DiffdiffError(f"PEFT did not take LoRA weights {', '.join(unexpected[:4])}")

    def activate(self) -> None:
        """Make every attached adapter active at its strength (PEFT scale = strength, since alpha = r)."""
        from diffusers.utils.peft_utils import set_weights_and_activate_adapters

        for network_name, names in self._names.items():
            set_weights_and_activate_adapters(self._networks[network_name], names, self._scales[network_name])

    def remove(self) -> None:
        """Take every LoRA layer out of the networks, restoring the original modules."""
        from diffusers.utils import recurse_remove_peft_layers

        for network_name in list(self._names):
            network = self._networks[network_name]
            recurse_remove_peft_layers(network)
            if not self._had_config[network_name] and hasattr(network, "peft_config"):
                del network.peft_config
            del self._names[network_name]


def has_lora_layers(network: nn.Module) -> bool:
    """Whether any PEFT layer is left in `network`."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(module, BaseTunerLayer) for module in network.modules())
