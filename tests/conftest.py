"""Shared test settings (never reach a model hub; keep torch to the cores we have) and the tiny SD1 model."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sd1(tmp_path_factory):
    """A tiny random-weight SD1 model (diffusers folder), loaded on the CPU."""
    from diffdiff.models import load_model, make_tiny_model

    folder = make_tiny_model(tmp_path_factory.mktemp("tiny") / "sd1", "sd1")
    return load_model(folder, device="cpu")
