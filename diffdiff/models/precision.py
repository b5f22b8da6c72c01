"""The precision policy: the dtypes of the networks and the VAE, chosen from what the device runs natively.

`device_capabilities(device)` reads what the hardware does fast (bf16, fp16); `choose_precision(capabilities,
asked)` turns that into a `Precision` (network dtype, VAE dtype, the reason). The rule (docs/design.md §16)
was decided by measuring each precision's output against fp32 on the demo model (bench/precision_quality.py):

- a CUDA GPU: fp16 networks (tensor cores from compute capability 7.0); the VAE in bf16 where the GPU
  runs bf16 (compute capability 8.0 on), else in fp32, since SD's VAE overflows in fp16; older GPUs: fp32;
- Apple MPS: fp16 networks, fp32 VAE;
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


def choose_precision(capabilities: Capabilities, asked: str | torch.dtype | None = None) -> Precision:
    """The precision for a device with `capabilities`; `asked` (a dtype or its name) overrides the default."""
    if asked is not None:
        network = parse_dtype(asked)
        vae = torch.float32 if network == torch.float16 else network
        return Precision(network, vae, f"asked for {SHORT_NAMES[network]}")
    if capabilities.kind == "cuda" and capabilities.fp16:
        vae = torch.bfloat16 if capabilities.bf16 else torch.float32
        return Precision(torch.float16, vae, "CUDA GPU with fp16 tensor cores")
    if capabilities.kind == "mps":
        return Precision(torch.float16, torch.float32, "Apple GPU (MPS)")
    if capabilities.kind == "cpu" and capabilities.bf16:
        return Precision(torch.bfloat16, torch.bfloat16, "CPU with native bf16 (AMX or AVX512-BF16)")
    return Precision(torch.float32, torch.float32, f"{capabilities.kind} without fast half precision")
