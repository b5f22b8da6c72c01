"""`Prompting`, the option group that says how prompts are read and what the user brings to them: the
weighting style (ComfyUI's or A1111's), CLIP skip, LoRA files (flags and `<lora:NAME:W>` tags), the LoRA and
embeddings folders. It checks every file a prompt names before any model loads, and gives the settings
record's entries (names and A1111's short hashes)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..errors import DiffdiffError
from ..prompts.syntax import STYLES, parse, split_lora_tags
from . import checks
from .parts import Part, keywords_of

MAX_CLIP_SKIP = 48  # above any CLIP text encoder's depth; the encoder's own is checked when encoding


@dataclass(frozen=True)
class Prompting(Part):
    """`prompt_style` "comfy" | "a1111"; `clip_skip` (A1111's numbering, 1 = last layer; None = the family's
    default); `lora` "FILE[:WEIGHT[:TEXT_WEIGHT]]" texts; `lora_dir` for prompt tags; `embeddings_dir`;
    `allow_pickle` admits pickled LoRA / embedding files (as it does checkpoints)."""

    prompt_style: str = "comfy"
    clip_skip: int | None = None
    lora: tuple[str, ...] = ()
    lora_dir: str | None = None
    embeddings_dir: str | None = None
    allow_pickle: bool = False

    def __post_init__(self):
        self._set("prompt_style", checks.choice(self.prompt_style, STYLES, "prompt style"))
        if self.clip_skip is not None:
            self._set("clip_skip", checks.count(self.clip_skip, "clip skip", 1, MAX_CLIP_SKIP))
        self._set("allow_pickle", checks.flag(self.allow_pickle, "allow_pickle"))
        texts = [self.lora] if isinstance(self.lora, str) else list(self.lora or ())
        for text in texts:
            if not isinstance(text, str):
                raise DiffdiffError(f"lora must be FILE[:WEIGHT[:TEXT_WEIGHT]] text; got {text!r}")
        self._set("lora", tuple(texts))
        for name in ("lora_dir", "embeddings_dir"):
            folder = getattr(self, name)
            if folder is not None:
                if not isinstance(folder, (str, Path)) or not Path(folder).expanduser().is_dir():
                    raise DiffdiffError(f"{name.replace('_', ' ')} {folder} is not a folder")
                self._set(name, str(folder))
        for use in self.flag_loras:
            self._check_lora_file(use.path)

    def _check_lora_file(self, path: Path) -> None:
        if not path.is_file():
            raise DiffdiffError(f"LoRA file {path} not found")
        from ..lora.use import LORA_SUFFIXES

        suffix = path.suffix.lower()
        if suffix not in LORA_SUFFIXES:
            raise DiffdiffError(f"LoRA {path.name} is not a LoRA file (expected .safetensors)")
        if suffix != ".safetensors" and not self.allow_pickle:
            raise DiffdiffError(f"LoRA {path.name} is a pickle, which can run code: convert it to "
                                ".safetensors, or pass --allow-pickle if you trust it")

    @cached_property
    def flag_loras(self) -> tuple:
        from ..lora import parse_lora_flag

        return tuple(parse_lora_flag(text) for text in self.lora)

    @cached_property
    def library(self):
        """The embeddings library, or None without a folder."""
        from ..prompts.embeddings import EmbeddingLibrary

        if self.embeddings_dir is None:
            return None
        return EmbeddingLibrary(self.embeddings_dir, allow_pickle=self.allow_pickle)

    def reading(self):
        """How the model's encoder reads the prompts (`diffdiff.models.conditioning.PromptReading`)."""
        from ..models.conditioning import PromptReading

        return PromptReading(self.prompt_style, self.clip_skip, self.library)

    def loras_for(self, prompt: str) -> tuple:
        """The LoRAs of a run with `prompt`: the flags', then the prompt's `<lora:NAME:W>` tags'."""
        from ..lora import LoraUse, find_lora

        tags = split_lora_tags(prompt)[1]
        lora_dir = Path(self.lora_dir).expanduser() if self.lora_dir else None
        from_tags = tuple(LoraUse(find_lora(tag.name, lora_dir), tag.weight, tag.text_weight) for tag in tags)
        return self.flag_loras + from_tags

    def embeddings_in(self, *texts: str) -> list[str]:
        """The embedding names the texts use, each checked to exist (one line naming a missing one)."""
        from ..prompts.chunks import referenced_embeddings

        names = self.library.names if self.library is not None and self.prompt_style == "a1111" else []
        found: dict[str, None] = {}
        for text in texts:
            segments = parse(split_lora_tags(text)[0], self.prompt_style)
            found.update(dict.fromkeys(referenced_embeddings(segments, self.prompt_style, names)))
        if found and self.library is None:
            raise DiffdiffError(f"the prompt uses embedding {next(iter(found))!r} but no embeddings folder "
                                "was given (--embeddings-dir)")
        for name in found:
            self.library.path(name)
        return list(found)

    def check_prompts(self, prompt: str, negative: str) -> None:
        """Everything the prompts name exists: tagged LoRAs (also in the negative, where they are ignored, as
        A1111 ignores them) and embeddings; the weights parse."""
        for use in self.loras_for(prompt):
            self._check_lora_file(use.path)
        split_lora_tags(negative)
        self.embeddings_in(prompt, negative)

    def record(self, prompt: str, negative: str) -> dict:
        """The settings record's entries: the options, and each LoRA and embedding with its short hash."""
        from ..lora import lora_short_hash

        loras = [{"name": use.name, "weight": use.weight, "text_weight": use.text_weight,
                  "hash": lora_short_hash(use.path)} for use in self.loras_for(prompt)]
        embeddings = [{"name": name, "hash": self.library.short_hash(name)}
                      for name in self.embeddings_in(prompt, negative)]
        return {**keywords_of(self), "lora": list(self.lora), "loras": loras, "embeddings": embeddings}
