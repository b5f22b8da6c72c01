"""What people send the page, checked before anything uses it: a readable image of a sane size, or one
clear line saying what is wrong (never a traceback, and the server goes on)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ..errors import DiffdiffError, one_line
from ..imageio import load_image

PAGE_MAX_PIXELS = 36_000_000  # a 6000×6000 picture; the browser holds the map at full size
PAGE_MAX_FILE_SIZE = "100mb"  # Gradio refuses bigger uploads before they reach us


class UploadError(DiffdiffError):
    """An upload the page cannot use; the message is shown in the page."""


def read_upload(path, *, max_pixels: int = PAGE_MAX_PIXELS, what: str = "image") -> Image.Image:
    """The uploaded file as 8-bit RGB (EXIF orientation applied); UploadError naming the problem when it
    is missing, not an image, truncated, or has more than `max_pixels` pixels (a decompression bomb
    is refused from its header, before decoding)."""
    if path is None:
        raise UploadError(f"no {what} was uploaded")
    name = Path(str(path)).name
    try:
        return load_image(path, max_pixels=max_pixels)
    except (DiffdiffError, OSError, ValueError, Image.DecompressionBombError) as exc:
        reason = one_line(exc).replace(str(path), name)  # the page need not see the server's folders
        raise UploadError(f"cannot use {name!r} as the {what}: {reason}") from None
