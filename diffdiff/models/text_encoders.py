"""Text encoders of the flow-matching families from single files: tell the kind, split whole checkpoints,
infer a transformers config from the tensors and build the network strictly.

Layouts read (after `fp8.upcast_fp8`):
- whole checkpoints (SAI's SD3 files, ComfyUI's saved SD3 / Flux / Z-Image checkpoints):
  `text_encoders.<name>.transformer.<standalone layout>`, name clip_l, clip_g, t5xxl or qwen3_4b;
- standalone files in transformers' layout: CLIP `text_model.*` (+ `text_projection.weight`, `logit_scale`),
  T5 `encoder.*` + `shared.weight`, Qwen3 `model.layers.*` / `model.embed_tokens.weight` / `model.norm.weight`
  (+ an `lm_head.weight` that an encoder does not use). A further outer prefix is found from a signature key.

Config inference (when no config is given): CLIP width, layers, MLP width, vocabulary and positions from
the embeddings; heads = width / 64 (CLIP-L 768 → 12, bigG 1280 → 20: every CLIP SD uses has 64-wide heads).
The weights do not show the activation, so the kind decides it: CLIP-L quick_gelu (OpenAI), CLIP-G gelu
(OpenCLIP). A standalone CLIP is CLIP-G when 1024 wide or wider (bigG 1280), else CLIP-L (768); in whole
checkpoints the component's name decides. T5: width, MLP width, layers, heads from relative_attention_bias,
gated-gelu (v1.1) when `wi_0` exists. Qwen3: width, layers, MLP width, head width from q_norm, heads and
KV heads from q_proj / k_proj, vocabulary; rope theta 1e6 and RMS eps 1e-6 (Qwen3-4B's).
"""

from __future__ import annotations

import re

import torch

from ..errors import DiffdiffError
from .fp8 import upcast_fp8
from .ldm_layout import count_numbered

TEXT_ENCODER_KINDS = ("clip-l", "clip-g", "t5", "qwen3")
# The transformers class of each kind (CLIP-L takes the projecting class when its file has a projection).
TEXT_MODEL_CLASSES = {"clip-l": "CLIPTextModel", "clip-g": "CLIPTextModelWithProjection",
                      "t5": "T5EncoderModel", "qwen3": "Qwen3Model"}
COMPONENT_KINDS = {"clip_l": "clip-l", "clip_g": "clip-g", "t5xxl": "t5", "qwen3_4b": "qwen3"}
SIGNATURES = {  # a key every file of the kind has, relative to the kind's layout
    "clip": "embeddings.token_embedding.weight",
    "t5": "encoder.block.0.layer.0.SelfAttention.q.weight",
    "qwen3": "layers.0.self_attn.q_norm.weight",
}
CLIP_G_MIN_WIDTH = 1024
CLIP_HEAD_WIDTH = 64
QWEN3_ROPE_THETA = 1_000_000.0
QWEN3_RMS_EPS = 1e-6
QWEN3_MAX_POSITIONS = 40960
WHOLE_PREFIX = re.compile(r"^text_encoders\.([^.]+)\.")
IGNORABLE = re.compile(r"(^|\.)(lm_head\.[^.]+|logit_scale|position_ids)$")


def _located(state_dict: dict) -> tuple[str, str] | None:
    """(family of layouts "clip" | "t5" | "qwen3", outer prefix) from the signature keys, or None."""
    for key in state_dict:
        for name, signature in SIGNATURES.items():
            if key.endswith(signature) and (key == signature or key[-len(signature) - 1] == "."):
                prefix = key[: -len(signature)]
                if name == "clip":
                    prefix = prefix.removesuffix("text_model.")
                return name, prefix
    return None


def _unknown(state_dict: dict) -> DiffdiffError:
    first = next(iter(state_dict), "(none)")
    return DiffdiffError(
        f"cannot tell which text encoder these {len(state_dict)} tensors are (first key {first!r}); expected "
        "CLIP (text_model.*), T5 (encoder.block.*, shared.weight) or Qwen3 (model.layers.*)")


def identify_text_encoder(state_dict: dict) -> str:
    """"clip-l", "clip-g", "t5" or "qwen3" from the keys and shapes (wrappers stripped); DiffdiffError if
    the tensors are none of them."""
    located = _located(state_dict)
    if located is None:
        raise _unknown(state_dict)
    name, _ = located
    if name != "clip":
        return name
    width = int(_standalone(state_dict, "clip-l")["text_model.embeddings.token_embedding.weight"].shape[1])
    return "clip-g" if width >= CLIP_G_MIN_WIDTH else "clip-l"


