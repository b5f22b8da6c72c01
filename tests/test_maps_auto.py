"""Automatic maps: detail from local variance/gradients, depth from a tiny random Depth Anything model."""

import numpy as np
import pytest
from PIL import Image

from diffdiff.errors import DiffdiffError
from diffdiff.maps import depth_map, detail_map, load_depth_estimator


def _half_textured(height=64, width=96):
    rng = np.random.default_rng(0)
    grey = np.full((height, width), 0.5)
    grey[:, width // 2:] = rng.random((height, width // 2))
    return Image.fromarray(np.round(grey * 255).astype(np.uint8)).convert("RGB")


@pytest.mark.parametrize("measure", ["variance", "gradient"])
def test_detail_map_is_high_where_textured(measure):
    image = _half_textured()
    m = detail_map(image, scale=3.0, measure=measure)
    assert m.shape == (64, 96) and m.dtype == np.float32
    assert m.min() >= 0 and m.max() <= 1
    flat, busy = m[:, :30], m[:, 66:]
    assert busy.mean() > 0.5 > flat.mean() + 0.3
    reverse = detail_map(image, scale=3.0, measure=measure, reverse=True)
    assert np.allclose(reverse, 1 - m, atol=1e-6)


def test_detail_map_respects_min_and_max_strength():
    m = detail_map(_half_textured(), scale=3.0, low=0.2, high=0.7)
    assert np.isclose(m.min(), 0.2) and np.isclose(m.max(), 0.7)
    flat = detail_map(Image.new("L", (20, 10), 90), low=0.3, high=0.9)
    assert np.allclose(flat, 0.3)  # no detail anywhere: the low strength
    with pytest.raises(DiffdiffError, match="scale"):
        detail_map(_half_textured(), scale=0)


def test_depth_map_from_tiny_model(tiny_depth_model):
    estimator = load_depth_estimator(tiny_depth_model)
    assert type(estimator.model).__name__ == "DepthAnythingForDepthEstimation"
    image = Image.fromarray((np.random.default_rng(1).random((40, 60, 3)) * 255).astype(np.uint8))
    near = depth_map(image, estimator)
    far = depth_map(image, estimator, far=True)
    assert near.shape == (40, 60) and near.dtype == np.float32
    assert near.min() == 0.0 and near.max() == 1.0  # normalised to the full range
    assert np.allclose(far, 1 - near, atol=1e-6)
    # larger raw output = nearer for Depth Anything (disparity), so the nearest pixel is 1
    from diffdiff.maps.depth import predict_depth

    raw = predict_depth(image, estimator)
    assert near.flat[np.argmax(raw)] == 1.0


def test_depth_model_folder_missing_is_clear(tmp_path, monkeypatch):
    with pytest.raises(DiffdiffError, match="folder .*nowhere does not exist"):
        load_depth_estimator(tmp_path / "nowhere")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(DiffdiffError, match="nor in the local Hugging Face cache.*huggingface-cli download"):
        load_depth_estimator("someone/depth-model")


def test_depth_verb_end_to_end(tiny_depth_model, tmp_path):
    from diffdiff.cli.main import main
    from diffdiff.maps import load_map

    image = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(2).random((24, 36, 3)) * 255).astype(np.uint8)).save(image)
    near, far = tmp_path / "near.png", tmp_path / "far.png"
    assert main(["map", "depth", str(image), "--model", str(tiny_depth_model), "-o", str(near)]) == 0
    assert main(["map", "depth", str(image), "--model", str(tiny_depth_model), "--far", "-o", str(far)]) == 0
    near_map, far_map = load_map(near), load_map(far)
    assert near_map.shape == (24, 36)
    assert np.allclose(near_map + far_map, 1.0, atol=1.5 / 255)


def test_detail_min_above_max_is_refused_with_a_pointer_to_reverse():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8))
    with pytest.raises(DiffdiffError, match="--reverse"):
        detail_map(image, low=0.9, high=0.1)
