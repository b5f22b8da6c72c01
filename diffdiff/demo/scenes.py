"""Procedural landscapes with captions and region masks: the demo model's training data and test scenes.

A scene is drawn from a few attributes — time of day (day, sunset, night), ground (grass, sand, snow),
hills, a lake, a house with a coloured roof, trees, stars, sun or moon — at any size, from a seed, with
numpy and OpenCV only (the same seed and size give the same bytes). `caption` describes a random subset of
the attributes in words ("a red house by a lake at sunset", "snowy hills at night"); the masks name the
pixels of each region (sky, ground, lake, trees, roof, house) so a measurement can look at one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

TIMES = ("day", "sunset", "night")
GROUNDS = ("grass", "sand", "snow")
ROOFS = ("red", "blue", "green")

# sky colour at the top and at the horizon, per time of day (RGB)
SKY_COLOURS = {
    "day": ((40, 95, 185), (175, 210, 240)),
    "sunset": ((60, 50, 120), (250, 150, 60)),
    "night": ((4, 6, 22), (22, 30, 62)),
}
GROUND_COLOURS = {"grass": (70, 135, 50), "sand": (215, 190, 125), "snow": (238, 242, 248)}
ROOF_COLOURS = {"red": (190, 35, 30), "blue": (40, 70, 175), "green": (40, 125, 55)}
# ground and objects are lit by the sky: a multiplier per channel
LIGHT = {"day": (1.0, 1.0, 1.0), "sunset": (1.0, 0.78, 0.6), "night": (0.22, 0.25, 0.38)}
WALL_COLOURS = ((225, 215, 190), (170, 120, 80), (235, 235, 235))


@dataclass(frozen=True)
class Attributes:
    """What a scene shows; `caption` turns it into words."""

    time: str = "day"
    ground: str = "grass"
    hills: bool = True
    lake: bool = False
    roof: str | None = None  # colour of the house's roof, None for no house
    trees: int = 0
    stars: bool = False  # night only
    orb: bool = True  # the sun by day or at sunset, the moon at night
    light: str | None = None  # the time of day that lights the land, when it is not `time` (as after an edit)


@dataclass
class Scene:
    """uint8 RGB pixels (H, W, 3), the attributes drawn and boolean region masks (H, W)."""

    pixels: np.ndarray
    attributes: Attributes
    masks: dict[str, np.ndarray] = field(default_factory=dict)


def random_attributes(rng: np.random.Generator) -> Attributes:
    time = TIMES[rng.integers(len(TIMES))]
    return Attributes(
        time=time,
        ground=GROUNDS[rng.integers(len(GROUNDS))],
        hills=bool(rng.random() < 0.6),
        lake=bool(rng.random() < 0.4),
        roof=ROOFS[rng.integers(len(ROOFS))] if rng.random() < 0.5 else None,
        trees=int(rng.integers(0, 4)) if rng.random() < 0.6 else 0,
        stars=time == "night" and bool(rng.random() < 0.7),
        orb=bool(rng.random() < 0.7),
        light=_other_light(time, rng),
    )


def _other_light(time: str, rng: np.random.Generator) -> str | None:
    """A quarter of the scenes light the land for another time of day than the sky's, so the model learns
    that a sky may change while the land stays as it is (what an edit with a sky map asks of it)."""
    if rng.random() >= 0.25:
        return None
    others = [other for other in TIMES if other != time]
    return others[rng.integers(len(others))]


def _sky_phrase(a: Attributes) -> str:
    if a.time == "night":
        if a.stars:
            return "a night sky with stars"
        return "a moonlit night sky" if a.orb else "a dark night sky"
    if a.time == "sunset":
        return "a sunset sky"
    return "a blue sky with the sun" if a.orb else "a clear blue sky"


def _ground_phrase(a: Attributes) -> str:
    shape = "hills" if a.hills else "a field"
    return {"grass": f"green {shape}" if a.hills else "a grassy field",
            "sand": "sand dunes" if a.hills else "a sandy beach",
            "snow": "snowy hills" if a.hills else "a snowy field"}[a.ground]


def _time_phrase(a: Attributes) -> str:
    return {"day": "on a sunny day", "sunset": "at sunset", "night": "at night"}[a.time]


def caption(a: Attributes, rng: np.random.Generator | None = None, objects: bool = True) -> str:
    """Words for `a`; with `rng`, a random subset of its attributes (the full caption without). `objects`
    False leaves out the house, lake and trees (for a crop that may not show them)."""
    keep = (lambda p: rng.random() < p) if rng is not None else (lambda p: True)
    parts = []
    if objects and a.roof and keep(0.85):
        parts.append(f"a {a.roof} house")
    if objects and a.lake and keep(0.7):
        parts.append("by a lake" if parts else "a lake")
    if objects and a.trees and keep(0.6):
        parts.append("with trees" if parts else "trees")
    if keep(0.7):
        parts.append(("in " if parts else "") + _ground_phrase(a))
    sky = keep(0.5) or a.light is not None  # "at night" would not say which part is dark
    if sky or not parts:
        parts.append(("under " if parts else "") + _sky_phrase(a))
    elif keep(0.8):
        parts.append(_time_phrase(a))
    return " ".join(parts)


def _smooth(rng: np.random.Generator, cells: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Smooth noise in about [-1, 1]: a coarse random grid (rows, cols) resized to size (h, w) bicubically."""
    coarse = rng.uniform(-1.0, 1.0, cells).astype(np.float32)
    return cv2.resize(coarse, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def _lit(colour, time: str, scale: float = 1.0) -> np.ndarray:
    return np.asarray(colour, np.float32) * np.asarray(LIGHT[time], np.float32) * scale


def render(a: Attributes, size: int | tuple[int, int], seed: int) -> Scene:
    """Draw `a` at `size` (side, or (height, width)) from `seed`."""
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    s = min(h, w)
    rows = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]

    horizon_mean = h * rng.uniform(0.45, 0.65)
    top, low = (np.asarray(c, np.float32) for c in SKY_COLOURS[a.time])
    land = a.light or a.time
    horizon_frac = horizon_mean / h
    sky = top + (low - top) * np.clip(rows / horizon_frac, 0, 1) ** 1.3
    pixels = np.broadcast_to(sky, (h, w, 3)).copy()
    pixels += 4.0 * _smooth(rng, (3, 4), (h, w))[..., None]  # faint haze

    if a.stars:
        count = int(rng.integers(40, 90) * h * w / 256**2)
        ys, xs = rng.integers(0, int(horizon_mean), count), rng.integers(0, w, count)
        bright = rng.uniform(150, 255, count)[:, None]
        pixels[ys, xs] = np.maximum(pixels[ys, xs], bright)
    if a.orb:
        radius = s * rng.uniform(0.05, 0.08)
        cx = w * rng.uniform(0.15, 0.85)
        cy = horizon_mean * (rng.uniform(0.7, 0.9) if a.time == "sunset" else rng.uniform(0.2, 0.5))
        colour = {"day": (255, 240, 170), "sunset": (255, 200, 90), "night": (230, 230, 215)}[a.time]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        dist = np.hypot(yy - cy, xx - cx)
        if a.time != "night":  # a glow around the sun
            glow = np.exp(-np.maximum(dist - radius, 0) / (radius * 1.5))[..., None] * 0.35
            pixels = pixels * (1 - glow) + np.asarray(colour, np.float32) * glow
        disc = np.clip(radius + 0.5 - dist, 0, 1)[..., None]
        pixels = pixels * (1 - disc) + np.asarray(colour, np.float32) * disc

    amplitude = s * (0.09 if a.hills else 0.015)
    xs = np.arange(w)
    horizon = horizon_mean + amplitude * _smooth(rng, (1, 4 if a.hills else 3), (1, w))[0]
    y = np.arange(h, dtype=np.float32)[:, None]
    if a.hills:  # a farther, paler ridge behind
        far = horizon - s * rng.uniform(0.04, 0.08) + 0.6 * amplitude * _smooth(rng, (1, 6), (1, w))[0]
        far_mask = np.clip(y - far[None, :] + 0.5, 0, 1)[..., None]
        far_colour = 0.55 * _lit(GROUND_COLOURS[a.ground], land) + 0.45 * low
        pixels = pixels * (1 - far_mask) + far_colour * far_mask
    ground = np.clip(y - horizon[None, :] + 0.5, 0, 1)
    depth = np.clip((y - horizon[None, :]) / (h - horizon_mean + 1), 0, 1)[..., None]
    base = _lit(GROUND_COLOURS[a.ground], land)
    texture = (_smooth(rng, (h // 4 + 1, w // 4 + 1), (h, w)) * 0.6 + _smooth(rng, (8, 8), (h, w)) * 0.4)
    strength = {"grass": 22.0, "sand": 12.0, "snow": 6.0}[a.ground] * (0.35 if land == "night" else 1.0)
    ground_colour = base * (0.85 + 0.25 * depth) + strength * texture[..., None]
    pixels = pixels * (1 - ground[..., None]) + ground_colour * ground[..., None]
    masks = {"sky": ground < 0.5, "ground": ground >= 0.5}

    canvas = np.clip(pixels, 0, 255).astype(np.uint8)
    region = np.zeros((h, w), np.uint8)
    if a.lake:
        cx = int(w * rng.uniform(0.2, 0.8))
        cy = int(horizon_mean + (h - horizon_mean) * rng.uniform(0.45, 0.7))
        axes = (int(w * rng.uniform(0.15, 0.3)), int((h - horizon_mean) * rng.uniform(0.12, 0.22)))
        water = tuple(int(v) for v in np.clip(0.6 * low + 0.4 * _lit((50, 90, 150), land), 0, 255))
        cv2.ellipse(canvas, (cx, cy), axes, 0, 0, 360, water, -1, cv2.LINE_AA)
        cv2.ellipse(region, (cx, cy), axes, 0, 0, 360, 1, -1)
        masks["lake"] = region.astype(bool)
    trees = np.zeros((h, w), np.uint8)
    for _ in range(a.trees):
        tx = int(w * rng.uniform(0.05, 0.95))
        base_y = int(np.interp(tx, xs, horizon) + (h - horizon_mean) * rng.uniform(0.05, 0.3))
        crown = max(3, int(s * rng.uniform(0.05, 0.08)))
        trunk = tuple(int(v) for v in _lit((90, 60, 30), land))
        leaves = tuple(int(v) for v in _lit((35, 95, 40), land))
        trunk_box = (tx - max(1, crown // 5), base_y - 2 * crown), (tx + max(1, crown // 5), base_y)
        cv2.rectangle(canvas, *trunk_box, trunk, -1)
        cv2.circle(canvas, (tx, base_y - 2 * crown), crown, leaves, -1, cv2.LINE_AA)
        cv2.rectangle(trees, *trunk_box, 1, -1)
        cv2.circle(trees, (tx, base_y - 2 * crown), crown + 1, 1, -1)
    if a.trees:
        masks["trees"] = trees.astype(bool)
    if a.roof:
        canvas, house, roof = _house(canvas, a, rng, horizon, xs, horizon_mean, s)
        masks["house"], masks["roof"] = house, roof
    return Scene(canvas, a, masks)


def _house(canvas: np.ndarray, a: Attributes, rng, horizon, xs, horizon_mean: float, s: int):
    h, w = canvas.shape[:2]
    land = a.light or a.time
    width = int(s * rng.uniform(0.18, 0.26))
    height = int(width * rng.uniform(0.6, 0.8))
    x0 = int(w * rng.uniform(0.1, 0.9) - width / 2)
    ground_y = int(np.interp(x0 + width / 2, xs, horizon) + (h - horizon_mean) * rng.uniform(0.1, 0.25))
    wall = tuple(int(v) for v in _lit(WALL_COLOURS[rng.integers(len(WALL_COLOURS))], land))
    roof_colour = tuple(int(v) for v in _lit(ROOF_COLOURS[a.roof], land, 1.0 if land != "night" else 1.6))
    top = ground_y - height
    peak = top - int(width * rng.uniform(0.35, 0.5))
    eave = width // 10
    roof_points = np.array([[x0 - eave, top], [x0 + width // 2, peak], [x0 + width + eave, top]])
    house = np.zeros((h, w), np.uint8)
    roof = np.zeros((h, w), np.uint8)
    cv2.rectangle(canvas, (x0, top), (x0 + width, ground_y), wall, -1)
    cv2.rectangle(house, (x0, top), (x0 + width, ground_y), 1, -1)
    cv2.fillPoly(canvas, [roof_points], roof_colour, cv2.LINE_AA)
    cv2.fillPoly(roof, [roof_points], 1)
    door_w = max(2, width // 6)
    cv2.rectangle(canvas, (x0 + width // 5, ground_y - height // 2), (x0 + width // 5 + door_w, ground_y),
                  tuple(int(v) for v in _lit((80, 50, 30), land)), -1)
    window = (255, 215, 110) if land == "night" else tuple(int(v) for v in _lit((120, 160, 200), land))
    wx = x0 + width * 3 // 5
    wy = top + height // 4
    cv2.rectangle(canvas, (wx, wy), (wx + width // 5, wy + width // 5), window, -1)
    return canvas, (house | roof).astype(bool), roof.astype(bool)


def land(masks: dict[str, np.ndarray]) -> np.ndarray:
    """The ground and what stands on it (house, trees): what an edit of the sky keeps."""
    kept = masks["ground"].copy()
    for name in ("house", "trees"):
        if name in masks:
            kept |= masks[name]
    return kept


def random_scene(seed: int, size: int | tuple[int, int]) -> tuple[Scene, str]:
    """A scene with random attributes and a random caption of it, both from `seed`."""
    rng = np.random.default_rng([seed, 1])
    attributes = random_attributes(rng)
    return render(attributes, size, seed), caption(attributes, rng)


DEMO_ATTRIBUTES = Attributes(time="day", ground="grass", hills=True, lake=True, roof="red", trees=2, orb=True)
DEMO_SEED = 7