def split_text_encoders(state_dict: dict) -> dict[str, dict]:
    """{kind: its tensors in the standalone layout} of the text encoders inside a whole checkpoint
    (`text_encoders.<name>.transformer.*`); empty when it holds none."""
    groups: dict[str, dict] = {}
    for key, tensor in state_dict.items():
        match = WHOLE_PREFIX.match(key)
        if match:
            rest = key[match.end():]
            groups.setdefault(match.group(1), {})[rest.removeprefix("transformer.")] = tensor
    result = {}
    for name, tensors in groups.items():
        kind = COMPONENT_KINDS.get(name) or identify_text_encoder(tensors)
        if kind in result:
            raise DiffdiffError(f"the checkpoint holds two {kind} text encoders (text_encoders.{name})")
        result[kind] = tensors
    return result


def _standalone(state_dict: dict, kind: str) -> dict:
    """The tensors of `kind` with the outer prefix removed, in the layout `_located` names: CLIP as
    `text_model.*` + `text_projection.weight`, T5 as in T5EncoderModel, Qwen3 as in Qwen3Model."""
    located = _located(state_dict)
    expected = "clip" if kind.startswith("clip") else kind
    if located is None or located[0] != expected:
        if located is None:
            raise _unknown(state_dict)
        raise DiffdiffError(f"these tensors are a {located[0]} text encoder, not {kind}")
    _, prefix = located
    result, outside = {}, []
    for key, tensor in state_dict.items():
        if not key.startswith(prefix):
            outside.append(key)
            continue
        key = key[len(prefix):]
        if expected == "clip" and not key.startswith("text_model.") and key != "text_projection.weight" \
                and not IGNORABLE.search(key):
            key = "text_model." + key  # transformers ≥ 5.6 saves CLIPTextModel without `text_model.`
        result[key] = tensor
    unexpected = [key for key in outside if not IGNORABLE.search(key)]
    if unexpected:
        raise DiffdiffError(f"unexpected tensor {unexpected[0]!r} in a {kind} text encoder file")
    if kind == "t5" and "shared.weight" not in result and "encoder.embed_tokens.weight" in result:
        result["shared.weight"] = result["encoder.embed_tokens.weight"]  # the tied input embedding
    return {key: tensor for key, tensor in result.items() if not IGNORABLE.search(key)}


def _shape(state_dict: dict, key: str, kind: str) -> torch.Size:
    if key not in state_dict:
        raise DiffdiffError(f"the {kind} text encoder lacks {key}; cannot infer its configuration")
    return state_dict[key].shape


