"""LoRA files (kohya/A1111, diffusers/PEFT, ComfyUI layouts) applied to a loaded SD1/SD2/SDXL model for the
duration of a `with applied_loras(...)` block, merged into the weights or as PEFT adapters."""

from .applying import applied_loras
from .use import LoraUse, find_lora, lora_short_hash, parse_lora_flag

__all__ = ["LoraUse", "applied_loras", "find_lora", "lora_short_hash", "parse_lora_flag"]
