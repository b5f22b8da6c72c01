"""The page's HTTP endpoint `/edit` (Gradio's API, so `gradio_client` calls it): an image file, a map
file, the prompts and the same settings as the page, with the page's defaults; returns the PNGs.
Its signature is built from `settings.SETTINGS`, so the endpoint offers exactly what the page does. The
sampler, scheduler, steps and CFG default to None: the chosen model's family defaults."""

from __future__ import annotations

import inspect

from gradio import FileData

FIXED = (("image", FileData, inspect.Parameter.empty), ("strength_map", FileData, inspect.Parameter.empty),
         ("prompt", str, inspect.Parameter.empty), ("negative", str, ""), ("model", str, ""))


def make_api_edit(studio):
    """`edit(image, strength_map, prompt, negative="", model="", <every setting>) -> list of PNG files`."""
    from .settings import FAMILY_SETTINGS, SETTINGS

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [inspect.Parameter(name, kind, default=default, annotation=annotation)
                  for name, annotation, default in FIXED]
    parameters += [inspect.Parameter(s.keyword, kind, default=None, annotation=type(s.default) | None)
                   if s in FAMILY_SETTINGS else
                   inspect.Parameter(s.keyword, kind, default=s.default, annotation=type(s.default))
                   for s in SETTINGS]
    signature = inspect.Signature(parameters, return_annotation=list[FileData])

    def edit(*args, **kwargs):
        from .page import shown

        values = signature.bind(*args, **kwargs)
        values.apply_defaults()
        given = dict(values.arguments)
        settings = {s.keyword: given.pop(s.keyword) for s in SETTINGS}
        settings = {keyword: value for keyword, value in settings.items() if value is not None}
        try:
            outcome = studio.edit_files(_path(given["image"]), _path(given["strength_map"]), given["prompt"],
                                        given["negative"], given["model"], settings)
        except Exception as exc:  # noqa: BLE001 - the caller gets the one line
            raise shown(exc) from None
        return [FileData(path=path) for path in outcome.paths]

    edit.__signature__ = signature
    edit.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": list[FileData]}
    edit.__doc__ = "Edit an image where the strength map says (white = change, black = keep exactly)."
    return edit


def _path(file) -> str | None:
    if file is None:
        return None
    return file.get("path") if isinstance(file, dict) else getattr(file, "path", file)