def _clip_config(weights: dict, kind: str):
    from transformers import CLIPTextConfig

    vocab, width = _shape(weights, "text_model.embeddings.token_embedding.weight", kind)
    positions = _shape(weights, "text_model.embeddings.position_embedding.weight", kind)[0]
    projection = weights.get("text_projection.weight")
    return CLIPTextConfig(
        vocab_size=int(vocab), hidden_size=int(width), max_position_embeddings=int(positions),
        intermediate_size=int(_shape(weights, "text_model.encoder.layers.0.mlp.fc1.weight", kind)[0]),
        num_hidden_layers=count_numbered(weights, r"text_model\.encoder\.layers\.(\d+)\."),
        num_attention_heads=max(1, int(width) // CLIP_HEAD_WIDTH),
        hidden_act="gelu" if kind == "clip-g" else "quick_gelu",
        projection_dim=int(projection.shape[0]) if projection is not None else int(width),
        bos_token_id=49406, eos_token_id=49407, pad_token_id=1,
    )


def _t5_config(weights: dict):
    from transformers import T5Config

    vocab, width = _shape(weights, "shared.weight", "t5")
    bias = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
    buckets, heads = _shape(weights, bias, "t5")
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in weights
    mlp = "wi_0" if gated else "wi"
    return T5Config(
        vocab_size=int(vocab), d_model=int(width), num_heads=int(heads),
        relative_attention_num_buckets=int(buckets),
        d_kv=int(_shape(weights, "encoder.block.0.layer.0.SelfAttention.q.weight", "t5")[0]) // int(heads),
        d_ff=int(_shape(weights, f"encoder.block.0.layer.1.DenseReluDense.{mlp}.weight", "t5")[0]),
        num_layers=count_numbered(weights, r"encoder\.block\.(\d+)\."),
        feed_forward_proj="gated-gelu" if gated else "relu",
        is_encoder_decoder=False, use_cache=False, layer_norm_epsilon=1e-6,
    )


def _qwen3_config(weights: dict):
    from transformers import Qwen3Config

    vocab, width = _shape(weights, "embed_tokens.weight", "qwen3")
    head_dim = int(_shape(weights, "layers.0.self_attn.q_norm.weight", "qwen3")[0])
    return Qwen3Config(
        vocab_size=int(vocab), hidden_size=int(width), head_dim=head_dim,
        intermediate_size=int(_shape(weights, "layers.0.mlp.gate_proj.weight", "qwen3")[0]),
        num_hidden_layers=count_numbered(weights, r"layers\.(\d+)\."),
        num_attention_heads=int(_shape(weights, "layers.0.self_attn.q_proj.weight", "qwen3")[0]) // head_dim,
        num_key_value_heads=int(_shape(weights, "layers.0.self_attn.k_proj.weight", "qwen3")[0]) // head_dim,
        attention_bias="layers.0.self_attn.q_proj.bias" in weights,
        rope_theta=QWEN3_ROPE_THETA, rms_norm_eps=QWEN3_RMS_EPS, max_position_embeddings=QWEN3_MAX_POSITIONS,
        tie_word_embeddings=True, use_cache=False,
    )


def _check_kind(kind: str) -> str:
    if kind not in TEXT_ENCODER_KINDS:
        raise DiffdiffError(f"unknown text encoder kind {kind!r}; "
                            f"choose one of {', '.join(TEXT_ENCODER_KINDS)}")
    return kind


def text_encoder_config(kind: str, state_dict: dict):
    """The transformers config (CLIPTextConfig, T5Config, Qwen3Config) of `kind` inferred from its tensors
    (standalone or prefixed layout; see the module docstring for the rules)."""
    weights = _standalone(state_dict, _check_kind(kind))
    if kind == "t5":
        return _t5_config(weights)
    if kind == "qwen3":
        return _qwen3_config(weights)
    return _clip_config(weights, kind)


def _config_object(kind: str, config):
    if not isinstance(config, dict):
        return config
    from transformers import CLIPTextConfig, Qwen3Config, T5Config

    classes = {"t5": T5Config, "qwen3": Qwen3Config}
    return classes.get(kind, CLIPTextConfig)(**config)


def _model_class(kind: str, weights: dict, with_projection: bool | None):
    import transformers

    if kind == "clip-l":
        if with_projection is None:
            with_projection = "text_projection.weight" in weights
        if with_projection:
            return transformers.CLIPTextModelWithProjection
    return getattr(transformers, TEXT_MODEL_CLASSES[kind])


def _model_weights(model, kind: str, weights: dict, dtype: torch.dtype) -> dict:
    """`weights` renamed to `model`'s keys: CLIP without `text_model.` when the class is flat, an identity
    text projection when a projecting CLIP-L file has none (diffusers does the same for SD3's CLIP-L), T5's
    tied embedding under both names. Floating tensors are cast to `dtype` here, so tied names share one
    copy."""
    weights = {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()}
    expected = model.state_dict()
    if kind.startswith("clip"):
        if not hasattr(model, "text_model"):
            weights = {k.removeprefix("text_model."): v for k, v in weights.items()}
        projection = "text_projection.weight"
        if kind == "clip-l" and projection in expected and projection not in weights:
            weights["text_projection.weight"] = torch.eye(int(model.config.hidden_size), dtype=dtype)
    if kind == "t5":
        shared = weights.get("shared.weight", weights.get("encoder.embed_tokens.weight"))
        if shared is not None:
            weights.setdefault("shared.weight", shared)
            weights.setdefault("encoder.embed_tokens.weight", shared)
    unexpected = [k for k in weights if k not in expected]
    if unexpected:
        raise DiffdiffError(f"unexpected tensor {unexpected[0]!r} in the {kind} text encoder "
                            f"({len(unexpected)} in all); a different model or configuration?")
    return weights


def build_text_encoder_from_weights(kind: str, state_dict: dict, dtype: torch.dtype, config=None, *,
                                    with_projection: bool | None = None):
    """The text encoder `kind` holding `state_dict` (fp8 upcast, wrappers stripped), in `dtype`, loaded
    strictly: a missing tensor or an unexpected one (other than lm_head, position ids, logit_scale) is a
    one-line DiffdiffError naming it. `config` (a transformers config or its dict) overrides inference.
    CLIP-L is CLIPTextModelWithProjection when `with_projection` (None: when the file has a projection),
    else CLIPTextModel; CLIP-G is always projecting; T5 is T5EncoderModel; Qwen3 is Qwen3Model."""
    from .single_file import _build_strict

    _check_kind(kind)
    weights = _standalone(upcast_fp8(state_dict, dtype), kind)
    if config is None:
        config = text_encoder_config(kind, weights)
    config = _config_object(kind, config)
    model_class = _model_class(kind, weights, with_projection)
    return _build_strict(lambda: model_class(config),
                         lambda model: _model_weights(model, kind, weights, dtype), kind, dtype)
