"""The precision policy: the dtypes of the networks and the VAE, chosen from what the device runs natively.

`device_capabilities(device)` reads what the hardware does fast (bf16, fp16); `choose_precision(capabilities,
asked)` turns that into a `Precision` (network dtype, VAE dtype, the reason). The rule (docs/design.md §16)
was decided by measuring each precision's output against fp32 on the demo model (bench/precision_quality.py):

- a CUDA GPU: the family's first half precision the GPU runs natively (fp16 from compute capability 7.0,
  bf16 from 8.0): fp16 for the SD families and SD3, bf16 for Flux (whose activations overflow fp16;
  fp16 on GPUs without bf16) and Z-Image (bf16 only, else fp32); the VAE in bf16 where the GPU runs bf16,
  else in fp32, since SD's VAE overflows in fp16; older GPUs: fp32;
- Apple MPS: fp16 networks for the families that run in fp16, fp32 VAE;
- a CPU that runs bf16 natively (AMX or AVX512-BF16): bf16 networks and VAE; any other CPU: fp32.

An asked dtype (`--dtype`) wins; an fp16 network then keeps its VAE in fp32, for the same overflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DiffdiffError

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
SHORT_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}
# CPU flags (as /proc/cpuinfo spells them) that mean bf16 matrix products run natively.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPU_FP16_FLAGS = ("amx_fp16", "avx512_fp16")


@dataclass(frozen=True)
class Capabilities:
    """What a device runs fast: `kind` "cpu" | "cuda" | "mps", native `bf16`, native `fp16`."""

    kind: str
    bf16: bool = False
    fp16: bool = False


@dataclass(frozen=True)
class Precision:
    """`network`: the dtype of the UNet and the text encoders; `vae`: the VAE's; `reason`: why, in words."""

    network: torch.dtype
    vae: torch.dtype
    reason: str

    def record(self) -> dict:
        """The settings record's entries."""
        return {"precision": SHORT_NAMES[self.network], "vae_precision": SHORT_NAMES[self.vae]}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (Linux; empty elsewhere or when unreadable)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def device_capabilities(device: torch.device) -> Capabilities:
    """Read the capabilities of `device` from the hardware."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return Capabilities("cuda", bf16=(major, minor) >= (8, 0), fp16=(major, minor) >= (7, 0))
    if device.type == "mps":
        return Capabilities("mps", bf16=False, fp16=True)
    flags = cpu_flags()
    return Capabilities("cpu", bf16=any(flag in flags for flag in CPU_BF16_FLAGS),
                        fp16=any(flag in flags for flag in CPU_FP16_FLAGS))


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A dtype from its name (fp16, bf16, fp32 and their long spellings) or a torch dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype not in SHORT_NAMES:
            raise DiffdiffError(f"unsupported dtype {dtype}; choose one of fp16, bf16, fp32")
        return dtype
    name = str(dtype).strip().lower()
    if name not in DTYPE_NAMES:
        raise DiffdiffError(f"unknown dtype {dtype!r}; choose one of fp16, bf16, fp32")
    return DTYPE_NAMES[name]


def choose_precision(capabilities: Capabilities, asked: str | torch.dtype | None = None,
                     half: tuple[str, ...] = ("fp16", "bf16")) -> Precision:
    """The precision for a device with `capabilities`; `asked` (a dtype or its name) overrides the default;
    `half` is the model family's half precisions in order of preference (`Family.half_precisions`)."""
    if asked is not None:
        network = parse_dtype(asked)
        vae = torch.float32 if network == torch.float16 else network
        return Precision(network, vae, f"asked for {SHORT_NAMES[network]}")
    native = {"fp16": capabilities.fp16, "bf16": capabilities.bf16}
    if capabilities.kind == "cuda" and capabilities.fp16:
        vae = torch.bfloat16 if capabilities.bf16 else torch.float32
        chosen = next((name for name in half if native[name]), None)
        if chosen is not None:
            return Precision(DTYPE_NAMES[chosen], vae, f"CUDA GPU with {chosen} tensor cores")
        return Precision(torch.float32, vae, "CUDA GPU without the family's half precision")
    if capabilities.kind == "mps" and "fp16" in half:
        return Precision(torch.float16, torch.float32, "Apple GPU (MPS)")
    if capabilities.kind == "cpu" and capabilities.bf16 and "bf16" in half:
        return Precision(torch.bfloat16, torch.bfloat16, "CPU with native bf16 (AMX or AVX512-BF16)")
    return Precision(torch.float32, torch.float32, f"{capabilities.kind} without fast half precision")
