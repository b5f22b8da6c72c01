"""Prompt text as A1111 and ComfyUI read it: emphasis weights, BREAK, long prompts in 75-token chunks,
textual-inversion embeddings and CLIP skip (`syntax` → `chunks` → `encoding`), and LoRA tags."""

from .embeddings import EmbeddingLibrary
from .syntax import STYLES, LoraTag, Segment, parse, split_lora_tags

__all__ = ["STYLES", "EmbeddingLibrary", "LoraTag", "Segment", "parse", "split_lora_tags"]
