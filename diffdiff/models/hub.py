"""Resolve a hub id ("owner/name") to its folder in the local huggingface_hub cache, never the network."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DiffdiffError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def looks_like_hub_id(source: str) -> bool:
    """"owner/name" with no file suffix that a checkpoint would have."""
    return bool(HUB_ID.match(source)) and not source.lower().endswith(
        (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
    )


def is_local_path(source: str) -> bool:
    """True when `source` can only mean a local path: it is not "owner/name", or its "owner" part is a local
    folder (so "models/sd15" next to a models/ folder is a missing file, not an uncached hub id)."""
    return not looks_like_hub_id(source) or Path(source.split("/", 1)[0]).is_dir()


def cached_snapshot(repo_id: str) -> Path:
    """The cached snapshot folder of a diffusers repo; DiffdiffError telling how to fetch it if absent."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError and friends: not in the cache
        raise DiffdiffError(
            f"model {repo_id!r} is neither a local file or folder nor in the local Hugging Face cache; fetch"
            f" it first with `huggingface-cli download {repo_id}` (diffdiff never downloads by itself)"
        ) from None
    if not (folder / "model_index.json").is_file():
        raise DiffdiffError(f"cached hub model {repo_id!r} has no model_index.json (not diffusers)")
    return folder
