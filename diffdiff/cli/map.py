"""The `diffdiff map` verb: make, edit and preview strength maps from the command line (white = change).

Each operation writes one grayscale map (8-bit, or 16-bit with --bits 16) to -o OUT; `preview` writes the
image with the map painted over it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from diffdiff import maps
from diffdiff.atomic import CLI_OVERWRITE_HINT, check_writable
from diffdiff.errors import DiffdiffError
from diffdiff.imageio import MAX_PIXELS
from diffdiff.maps.io import SIXTEEN_BIT_SUFFIXES

SIZE_PATTERN = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """"WIDTHxHEIGHT" → (height, width)."""
    match = SIZE_PATTERN.match(text)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise DiffdiffError(f"size {text!r} must look like WIDTHxHEIGHT, e.g. 1024x768")
    if int(match.group(1)) * int(match.group(2)) > MAX_PIXELS:  # was a MemoryError deep in numpy
        raise DiffdiffError(f"size {text!r} exceeds the {MAX_PIXELS:,}-pixel limit")
    return int(match.group(2)), int(match.group(1))


def parse_pair(text: str, name: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        x, y = (float(p) for p in parts)
    except ValueError:
        raise DiffdiffError(f"{name} {text!r} must be two numbers X,Y, e.g. 0.5,0.5") from None
    return x, y


def target_size(args) -> tuple[int, int]:
    """(height, width) from --size or from the image given by --like."""
    if args.size:
        return parse_size(args.size)
    if args.like:
        image = maps.open_image(args.like)
        return image.height, image.width
    raise DiffdiffError("give the map's size with --size WIDTHxHEIGHT or --like IMAGE")


# ---------------------------------------------------------------- operations: (help, add_arguments, make)


def _add_size(p):
    p.add_argument("--size", metavar="WxH", help="map size in pixels, e.g. 1024x768")
    p.add_argument("--like", metavar="IMAGE", help="take the size from this image")


def _add_map(p, name="MAP"):
    p.add_argument("map", metavar=name, help="input map (any image; its luminance is used)")


def _add_from_image(p):
    p.add_argument("image", metavar="IMAGE", help="any image file")
    p.add_argument("--source", choices=maps.SOURCES, default="luminance", help="what to read")
    p.add_argument("--comfy-mask", action="store_true",
                   help="with --source alpha: use 1 - alpha (ComfyUI's mask: transparent = change)")


def _add_solid(p):
    _add_size(p)
    p.add_argument("--value", type=float, required=True, help="strength everywhere, 0..1")


def _add_linear(p):
    _add_size(p)
    p.add_argument("--angle", type=float, default=0.0,
                   help="degrees, counter-clockwise: 0 = left→right, 90 = bottom→top (default 0)")
    p.add_argument("--start", type=float, default=0.0, help="strength where the ramp starts (default 0)")
    p.add_argument("--end", type=float, default=1.0, help="strength where it ends (default 1)")
    p.add_argument("--gamma", type=float, default=1.0, help="ramp shape t**gamma (default 1 = straight)")


def _add_radial(p):
    _add_size(p)
    p.add_argument("--centre", "--center", default="0.5,0.5", metavar="X,Y",
                   help="centre as fractions of width,height (default 0.5,0.5)")
    p.add_argument("--radius", type=float, help="radius in pixels (default half the shorter side)")
    p.add_argument("--inner", type=float, default=1.0, help="strength at the centre (default 1)")
    p.add_argument("--outer", type=float, default=0.0, help="strength at the radius and beyond (default 0)")
    p.add_argument("--gamma", type=float, default=1.0, help="ramp shape (default 1)")


def _add_regions(p):
    p.add_argument("image", metavar="IMAGE", help="colour-coded (or grayscale label) image")
    p.add_argument("--table", metavar="JSON|FILE",
                   help='strength per colour/label: JSON \'{"#ff0000": 0.3, "#ffffff": 1}\' or a .json file')
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="one region's strength, e.g. '#ff0000=0.3' or '2=0.5' (repeatable)")
    p.add_argument("--default", type=float, help="strength of unlisted regions (else an error)")
    p.add_argument("--nearest", action="store_true",
                   help="unlisted colours take the closest listed colour's strength (anti-aliased edges)")


def _add_fan(p):
    _add_size(p)
    p.add_argument("--bands", type=int, default=5, help="number of stripes (default 5)")
    p.add_argument("--start", type=float, default=0.0, help="first stripe's strength (default 0)")
    p.add_argument("--end", type=float, default=1.0, help="last stripe's strength (default 1)")
    p.add_argument("--horizontal", action="store_true", help="stripes stacked top→bottom, not left→right")


def _add_levels(p):
    _add_map(p)
    p.add_argument("--black", type=float, default=0.0, help="input black point (default 0)")
    p.add_argument("--white", type=float, default=1.0, help="input white point (default 1)")
    p.add_argument("--gamma", type=float, default=1.0, help=">1 lifts mid-tones (default 1)")


def _add_brightness_contrast(p):
    _add_map(p)
    p.add_argument("--brightness", type=float, default=1.0, help="factor, 1 = unchanged")
    p.add_argument("--contrast", type=float, default=1.0, help="factor around the mean, 1 = unchanged")


def _add_threshold(p):
    _add_map(p)
    p.add_argument("--level", type=float, default=0.5, help="values >= level become 1, others 0")


def _add_blur(p):
    _add_map(p)
    p.add_argument("--sigma", type=float, required=True, help="Gaussian sigma in pixels")


def _add_feather(p):
    _add_map(p)
    p.add_argument("--radius", type=int, required=True, help="grow by this many pixels, then soften outward")
    p.add_argument("--sigma", type=float, help="blur sigma in pixels (default radius/3)")


def _add_pixels(p):
    _add_map(p)
    p.add_argument("--pixels", type=int, required=True, help="radius of the disk in pixels")


def _add_combine(p):
    _add_map(p, "MAP_A")
    p.add_argument("second", metavar="MAP_B", help="second map, same size")
    p.add_argument("--mode", choices=maps.COMBINE_MODES, required=True,
                   help="max | min | multiply | add | subtract (A - B) | screen")


def _add_clamp(p):
    _add_map(p)
    p.add_argument("--min", type=float, default=0.0, dest="low", help="lowest value (default 0)")
    p.add_argument("--max", type=float, default=1.0, dest="high", help="highest value (default 1)")


def _add_resize(p):
    _add_map(p)
    _add_size(p)
    p.add_argument("--filter", choices=maps.ENLARGE_FILTERS, default="bicubic",
                   help="filter when enlarging (shrinking always averages areas)")


def _add_depth(p):
    p.add_argument("image", metavar="IMAGE", help="the photo to estimate depth for")
    p.add_argument("--model", required=True, metavar="PATH|ID",
                   help="depth model folder (e.g. Depth Anything V2) or a hub id already in the local cache")
    p.add_argument("--far", action="store_true", help="far = change, near = keep (default: near = change)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | mps (default cpu)")


def _add_detail(p):
    p.add_argument("image", metavar="IMAGE", help="the image whose detail drives the map")
    p.add_argument("--scale", type=float, default=8.0, help="neighbourhood sigma in pixels (default 8)")
    p.add_argument("--measure", choices=maps.DETAIL_MEASURES, default="variance", help="default variance")
    p.add_argument("--min", type=float, default=0.0, dest="low", help="strength of flat areas (default 0)")
    p.add_argument("--max", type=float, default=1.0, dest="high", help="strength of the busiest areas")
    p.add_argument("--reverse", action="store_true", help="flat areas high, detailed areas low")


def _regions(args):
    entries = ([args.table] if args.table else []) + list(args.set)
    if not entries:
        raise DiffdiffError("regions needs a table: --table JSON|FILE and/or --set KEY=VALUE")
    table: dict = {}
    for entry in entries:
        table.update(maps.parse_region_table(entry))
    return maps.region_map(args.image, table, default=args.default, nearest=args.nearest)


def _depth(args):
    estimator = maps.load_depth_estimator(args.model, device=args.device)
    return maps.depth_map(args.image, estimator, far=args.far)


OPERATIONS = {
    "from-image": ("a map from an image's luminance, red/green/blue or alpha", _add_from_image,
                   lambda a: maps.load_map(a.image, a.source, alpha_is_mask=a.comfy_mask)),
    "solid": ("one strength everywhere", _add_solid, lambda a: maps.solid(*target_size(a), a.value)),
    "linear": ("a linear gradient at any angle", _add_linear,
               lambda a: maps.linear_gradient(*target_size(a), a.angle, a.start, a.end, a.gamma)),
    "radial": ("a radial gradient", _add_radial,
               lambda a: maps.radial_gradient(*target_size(a), parse_pair(a.centre, "centre"), a.radius,
                                              a.inner, a.outer, a.gamma)),
    "regions": ("one strength per colour/label of a colour-coded image", _add_regions, _regions),
    "fan": ("stripes sweeping strengths from --start to --end (preview many strengths in one run)", _add_fan,
            lambda a: maps.strength_fan(*target_size(a), a.bands, a.start, a.end, not a.horizontal)),
    "invert": ("1 - map (swap keep and change)", _add_map, lambda a: maps.invert(maps.load_map(a.map))),
    "levels": ("black/white points and gamma", _add_levels,
               lambda a: maps.levels(maps.load_map(a.map), a.black, a.white, a.gamma)),
    "brightness-contrast": ("brightness and contrast factors (as the Differential Diffusion playground)",
                            _add_brightness_contrast,
                            lambda a: maps.brightness_contrast(maps.load_map(a.map), a.brightness,
                                                               a.contrast)),
    "threshold": ("hard 0/1 at a level", _add_threshold,
                  lambda a: maps.threshold(maps.load_map(a.map), a.level)),
    "blur": ("Gaussian blur (keeps the mean)", _add_blur, lambda a: maps.blur(maps.load_map(a.map), a.sigma)),
    "feather": ("soften edges outward: the painted area keeps full strength", _add_feather,
                lambda a: maps.feather(maps.load_map(a.map), a.radius, a.sigma)),
    "grow": ("dilate bright areas by N pixels", _add_pixels,
             lambda a: maps.grow(maps.load_map(a.map), a.pixels)),
    "shrink": ("erode bright areas by N pixels", _add_pixels,
               lambda a: maps.shrink(maps.load_map(a.map), a.pixels)),
    "combine": ("merge two maps (max, min, multiply, add, subtract, screen)", _add_combine,
                lambda a: maps.combine(maps.load_map(a.map), maps.load_map(a.second), a.mode)),
    "clamp": ("limit values to [--min, --max]", _add_clamp,
              lambda a: maps.clamp(maps.load_map(a.map), a.low, a.high)),
    "resize": ("resize with proper filtering (area down, bicubic/Lanczos up)", _add_resize,
               lambda a: maps.resize(maps.load_map(a.map), target_size(a), a.filter)),
    "depth": ("near = change (or --far) from a depth model", _add_depth, _depth),
    "detail": ("detailed areas high, flat areas low (or --reverse)", _add_detail,
               lambda a: maps.detail_map(a.image, a.scale, a.low, a.high, a.reverse, a.measure)),
}


def _add_output(p, bits: bool = True) -> None:
    group = p.add_argument_group("output")
    group.add_argument("-o", "--output", required=True, metavar="OUT.png", help="where to write the result")
    group.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    if bits:
        group.add_argument("--bits", type=int, choices=(8, 16), default=8,
                           help="8-bit (default) or 16-bit grayscale (no banding in smooth ramps)")


def run_operation(args) -> int:
    """Make the map for `args.operation`, write it, and say where."""
    check_writable(args.output, args.overwrite, hint=CLI_OVERWRITE_HINT)
    if args.bits == 16 and Path(args.output).suffix.lower() not in SIXTEEN_BIT_SUFFIXES:
        raise DiffdiffError(f"--bits 16 needs a .png or .tif output; got {Path(args.output).name}")
    strength_map = OPERATIONS[args.operation][2](args)
    path = maps.save_map(args.output, strength_map, bits=args.bits, overwrite=args.overwrite)
    print(f"{path}  {strength_map.shape[1]}x{strength_map.shape[0]}  "
          f"min {strength_map.min():.3f}  mean {strength_map.mean():.3f}  max {strength_map.max():.3f}")
    return 0


def run_preview(args) -> int:
    """Paint MAP over IMAGE with a colour ramp and legend; write the picture."""
    check_writable(args.output, args.overwrite, hint=CLI_OVERWRITE_HINT)
    image = maps.open_image(args.image)
    strength_map = maps.load_map(args.map, args.source, alpha_is_mask=args.comfy_mask)
    picture = maps.preview_image(image, strength_map, opacity=args.opacity)
    path = maps.save_image(args.output, picture, overwrite=args.overwrite)
    print(path)
    return 0


def register(subparsers) -> None:
    """Add the `map` verb and one sub-command per operation."""
    names = ", ".join([*OPERATIONS, "preview"])
    parser = subparsers.add_parser(
        "map", help="make, edit and preview strength maps (white = change, black = keep)",
        description=f"Make, edit and preview strength maps. Operations: {names}.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    operations = parser.add_subparsers(dest="operation", metavar="OPERATION", required=True)
    for name, (summary, add_arguments, _) in OPERATIONS.items():
        sub = operations.add_parser(name, help=summary, description=summary)
        add_arguments(sub)
        _add_output(sub)
        sub.set_defaults(func=run_operation)
    preview = operations.add_parser(
        "preview", help="paint a map over its image with a colour ramp and legend",
        description="Paint MAP over IMAGE (blue = keep, red = change) with a legend bar.")
    preview.add_argument("image", metavar="IMAGE", help="the image the map belongs to")
    preview.add_argument("map", metavar="MAP", help="the strength map (resized if only the scale differs)")
    preview.add_argument("--source", choices=maps.SOURCES, default="luminance", help="how to read MAP")
    preview.add_argument("--comfy-mask", action="store_true", help="with --source alpha: use 1 - alpha")
    preview.add_argument("--opacity", type=float, default=0.55, help="strength of the colour overlay (0..1)")
    _add_output(preview, bits=False)
    preview.set_defaults(func=run_preview)
