"""What goes into an output PNG's text chunks: the A1111 `parameters` line and our full settings as JSON.

The `parameters` layout (prompt line, `Negative prompt:` line, then `Key: value, ...`) is the one
Automatic1111 writes and most image browsers parse; values containing a comma, colon or quote are
JSON-quoted as A1111 does. Sampler and scheduler names are shown with A1111's labels where one exists.
"""

from __future__ import annotations

import json

import numpy as np

SAMPLER_LABELS = {
    "euler": "Euler", "euler_ancestral": "Euler a", "heun": "Heun", "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a", "lms": "LMS", "dpm_fast": "DPM fast", "dpm_adaptive": "DPM adaptive",
    "dpmpp_2s_ancestral": "DPM++ 2S a", "dpmpp_sde": "DPM++ SDE", "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE", "dpmpp_3m_sde": "DPM++ 3M SDE", "ddim": "DDIM", "lcm": "LCM",
    "uni_pc": "UniPC", "ipndm": "iPNDM", "deis": "DEIS", "ddpm": "DDPM", "restart": "Restart",
}
SCHEDULER_LABELS = {
    "normal": "Normal", "karras": "Karras", "exponential": "Exponential", "sgm_uniform": "SGM Uniform",
    "simple": "Simple", "ddim_uniform": "DDIM", "beta": "Beta", "kl_optimal": "KL Optimal",
    "linear_quadratic": "Linear Quadratic",
}


def _format_value(value) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = str(value)
    if any(mark in text for mark in (",", ":", '"', "\n")):
        return json.dumps(text, ensure_ascii=False)
    return text


def _hashes(resources: list[dict] | None) -> str | None:
    """A1111's "name: hash, name: hash" list (names lose their colons and commas, as A1111 writes them)."""
    if not resources:
        return None
    names = [item["name"].replace(":", "").replace(",", "") for item in resources]
    return ", ".join(f"{name}: {item['hash']}" for name, item in zip(names, resources))


def parameters_text(settings: dict) -> str:
    """The A1111 `parameters` text for one image from the pipeline's settings dict (missing keys skipped)."""
    prompt = str(settings.get("prompt", ""))
    lines = [prompt]
    if settings.get("negative"):
        lines.append(f"Negative prompt: {settings['negative']}")
    fields = [
        ("Steps", settings.get("steps")),
        ("Sampler", SAMPLER_LABELS.get(settings.get("sampler"), settings.get("sampler"))),
        ("Schedule type", SCHEDULER_LABELS.get(settings.get("scheduler"), settings.get("scheduler"))),
        ("CFG scale", settings.get("cfg")),
        ("Distilled CFG Scale", settings.get("guidance")),  # Forge's name for Flux's embedded guidance
        ("Seed", settings.get("seed")),
        ("Size", f"{settings['width']}x{settings['height']}" if "width" in settings else None),
        ("Model hash", settings.get("model_hash")),
        ("Model", settings.get("model")),
        # an upscale's refine strength is its map's mean (exactly S for a uniform --strength S)
        ("Denoising strength", settings.get("mean_strength", settings.get("denoise"))),
        ("Clip skip", settings.get("clip_skip") if (settings.get("clip_skip") or 1) > 1 else None),
        ("Differential diffusion", settings.get("gate")),
        ("Batch size", settings.get("batch") if (settings.get("batch") or 1) > 1 else None),
        ("Tiles", settings.get("tiles") if (settings.get("tiles") or 1) > 1 else None),
        ("Lora hashes", _hashes(settings.get("loras"))),
        ("TI hashes", _hashes(settings.get("embeddings"))),
        ("Version", f"diffdiff {settings['version']}" if settings.get("version") else None),
    ]
    lines.append(", ".join(f"{key}: {_format_value(value)}" for key, value in fields if value is not None))
    return "\n".join(lines)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def settings_to_json(settings: dict) -> str:
    """Settings as compact, key-sorted JSON (numpy scalars and paths made plain)."""
    return json.dumps(_jsonable(settings), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def settings_for_item(settings: dict, index: int) -> dict:
    """The settings of batch item `index`: its own seed (seed + index) and its index."""
    item = dict(settings)
    item["seed"] = int(settings.get("seed", 0)) + index
    item["batch_index"] = index
    return item
