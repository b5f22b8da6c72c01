"""Training batches for the demo model: scene pools, random crops, and the bundled photos for the VAE.

Everything comes from seeds: a pool of rendered scenes (sizes 128–256 px), crops of them, and crops of the
public-domain / CC0 sample photos that scikit-image ships (`PHOTOS`; `HELD_OUT_PHOTO` is never trained on).
Scene seeds below `HELD_OUT_SEEDS` are for training; measurements use seeds from it upward.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.vae import pixels_to_tensor
from .scenes import Scene, caption, random_attributes, render

# scikit-image sample photos whose notes release them into the public domain or under CC0
PHOTOS = ("astronaut", "coffee", "rocket", "hubble_deep_field")
HELD_OUT_PHOTO = "chelsea"
HELD_OUT_SEEDS = 10_000_000
POOL_SIZES = (128, 160, 192, 256)


def photo(name: str) -> np.ndarray:
    """A scikit-image sample photo as uint8 RGB (H, W, 3); needs scikit-image (the `demo` extra)."""
    try:
        from skimage import data
    except ImportError:  # pragma: no cover - depends on the environment
        raise SystemExit("error: the demo model's photos need scikit-image: pip install 'diffdiff[demo]'") \
            from None
    return np.ascontiguousarray(getattr(data, name)()[..., :3])


def scene_pool(count: int, first_seed: int, sizes=POOL_SIZES, progress=None) -> list[Scene]:
    """`count` random scenes from seeds first_seed…, cycling through `sizes`."""
    scenes = []
    for index in range(count):
        seed = first_seed + index
        rng = np.random.default_rng([seed, 1])
        scenes.append(render(random_attributes(rng), sizes[index % len(sizes)], seed))
        if progress is not None:
            progress.update(1)
    return scenes


def random_crop(pixels: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    h, w = pixels.shape[:2]
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    return pixels[y : y + side, x : x + side]


def to_tensor(batch: list[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W, 3) arrays → float (B, 3, H, W) in [-1, 1], converted as the pipeline converts them."""
    return pixels_to_tensor(np.stack(batch))


class VaeBatches:
    """Random crops of `side` px: scenes from the pool, and with probability `photo_share` a photo crop at a
    random scale (so photo detail shows at several sizes)."""

    def __init__(self, pool: list[Scene], photos: list[np.ndarray], side: int, batch: int, seed: int,
                 photo_share: float = 0.2):
        self.pool, self.photos, self.side, self.batch = pool, photos, side, batch
        self.photo_share = photo_share if photos else 0.0
        self.rng = np.random.default_rng(seed)

    def _photo_crop(self) -> np.ndarray:
        import cv2

        picture = self.photos[self.rng.integers(len(self.photos))]
        scale = self.rng.uniform(0.35, 1.0)
        h, w = picture.shape[:2]
        size = (max(self.side, int(w * scale)), max(self.side, int(h * scale)))
        return random_crop(cv2.resize(picture, size, interpolation=cv2.INTER_AREA), self.side, self.rng)

    def next(self) -> torch.Tensor:
        crops = []
        for _ in range(self.batch):
            if self.rng.random() < self.photo_share:
                crop = self._photo_crop()
            else:
                crop = random_crop(self.pool[self.rng.integers(len(self.pool))].pixels, self.side, self.rng)
            if self.rng.random() < 0.5:
                crop = crop[:, ::-1]
            crops.append(np.ascontiguousarray(crop))
        return to_tensor(crops)


class LatentBatches:
    """Batches of (model-space latents `side`×`side`, captions) from scenes encoded at several sizes.

    `groups`: (latents (N, 4, h, w), scenes, weight) per scene size; a draw picks a group by weight, a scene
    and a random `side`² window of its latents. A window smaller than its scene is captioned without the
    house, lake and trees (it may not show them). Each draw captions a random subset of the attributes, and
    `uncond_share` of the captions are empty (classifier-free guidance)."""

    def __init__(self, groups: list[tuple[torch.Tensor, list[Scene], float]], side: int, batch: int,
                 seed: int, uncond_share: float = 0.1):
        self.groups, self.side, self.batch, self.uncond_share = groups, side, batch, uncond_share
        weights = np.array([weight for _, _, weight in groups], np.float64)
        self.weights = weights / weights.sum()
        self.rng = np.random.default_rng(seed)

    def _draw(self) -> tuple[torch.Tensor, str]:
        latents, scenes, _ = self.groups[self.rng.choice(len(self.groups), p=self.weights)]
        index = int(self.rng.integers(len(scenes)))
        h, w = latents.shape[-2:]
        y, x = self.rng.integers(0, h - self.side + 1), self.rng.integers(0, w - self.side + 1)
        window = latents[index, :, y : y + self.side, x : x + self.side]
        whole = (h, w) == (self.side, self.side)
        if self.rng.random() < self.uncond_share:
            return window, ""
        return window, caption(scenes[index].attributes, self.rng, whole)

    def next(self) -> tuple[torch.Tensor, list[str]]:
        windows, captions = zip(*(self._draw() for _ in range(self.batch)))
        return torch.stack(windows), list(captions)
