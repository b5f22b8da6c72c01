"""The models the page offers: the one it started with and the checkpoints in its models folder, by name
(the page never takes a path), each loaded on first use and kept while it is the one in use."""

from __future__ import annotations

import threading
from pathlib import Path

from ..errors import DiffdiffError

FAMILY_OPTIONS = ("family", "prediction", "allow_pickle")  # the load options that decide a family


def _is_model(path: Path) -> bool:
    return path.suffix == ".safetensors" and path.is_file() or (path / "model_index.json").is_file()


class ModelShelf:
    """`names()` the offered models; `get(name)` the loaded model (one at a time: asking for another
    frees the last). `lock` is held by whoever is running a model."""

    def __init__(self, default=None, models_dir=None, *, loader=None, **load_options):
        self._default = Path(default).expanduser().resolve() if default else None
        self._folder = Path(models_dir).expanduser().resolve() if models_dir else None
        if self._folder is not None and not self._folder.is_dir():
            raise DiffdiffError(f"models folder {str(models_dir)!r} does not exist")
        if self._default is not None and not _is_model(self._default):
            raise DiffdiffError(f"model {str(default)!r} is not a .safetensors file or a diffusers folder")
        self._loader = loader
        self._load_options = load_options
        self._loaded: tuple[str, object] | None = None
        self.lock = threading.RLock()

    def _paths(self) -> dict[str, Path]:
        paths = {}
        if self._default is not None:
            paths[self._default.name] = self._default
        if self._folder is not None:
            for entry in sorted(self._folder.iterdir()):
                if _is_model(entry):
                    paths.setdefault(entry.name, entry.resolve())
        return paths

    def names(self) -> list[str]:
        return list(self._paths())

    def default_name(self) -> str | None:
        names = self.names()
        return names[0] if names else None

    def family(self, name: str | None = None) -> str:
        """The family of the model called `name` (default: the first offered), read from its tensor names
        or configs without loading it."""
        from ..models import family_of

        path = self._path(name)
        return family_of(path, **{k: v for k, v in self._load_options.items() if k in FAMILY_OPTIONS})

    def _path(self, name: str | None) -> Path:
        name = name or self.default_name()
        paths = self._paths()
        if name not in paths:
            offered = ", ".join(paths) or "none (start with --model FILE or --models-dir DIR)"
            raise DiffdiffError(f"unknown model {name!r}; the page offers: {offered}")
        return paths[name]

    def get(self, name: str | None = None):
        """The loaded model called `name` (default: the first offered)."""
        name = name or self.default_name()
        path = self._path(name)
        with self.lock:
            if self._loaded is None or self._loaded[0] != name:
                self._loaded = None  # free the last model before loading the next
                loader = self._loader
                if loader is None:
                    from ..models import load_model as loader
                self._loaded = (name, loader(path, **self._load_options))
            return self._loaded[1]
