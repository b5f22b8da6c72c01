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


@pytest.fixture(scope="session")
def tiny_depth_model(tmp_path_factory):
    """A tiny random Depth Anything model (transformers folder)."""
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    stages = ["stage1", "stage2", "stage3", "stage4"]
    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
                            patch_size=14, image_size=28, out_features=stages, reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, patch_size=14,
                                 neck_hidden_sizes=[8] * 4, fusion_hidden_size=8, head_hidden_size=8)
    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(config)
    folder = tmp_path_factory.mktemp("tiny-depth")
    model.save_pretrained(folder)
    DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      do_pad=False).save_pretrained(folder)
    return folder


CHROMIUM = "/usr/bin/chromium"  # Debian's chromium package; Playwright drives it (it cannot download its own)
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test-artifacts")


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Debian's package) under Playwright, for the page's tests."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A fresh browser page (1280×900, device pixel ratio 1)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def screenshot(page, request):
    """`screenshot(name)` saves the page as test-artifacts/<test>-<name>.png."""
    os.makedirs(ARTIFACTS, exist_ok=True)

    def take(name: str) -> str:
        path = os.path.join(ARTIFACTS, f"{request.node.name}-{name}.png")
        page.screenshot(path=path, full_page=True)
        return path

    return take
