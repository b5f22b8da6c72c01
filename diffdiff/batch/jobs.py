"""One batch job: what a manifest line (or an image/map pair) asks for, checked up front, and its content key
— the sha256 of the image's and map's bytes (or the map recipe), the prompts, every request option and the
model's identity — which names its output and identifies it in the ledger. The same inputs and settings
give the same key, so a job done once is never done again."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import DiffdiffError
from ..models.loaded import file_sha256
from ..request import EditRequest, StrengthMap, read_picture
from ..request.parts import keywords_of
from ..request.prompting import Prompting
from ..request.requests import split_keywords
from .recipes import make_map, recipe_text

NAME_KEY_DIGITS = 12  # hex digits of the key in a derived output name


@dataclass(frozen=True)
class Job:
    """A checked job. `where` says where it came from ("line 3", "cat.jpg"); `strength` is a map file path,
    a constant in [0, 1] or a recipe; `options` are the request's keywords, already valid; `model` names the
    model's file or folder; `size` is the image's (width, height); `output` is a file name in the output
    folder; `key` the content key."""

    where: str
    image: str
    strength: str | float | list
    prompt: str
    negative: str
    options: dict
    model: str
    size: tuple[int, int]
    output: str
    key: str

    def to_dict(self) -> dict:
        """Plain values (for a worker in another process)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Job:
        values = dict(values)
        values["size"] = tuple(values["size"])
        return cls(**values)

    def request(self) -> EditRequest:
        """The edit request (reads the image, and the map or runs the recipe, now)."""
        if isinstance(self.strength, list):
            picture = read_picture(self.image)
            values = make_map(self.strength, picture.size, picture.pixels)
            request = EditRequest.build(picture, values, self.prompt, negative=self.negative, **self.options)
            described = request.strength.description.replace("array", "recipe", 1)
            return dataclasses.replace(request, strength=StrengthMap(request.strength.values, described))
        return EditRequest.build(self.image, self.strength, self.prompt, negative=self.negative,
                                 **self.options)


def canonical_options(options: dict) -> dict:
    """Every option of an edit with its checked value (defaults filled in), so equal settings key equally;
    an invalid or unknown option raises its one-line error."""
    parts = split_keywords(options, *EditRequest.OPTION_GROUPS)
    values = {}
    for part in parts:
        values.update(keywords_of(part))
    if values["batch"] != 1:
        raise DiffdiffError("batch jobs make one image each; for variations repeat the line with other seeds")
    del values["batch"]
    return values


def content_key(image: str, strength, prompt: str, negative: str, options: dict, model_identity: str) -> str:
    """The job's sha256 over its inputs' bytes (LoRA and embedding files by their hashes too) and its
    settings; a LoRA or embedding the prompts name but cannot be found raises its one-line error."""
    resources = Prompting.from_keywords(dict(options)).record(prompt, negative)
    if isinstance(strength, list):
        map_identity = "recipe:" + recipe_text(strength)
    elif isinstance(strength, str):
        map_identity = "file:" + file_sha256(strength)
    else:
        map_identity = f"constant:{float(strength)!r}"
    document = {"image": file_sha256(image), "map": map_identity, "prompt": prompt, "negative": negative,
                "options": options, "model": model_identity,
                "resources": {"loras": resources["loras"], "embeddings": resources["embeddings"]}}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def derived_output(image: str, key: str) -> str:
    """The output name of a job that names none: the image's stem and the key's first digits."""
    return f"{Path(image).stem}-{key[:NAME_KEY_DIGITS]}.png"
