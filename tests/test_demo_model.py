"""The demo model: the training script still runs and is deterministic, and the shipped file is an ordinary
SD1 checkpoint that loads through the single-file path, reconstructs its scenes and edits by the map."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffdiff.demo import DEMO_MODEL
from diffdiff.demo.scenes import land, render

ROOT = Path(__file__).resolve().parents[1]


def _train_tiny(path: Path) -> None:
    command = [sys.executable, str(ROOT / "scripts" / "train_demo_model.py"), "--tiny", "--threads", "1",
               "-o", str(path)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]


def test_training_smoke_run_writes_a_loadable_checkpoint_with_the_same_bytes_each_time(tmp_path):
    from safetensors import safe_open

    from diffdiff.models import load_model

    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    _train_tiny(first)
    _train_tiny(second)
    assert first.read_bytes() == second.read_bytes()
    with safe_open(str(first), framework="pt") as handle:
        dtypes = {str(handle.get_slice(key).get_dtype()) for key in handle.keys()}
    assert dtypes == {"F16"}
    model = load_model(first, device="cpu")
    assert model.family == "sd1"
    # the scaling factor is measured from the trained VAE's latents, not SD1's 0.18215
    assert model.vae_codec.scaling_factor != pytest.approx(0.18215)


@pytest.fixture(scope="module")
def demo_model():
    from diffdiff.models import load_model

    return load_model(DEMO_MODEL, device="cpu")


def test_shipped_model_is_small_and_loads_as_an_ordinary_sd1_checkpoint(demo_model):
    assert DEMO_MODEL.stat().st_size <= 25 * 2**20
    assert demo_model.family == "sd1"
    assert demo_model.vae_codec.factor == 8 and demo_model.latent_channels == 4


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def test_shipped_vae_reconstructs_a_held_out_scene(demo_model):
    from diffdiff.demo.data import HELD_OUT_SEEDS
    from diffdiff.demo.scenes import Attributes

    scene = render(Attributes(time="sunset", ground="sand", lake=True, roof="blue", trees=1), 256,
                   HELD_OUT_SEEDS + 1)
    codec = demo_model.vae_codec
    decoded = codec.decode(codec.encode(scene.pixels))[0]
    assert _psnr(decoded, scene.pixels) > 20.0  # random weights give about 10 dB


def test_shipped_model_darkens_a_sky_asked_for_night_and_keeps_the_ground(demo_model):
    from diffdiff.demo.scenes import DEMO_ATTRIBUTES, DEMO_SEED
    from diffdiff.pipeline import edit

    scene = render(DEMO_ATTRIBUTES, 256, DEMO_SEED)  # the model's whole training scenes were 256 px
    keep = land(scene.masks)
    strength = np.where(keep, 0.0, 1.0).astype(np.float32)
    image = Image.fromarray(scene.pixels)

    def sky_luminance(prompt: str) -> float:
        result = edit(image, strength, prompt, model=demo_model, steps=12, cfg=6, seed=1)
        output = np.asarray(result.images[0])
        assert np.array_equal(output[keep], scene.pixels[keep])
        return float(output[~keep].astype(np.float64).mean())

    assert sky_luminance("a night sky with stars") < 0.8 * sky_luminance("a clear blue sky")
