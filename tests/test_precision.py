"""The precision policy: the dtypes chosen for given device capabilities (injected), what --dtype overrides,
how the capabilities are read, and that a load follows the policy and records it in the settings."""

from __future__ import annotations

import pytest
import torch

from diffdiff.errors import DiffdiffError
from diffdiff.models import precision as policy
from diffdiff.models.precision import Capabilities, choose_precision, cpu_flags, device_capabilities

F16, BF16, F32 = torch.float16, torch.bfloat16, torch.float32


@pytest.fixture(scope="module")
def tiny_sd1_file(tmp_path_factory):
    from diffdiff.models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("precision"), "sd1", single_file=True)


@pytest.fixture(scope="module")
def photo():
    from PIL import Image

    ramp = torch.linspace(0, 255, 64).to(torch.uint8)[None, :, None].expand(48, 64, 3)
    return Image.fromarray(ramp.contiguous().numpy())


@pytest.mark.parametrize("capabilities, network, vae", [
    (Capabilities("cpu"), F32, F32),  # an AVX2 CPU: bf16 would be emulated
    (Capabilities("cpu", fp16=True), F32, F32),  # fp16 alone is not a default on a CPU
    (Capabilities("cpu", bf16=True), BF16, BF16),  # AMX / AVX512-BF16
    (Capabilities("cuda", bf16=True, fp16=True), F16, BF16),  # Ampere on: fp16 networks, bf16 VAE
    (Capabilities("cuda", fp16=True), F16, F32),  # Volta/Turing: the VAE stays fp32 (fp16 overflows)
    (Capabilities("cuda"), F32, F32),  # Pascal and older
    (Capabilities("mps", fp16=True), F16, F32),
])
def test_default_precision_per_capabilities(capabilities, network, vae):
    chosen = choose_precision(capabilities)
    assert (chosen.network, chosen.vae) == (network, vae)
    assert chosen.reason


@pytest.mark.parametrize("asked, network, vae", [
    ("fp16", F16, F32), ("half", F16, F32), ("bf16", BF16, BF16), ("fp32", F32, F32),
    (torch.bfloat16, BF16, BF16),
])
def test_an_asked_dtype_wins_and_an_fp16_network_keeps_an_fp32_vae(asked, network, vae):
    for capabilities in (Capabilities("cpu"), Capabilities("cuda", bf16=True, fp16=True)):
        chosen = choose_precision(capabilities, asked)
        assert (chosen.network, chosen.vae) == (network, vae)
        assert chosen.reason.startswith("asked for")


@pytest.mark.parametrize("asked", ["int8", "fp64", torch.float64])
def test_unknown_dtypes_are_one_line_errors(asked):
    with pytest.raises(DiffdiffError, match="fp16, bf16, fp32"):
        choose_precision(Capabilities("cpu"), asked)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\n"
                       "flags\t\t: fpu sse2 avx2 amx_bf16 amx_tile\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "amx_bf16", "amx_tile"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize("flags, bf16, fp16", [
    ({"avx2", "fma"}, False, False),
    ({"avx512f", "avx512_bf16"}, True, False),
    ({"amx_bf16", "amx_fp16", "amx_tile"}, True, True),
    ({"avx512_fp16"}, False, True),
])
def test_cpu_capabilities_follow_the_flags(monkeypatch, flags, bf16, fp16):
    monkeypatch.setattr(policy, "cpu_flags", lambda: frozenset(flags))
    assert device_capabilities(torch.device("cpu")) == Capabilities("cpu", bf16=bf16, fp16=fp16)


def test_a_load_follows_the_policy_and_the_settings_record_it(tiny_sd1_file, monkeypatch, photo):
    from diffdiff import pipeline
    from diffdiff.models import load_model

    monkeypatch.setattr(policy, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    model = load_model(tiny_sd1_file, device="cpu")
    assert model.dtype == BF16 and model.unet.dtype == BF16 and model.vae.dtype == BF16
    assert model.text_encoders[0].dtype == BF16
    result = pipeline.edit(photo, 0.5, "a red barn", model=model, steps=1, seed=1)
    assert (result.settings["precision"], result.settings["vae_precision"]) == ("bf16", "bf16")
    monkeypatch.setattr(policy, "cpu_flags", lambda: frozenset({"avx2"}))
    model = load_model(tiny_sd1_file, device="cpu")
    assert model.unet.dtype == F32 and model.vae.dtype == F32
    asked = load_model(tiny_sd1_file, device="cpu", dtype="fp16")
    assert asked.unet.dtype == F16 and asked.vae.dtype == F32


@pytest.mark.parametrize("family, capabilities, network", [
    ("flux", Capabilities("cuda", bf16=True, fp16=True), BF16),  # Flux overflows fp16 where bf16 exists
    ("flux", Capabilities("cuda", fp16=True), F16),  # Turing: fp16 is Flux's second choice
    ("z-image", Capabilities("cuda", bf16=True, fp16=True), BF16),
    ("z-image", Capabilities("cuda", fp16=True), F32),  # Z-Image runs in bf16 only
    ("z-image", Capabilities("mps", fp16=True), F32),
    ("sd3", Capabilities("cuda", bf16=True, fp16=True), F16),
    ("sdxl", Capabilities("cuda", bf16=True, fp16=True), F16),
    ("flux-schnell", Capabilities("cpu", bf16=True), BF16),
    ("flux", Capabilities("cpu"), F32),
])
def test_each_family_gets_its_own_half_precision(family, capabilities, network):
    from diffdiff.models.families import FAMILY_TABLE

    chosen = choose_precision(capabilities, None, FAMILY_TABLE[family].half_precisions)
    assert chosen.network == network and chosen.reason
    assert choose_precision(capabilities, "fp32", FAMILY_TABLE[family].half_precisions).network == F32
