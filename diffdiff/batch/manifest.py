"""The jobs of a batch, checked up front: a JSON Lines manifest (one edit per line) or two folders matched by
file stem (`--images DIR --maps DIR`). Every bad line is reported with its line number (or file name) and
the good ones still run; lines that are the same job (same content key) run once."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DiffdiffError
from ..imageio import check_aspect, header_size
from ..request import checks
from ..request.inputs import check_size
from .jobs import Job, canonical_options, content_key, derived_output
from .recipes import check_recipe, make_map

JOB_FIELDS = ("image", "map", "prompt", "negative", "output", "model")  # a line's other keys are options
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

EXAMPLE = """\
{"image": "photos/cat.jpg", "map": "masks/cat.png", "prompt": "a cat in a snowy garden"}
{"image": "photos/dog.jpg", "map": 0.4, "prompt": "a watercolour painting", "steps": 30, "seed": 7}
{"image": "photos/house.png", "map": [{"op": "linear", "angle": 90}, {"op": "levels", "black": 0.3}], \
"prompt": "a night sky with stars", "negative": "blurry", "output": "house-night.png"}
{"image": "photos/street.jpg", "map": {"op": "detail", "scale": 8, "high": 0.6}, "prompt": "a rainy street", \
"sampler": "dpmpp_2m", "scheduler": "karras", "cfg": 6}
"""
EXAMPLE_NOTE = """\
# One JSON object per line; relative paths are read from the manifest's folder.
# image (required); map (required): a map file, a constant 0..1, or a recipe (a step or a list of steps,
#   first linear|radial|fan|detail, then blur|feather|grow|shrink|invert|levels|threshold|clamp);
# prompt (or --prompt for all), negative, model (or --model), output (a .png name; default
#   <image stem>-<key>.png); any option of `diffdiff edit`: sampler, scheduler, steps, cfg, seed, denoise,
#   gate, gate_strength, invert_map, strength_levels, crop, context, fill, fill_threshold, inpaint_mask,
#   tile, overlap, blend, tile_batch, vae_tile, composite, alpha, difference_threshold,
#   difference_contrast, mask_influence, and the prompt options.
"""


@dataclass
class Defaults:
    """What a line may leave out: the batch's prompt, negative prompt, model and edit options, and how a
    model is identified in a job's key (`identify(path) -> str`, e.g. its file hash)."""

    prompt: str | None = None
    negative: str = ""
    model: str | None = None
    options: dict = field(default_factory=dict)
    identify: object = str


@dataclass
class JobList:
    """The checked jobs, one message per bad line, and the lines that repeat an earlier job."""

    jobs: list[Job] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


def _path(value, base: Path, what: str) -> str:
    """An absolute path (relative ones are read from `base`): a Ray worker runs in another folder."""
    if not isinstance(value, str) or not value:
        raise DiffdiffError(f"{what} must be a file path; got {value!r}")
    return str((base / Path(value).expanduser()).absolute())


def _strength(value, base: Path, image_size: tuple[int, int]):
    if isinstance(value, str):
        path = _path(value, base, "map")
        width, height = header_size(path)
        check_aspect(image_size, (height, width))
        return path
    if isinstance(value, (dict, list)):
        steps = check_recipe(value)
        make_map(steps, image_size)  # every keyword's value checked now, not when the job runs
        return steps
    return checks.number(value, "map value", 0.0, 1.0)


def _output(value) -> str:
    if not isinstance(value, str) or Path(value).name != value or not value.lower().endswith(".png") \
            or value.startswith("."):
        raise DiffdiffError(f"output must be a .png file name (no folder, not hidden); got {value!r}")
    return value


def check_entry(entry: dict, where: str, base: Path, defaults: Defaults) -> Job:
    """One job from a manifest entry (or a folder pair); raises the first problem as one line."""
    if not isinstance(entry, dict):
        raise DiffdiffError(f"a line must be a JSON object; got {type(entry).__name__}")
    if "image" not in entry or "map" not in entry:
        raise DiffdiffError("a job needs an image and a map")
    image = _path(entry["image"], base, "image")
    size = header_size(image)
    check_size(*size)
    strength = _strength(entry["map"], base, size)
    prompt = entry.get("prompt", defaults.prompt)
    if prompt is None:
        raise DiffdiffError("no prompt: give one in the line or --prompt for all")
    prompt = checks.text(prompt, "prompt")
    negative = checks.text(entry.get("negative", defaults.negative), "negative prompt")
    model = entry.get("model", defaults.model)
    if model is None:
        raise DiffdiffError("no model: give one in the line or --model for all")
    model = _path(model, base if "model" in entry else Path("."), "model")
    if not Path(model).exists():
        raise DiffdiffError(f"model {model} not found")
    line_options = {k: v for k, v in entry.items() if k not in JOB_FIELDS}
    options = canonical_options({**defaults.options, **line_options})
    key = content_key(image, strength, prompt, negative, options, defaults.identify(model))
    output = _output(entry["output"]) if "output" in entry else derived_output(image, key)
    return Job(where, image, strength, prompt, negative, options, model, size, output, key)


def _add(found: JobList, job: Job, seen_keys: dict, seen_outputs: dict) -> None:
    if job.key in seen_keys:
        found.duplicates.append(f"{job.where}: the same job as {seen_keys[job.key]}; it runs once")
    elif job.output in seen_outputs:
        found.errors.append(f"{job.where}: output {job.output} is also {seen_outputs[job.output]}'s")
    else:
        seen_keys[job.key] = seen_outputs[job.output] = job.where
        found.jobs.append(job)


def read_manifest(path: str | Path, defaults: Defaults) -> JobList:
    """The jobs of a JSON Lines manifest (blank lines and lines starting with # are skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DiffdiffError(f"cannot read manifest {path}: {getattr(exc, 'strerror', None) or exc}") from None
    found, keys, outputs = JobList(), {}, {}
    for number, text in enumerate(lines, 1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        where = f"line {number}"
        try:
            entry = json.loads(text)
        except json.JSONDecodeError as exc:
            found.errors.append(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        try:
            _add(found, check_entry(entry, where, path.parent, defaults), keys, outputs)
        except DiffdiffError as exc:
            found.errors.append(f"{where}: {exc}")
    return found


def pair_folders(images: str | Path, maps: str | Path, defaults: Defaults) -> JobList:
    """One job per image in `images` whose stem has a map in `maps` (any image type); unmatched files are
    errors by name."""
    folders = {}
    for name, folder in (("--images", Path(images)), ("--maps", Path(maps))):
        if not folder.is_dir():
            raise DiffdiffError(f"{name} {folder} is not a folder")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        by_stem: dict[str, Path] = {}
        for file in files:
            if file.stem in by_stem:
                raise DiffdiffError(f"{name} {folder} holds both {by_stem[file.stem].name} and {file.name}")
            by_stem[file.stem] = file
        folders[name] = by_stem
    image_files, map_files = folders["--images"], folders["--maps"]
    found, keys, outputs = JobList(), {}, {}
    for stem, image in image_files.items():
        if stem not in map_files:
            found.errors.append(f"{image.name}: no map named {stem}.* in {maps}")
            continue
        try:
            entry = {"image": str(image), "map": str(map_files[stem])}
            _add(found, check_entry(entry, image.name, Path("."), defaults), keys, outputs)
        except DiffdiffError as exc:
            found.errors.append(f"{image.name}: {exc}")
    found.errors += [f"{m.name}: no image named {s}.* in {images}" for s, m in map_files.items()
                     if s not in image_files]
    return found
