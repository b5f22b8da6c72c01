"""Textual-inversion embeddings from a folder: find one by name, read its vectors for an encoder, hash it.

Files are `.safetensors` (pickled `.pt` / `.bin` only with `allow_pickle`) in the layouts the tools write:
A1111's `emb_params` (safetensors) or `string_to_param` (pickle), SDXL's `clip_l` + `clip_g`, diffusers'
single `{token: vector}`. A name is a file stem, matched case-insensitively anywhere under the folder.
"""

from __future__ import annotations

import warnings
from functools import cached_property
from pathlib import Path

import torch

from ..errors import DiffdiffError

SAFE_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pt", ".bin")
ENCODER_KEYS = ("clip_l", "clip_g")  # SDXL embeddings name the vectors of each text encoder
HASH_DIGITS = 12  # A1111's "TI hashes": the first 12 hex digits of the file's sha256


class EmbeddingLibrary:
    """The embeddings under `folder`; `allow_pickle` admits `.pt` / `.bin` files."""

    def __init__(self, folder: str | Path, allow_pickle: bool = False):
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise DiffdiffError(f"embeddings folder {self.folder} not found")
        self.allow_pickle = allow_pickle
        self._vectors: dict[str, dict[str, torch.Tensor]] = {}

    @cached_property
    def files(self) -> dict[str, Path]:
        """{lower-case stem: path} of every embedding file (safetensors first when both exist)."""
        found: dict[str, Path] = {}
        for suffix in SAFE_SUFFIXES + PICKLE_SUFFIXES:
            for path in sorted(self.folder.rglob(f"*{suffix}")):
                found.setdefault(path.stem.lower(), path)
        return found

    @property
    def names(self) -> list[str]:
        """The stems as written on disk (for A1111's bare-name matching)."""
        return [path.stem for path in self.files.values()]

    def path(self, name: str) -> Path:
        """The file of embedding `name` (a stem, with or without its suffix)."""
        stem = name
        for suffix in SAFE_SUFFIXES + PICKLE_SUFFIXES:
            if name.lower().endswith(suffix):
                stem = name[: -len(suffix)]
        path = self.files.get(stem.lower())
        if path is None:
            raise DiffdiffError(f"embedding {name!r} not found in {self.folder}")
        if path.suffix.lower() in PICKLE_SUFFIXES and not self.allow_pickle:
            raise DiffdiffError(f"embedding {path.name} is a pickle, which can run code; convert it to "
                                ".safetensors or pass --allow-pickle if you trust it")
        return path

    def short_hash(self, name: str) -> str:
        """A1111's "TI hashes" value of embedding `name`."""
        from ..models.loaded import file_sha256_once

        return file_sha256_once(self.path(name))[:HASH_DIGITS]

    def vectors(self, name: str, encoder_index: int, width: int) -> torch.Tensor:
        """The (n, width) vectors of `name` for text encoder `encoder_index` (0 = CLIP-L / the only one)."""
        path = self.path(name)
        tensors = self._vectors.get(path.stem.lower())
        if tensors is None:
            tensors = self._vectors[path.stem.lower()] = _read(path)
        key = ENCODER_KEYS[encoder_index] if encoder_index < len(ENCODER_KEYS) else None
        if key in tensors:
            chosen = tensors[key]
        elif encoder_index > 0:
            raise DiffdiffError(f"embedding {path.name} has no {key!r} vectors for this model's second text "
                                f"encoder (it holds {', '.join(sorted(tensors))}); an SD1/SD2 embedding?")
        else:
            chosen = next(iter(tensors.values()))
        chosen = chosen.reshape(-1, chosen.shape[-1]) if chosen.ndim else chosen.reshape(1, 1)
        if chosen.shape[-1] != width:
            raise DiffdiffError(f"embedding {path.name} has {chosen.shape[-1]}-wide vectors; this model's "
                                f"text encoder takes {width} (an embedding for another model family?)")
        if not torch.isfinite(chosen).all():
            raise DiffdiffError(f"embedding {path.name} holds NaN or infinite values")
        return chosen.float()


def _read(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors by key (A1111's pickled `string_to_param` unwrapped)."""
    if path.suffix.lower() in SAFE_SUFFIXES:
        from ..models.single_file import read_checkpoint

        tensors, _ = read_checkpoint(path)
    else:
        from ..models.pickled import describe_failure

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loaded = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as error:
            raise DiffdiffError(describe_failure(path, error)) from None
        if isinstance(loaded, dict) and isinstance(loaded.get("string_to_param"), dict):
            loaded = loaded["string_to_param"]
        tensors = {str(k): v for k, v in loaded.items() if isinstance(v, torch.Tensor)} \
            if isinstance(loaded, dict) else {}
    if not tensors:
        raise DiffdiffError(f"{path.name} holds no embedding vectors")
    return tensors
