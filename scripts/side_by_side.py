"""Put images side by side in one PNG (the demo's input | map | output), each resized to the first's height.

Usage: python scripts/side_by_side.py IMAGE [IMAGE ...] -o OUT.png
"""

from __future__ import annotations

import argparse

from PIL import Image

GAP = 8  # white pixels between the pictures


def side_by_side(paths: list[str]) -> Image.Image:
    pictures = [Image.open(path).convert("RGB") for path in paths]
    height = pictures[0].height
    pictures = [p if p.height == height else p.resize((round(p.width * height / p.height), height))
                for p in pictures]
    sheet = Image.new("RGB", (sum(p.width for p in pictures) + GAP * (len(pictures) - 1), height), "white")
    x = 0
    for picture in pictures:
        sheet.paste(picture, (x, 0))
        x += picture.width + GAP
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    side_by_side(args.images).save(args.output, optimize=True)
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
