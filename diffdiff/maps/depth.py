"""Depth maps: strength from a monocular depth model (Depth Anything V2 or any transformers depth estimator).

Near = change (default) or far = change. The model is loaded with transformers' AutoModelForDepthEstimation
and its image processor from a local folder or an already-cached hub id (never downloaded here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from diffdiff.errors import DiffdiffError
from diffdiff.models.hub import is_local_path

from .io import open_image

EXAMPLE_ID = "depth-anything/Depth-Anything-V2-Small-hf"

@dataclass
class DepthEstimator:
    """A loaded depth model and the image processor that prepares its input."""

    model: torch.nn.Module
    processor: object

    @property
    def outputs_disparity(self) -> bool:
        """True when larger outputs mean nearer (relative/inverse depth, as Depth Anything and MiDaS)."""
        kind = getattr(self.model.config, "depth_estimation_type", "relative")
        return kind != "metric"


def load_depth_estimator(source: str | os.PathLike, device: str = "cpu") -> DepthEstimator:
    """Load a depth model + processor from a folder or a hub id already in the local cache (no download)."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    source = str(source)
    path = Path(source).expanduser()
    hub_id = not path.exists() and not is_local_path(source)
    if not hub_id:
        _check_folder(path, source)
    try:
        model = AutoModelForDepthEstimation.from_pretrained(source, local_files_only=True)
        processor = AutoImageProcessor.from_pretrained(source, local_files_only=True)
    except PermissionError as exc:
        raise DiffdiffError(f"cannot read {exc.filename or source}: permission denied") from None
    except (OSError, ValueError, KeyError) as exc:
        if hub_id:  # offline only: the library's "couldn't connect" means "not cached"
            raise DiffdiffError(
                f"depth model {source} is neither a local folder nor in the local Hugging Face cache;"
                f" fetch it first with `huggingface-cli download {source}`"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DiffdiffError(f"cannot load a depth model from {source}: {first}") from None
    return DepthEstimator(model.to(device).eval(), processor)


def _check_folder(path: Path, source: str) -> None:
    """A local depth-model source must be a readable folder; say which of those it is not."""
    if not path.exists():
        hint = "" if "/" in source else " (a cached hub model is named owner/name, e.g. " + EXAMPLE_ID + ")"
        raise DiffdiffError(f"depth model folder {source} does not exist{hint}")
    if not path.is_dir():
        raise DiffdiffError(f"depth model {source} is a file, not a model folder (config.json + weights)")
    if not os.access(path, os.R_OK | os.X_OK):
        raise DiffdiffError(f"cannot read {source}: permission denied")


def predict_depth(image: Image.Image, estimator: DepthEstimator) -> np.ndarray:
    """The model's raw output resized (bicubic) to the image's size, as float64 (H, W)."""
    rgb = image.convert("RGB")
    inputs = estimator.processor(images=rgb, return_tensors="pt")
    device = next(estimator.model.parameters()).device
    inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    with torch.no_grad():
        predicted = estimator.model(**inputs).predicted_depth
    predicted = predicted.reshape(1, 1, *predicted.shape[-2:]).float()
    resized = F.interpolate(predicted, size=(rgb.height, rgb.width), mode="bicubic", align_corners=False)
    return resized[0, 0].double().cpu().numpy()


def depth_map(image, estimator: DepthEstimator | str | os.PathLike, far: bool = False) -> np.ndarray:
    """A map in [0, 1] at the image's size from a depth model: nearest = 1 (change), farthest = 0.

    `far=True` reverses it (the background changes, the foreground is kept). `estimator` is a loaded
    `DepthEstimator` or a folder / cached hub id to load one from. A flat prediction gives 0.5 everywhere.
    """
    if isinstance(image, (str, os.PathLike)):
        image = open_image(image)
    if not isinstance(estimator, DepthEstimator):
        estimator = load_depth_estimator(estimator)
    raw = predict_depth(image, estimator)
    if not np.isfinite(raw).all():
        raise DiffdiffError("the depth model produced NaN or infinite values")
    nearness = raw if estimator.outputs_disparity else -raw
    low, high = float(nearness.min()), float(nearness.max())
    if high - low < 1e-12:
        return np.full(raw.shape, 0.5, dtype=np.float32)
    values = (nearness - low) / (high - low)
    if far:
        values = 1.0 - values
    return np.clip(values, 0.0, 1.0).astype(np.float32)
