"""Flow-family text side on tiny real transformers encoders: identify / split / build from single-file
tensors (fp8 too), and SD3 / Flux / Z-Image prompt encoding against independent recomputations.

Tiny CLIPs are 64 wide so the 64-wide-head rule (1 head) infers their config; the vocabularies are full
size (CLIP 49,408, T5 32,128, Qwen3 151,936) so the shipped tokenizers' ids fit.
"""

import dataclasses

import pytest
import torch
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    Qwen3Config,
    Qwen3Model,
    T5Config,
    T5EncoderModel,
)

from diffdiff.errors import DiffdiffError
from diffdiff.models.conditioning import Conditioning, PromptReading, stack_conditionings
from diffdiff.models.flow_conditioning import (
    FLOW_ENCODERS,
    Z_IMAGE_TEMPLATE,
    encode_flux,
    encode_sd3,
    encode_z_image,
)
from diffdiff.models.fp8 import upcast_fp8
from diffdiff.models.text_encoders import (
    build_text_encoder_from_weights,
    identify_text_encoder,
    split_text_encoders,
    text_encoder_config,
)
from diffdiff.models.tokenizer import load_tokenizer

E4M3 = torch.float8_e4m3fn


def _seeded(factory, seed):
    torch.manual_seed(seed)
    return factory().eval()


def _clip_config(width, act, projection):
    return CLIPTextConfig(vocab_size=49408, hidden_size=width, intermediate_size=2 * width,
                          num_hidden_layers=2, num_attention_heads=width // 64, max_position_embeddings=77,
                          hidden_act=act,
                          projection_dim=projection, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)


@pytest.fixture(scope="module")
def encoders():
    clip_l = _clip_config(64, "quick_gelu", 64)
    t5 = T5Config(vocab_size=32128, d_model=192, d_kv=32, d_ff=96, num_layers=2, num_heads=3,
                  feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False)
    qwen = Qwen3Config(vocab_size=151936, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=8, rope_theta=1e6,
                       rms_norm_eps=1e-6, max_position_embeddings=40960, use_cache=False)
    found = {
        "clip-l": _seeded(lambda: CLIPTextModelWithProjection(clip_l), 1),
        "clip-g": _seeded(lambda: CLIPTextModelWithProjection(_clip_config(64, "gelu", 64)), 2),
        "t5": _seeded(lambda: T5EncoderModel(t5), 3),
        "qwen3": _seeded(lambda: Qwen3Model(qwen), 4),
    }
    flat = CLIPTextModel(clip_l).eval()  # Flux's CLIP-L: the same weights without the projection
    flat.load_state_dict({k.removeprefix("text_model."): v for k, v in found["clip-l"].state_dict().items()
                          if k != "text_projection.weight"})
    found["clip-l-flat"] = flat
    return found


@pytest.fixture(scope="module")
def tokenizers():
    return {kind: load_tokenizer(kind) for kind in ("clip", "clip-pad0", "t5", "qwen3")}


def _file_layout(kind, model):
    """The tensors as a standalone single file holds them."""
    state = dict(model.state_dict())
    if kind == "t5":
        state.pop("encoder.embed_tokens.weight")  # t5xxl files hold `shared.weight` only
    if kind == "qwen3":
        state = {f"model.{k}": v for k, v in state.items()}
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    return state


def _outputs(kind, model, ids):
    with torch.no_grad():
        if kind == "qwen3":
            return model(input_ids=ids, output_hidden_states=True).hidden_states[-2]
        if kind == "t5":
            return model(input_ids=ids).last_hidden_state
        out = model(ids)
        return torch.cat([out.last_hidden_state.flatten(), out.text_embeds.flatten()])


IDS = {"clip": torch.tensor([[49406, 320, 1125, 539, 320, 2368, 49407] + [49407] * 5]),
       "t5": torch.tensor([[3, 9, 1202, 13, 3, 9, 1712, 1, 0, 0]]),
       "qwen3": torch.tensor([[151644, 872, 198, 64, 8251, 151645, 198]])}


# --- identify, split, build ------------------------------------------------------------------------------

def test_identify_each_kind(encoders):
    assert identify_text_encoder(_file_layout("clip-l", encoders["clip-l"])) == "clip-l"
    assert identify_text_encoder(encoders["clip-l-flat"].state_dict()) == "clip-l"  # transformers ≥ 5.6 keys
    assert identify_text_encoder(_file_layout("t5", encoders["t5"])) == "t5"
    assert identify_text_encoder(_file_layout("qwen3", encoders["qwen3"])) == "qwen3"
    wide = {"text_model.embeddings.token_embedding.weight": torch.empty(49408, 1280, device="meta"),
            "text_model.embeddings.position_embedding.weight": torch.empty(77, 1280, device="meta")}
    assert identify_text_encoder(wide) == "clip-g"
    with pytest.raises(DiffdiffError, match="cannot tell which text encoder") as error:
        identify_text_encoder({"model.diffusion_model.x": torch.zeros(1)})
    assert "\n" not in str(error.value)


def test_split_whole_checkpoint(encoders):
    whole = {"model.diffusion_model.joint_blocks.0.x": torch.zeros(1), "first_stage_model.y": torch.zeros(1)}
    names = {"clip_l": "clip-l", "clip_g": "clip-g", "t5xxl": "t5"}
    for name, kind in names.items():
        whole.update({f"text_encoders.{name}.transformer.{k}": v
                      for k, v in _file_layout(kind, encoders[kind]).items()})
    parts = split_text_encoders(whole)
    assert set(parts) == {"clip-l", "clip-g", "t5"}
    assert set(parts["t5"]) == set(_file_layout("t5", encoders["t5"]))
    assert split_text_encoders({"model.diffusion_model.x": torch.zeros(1)}) == {}
    config = text_encoder_config("clip-g", parts["clip-g"])
    assert (config.hidden_act, config.num_attention_heads, config.num_hidden_layers) == ("gelu", 1, 2)
    assert text_encoder_config("clip-l", parts["clip-l"]).hidden_act == "quick_gelu"


@pytest.mark.parametrize("kind", ["clip-l", "clip-g", "t5", "qwen3"])
def test_build_from_weights_matches_the_original(encoders, kind):
    original = encoders[kind]
    built = build_text_encoder_from_weights(kind, _file_layout(kind, original), torch.float32)
    assert type(built) is type(original)
    ids = IDS["t5" if kind == "t5" else "qwen3" if kind == "qwen3" else "clip"]
    assert (_outputs(kind, built, ids) - _outputs(kind, original, ids)).abs().max() <= 1e-6


def test_build_clip_l_without_projection_and_with_a_given_config(encoders):
    flat = encoders["clip-l-flat"]
    built = build_text_encoder_from_weights("clip-l", flat.state_dict(), torch.float32,
                                            config=flat.config.to_dict())
    assert type(built) is CLIPTextModel
    with torch.no_grad():
        assert torch.equal(built(IDS["clip"]).pooler_output, flat(IDS["clip"]).pooler_output)
    # a projecting CLIP-L from a file without a projection gets the identity, as diffusers does for SD3
    projecting = build_text_encoder_from_weights("clip-l", flat.state_dict(), torch.float32,
                                                 with_projection=True)
    with torch.no_grad():
        assert torch.allclose(projecting(IDS["clip"]).text_embeds, flat(IDS["clip"]).pooler_output)


def test_t5_with_only_its_encoder_embedding_and_a_prefix(encoders):
    state = dict(encoders["t5"].state_dict())
    state.pop("shared.weight")
    prefixed = {f"t5xxl.transformer.{k}": v for k, v in state.items()}
    assert identify_text_encoder(prefixed) == "t5"
    built = build_text_encoder_from_weights("t5", prefixed, torch.float32)
    assert (_outputs("t5", built, IDS["t5"]) - _outputs("t5", encoders["t5"], IDS["t5"])).abs().max() <= 1e-6


def test_missing_and_unexpected_tensors_are_refused(encoders):
    state = _file_layout("t5", encoders["t5"])
    missing = dict(state)
    del missing["encoder.block.1.layer.0.SelfAttention.k.weight"]
    with pytest.raises(DiffdiffError, match=r"encoder\.block\.1\.layer\.0\.SelfAttention\.k\.") as error:
        build_text_encoder_from_weights("t5", missing, torch.float32)
    assert "\n" not in str(error.value)
    extra = dict(state, **{"encoder.block.0.layer.0.SelfAttention.extra.weight": torch.zeros(2)})
    with pytest.raises(DiffdiffError, match="unexpected tensor 'encoder.block.0.layer.0.SelfAttention.extra"):
        build_text_encoder_from_weights("t5", extra, torch.float32)
    with pytest.raises(DiffdiffError, match="not qwen3"):
        build_text_encoder_from_weights("qwen3", state, torch.float32)


def _fp8_file(state, layout):
    """The tensors stored as float8_e4m3fn: plain, ComfyUI's scaled fp8 (`scale_weight` + marker) or the
    newer `weight_scale` layout; and the dequantised reference."""
    stored, reference = {}, {}
    for key, tensor in state.items():
        if tensor.ndim == 2 and layout != "plain":
            scale = tensor.abs().max() / 448.0
            quantised = (tensor / scale).to(E4M3)
            stored[key] = quantised
            suffix = ".scale_weight" if layout == "scaled" else ".weight_scale"
            stored[key.removesuffix(".weight") + suffix] = scale.reshape(())
            input_scale = ".scale_input" if layout == "scaled" else ".input_scale"
            stored[key.removesuffix(".weight") + input_scale] = torch.ones(())
            reference[key] = quantised.float() * scale
        else:
            stored[key] = tensor.to(E4M3)
            reference[key] = stored[key].float()
    if layout == "scaled":
        stored["scaled_fp8"] = torch.empty(0, dtype=E4M3)
    return stored, reference


@pytest.mark.parametrize("layout", ["plain", "scaled", "weight_scale"])
def test_fp8_t5_is_upcast_and_dequantised(encoders, layout):
    stored, reference = _fp8_file(_file_layout("t5", encoders["t5"]), layout)
    upcast = upcast_fp8(stored, torch.float32)
    assert set(upcast) == set(reference)
    built = build_text_encoder_from_weights("t5", stored, torch.float32)
    expected = build_text_encoder_from_weights("t5", reference, torch.float32)
    assert (_outputs("t5", built, IDS["t5"]) - _outputs("t5", expected, IDS["t5"])).abs().max() <= 1e-6
    if layout != "plain":  # the scales matter: without them the outputs differ
        unscaled = {k: v for k, v in stored.items() if "scale" not in k}
        wrong = build_text_encoder_from_weights("t5", unscaled, torch.float32)
        assert (_outputs("t5", wrong, IDS["t5"]) - _outputs("t5", expected, IDS["t5"])).abs().max() > 1e-3


def test_fp8_refuses_other_quantised_formats():
    state = {"a.weight": torch.zeros(2, 2, dtype=torch.int8), "a.weight_scale": torch.ones(())}
    with pytest.raises(DiffdiffError, match="only fp8"):
        upcast_fp8(state, torch.float32)
    plain = {"a.weight": torch.ones(2)}
    assert upcast_fp8(plain, torch.float16) is plain  # nothing to do: the same dict


# --- prompt encoding ----------------------------------------------------------------------------------------

def _clip_ids(tokenizer, text):
    tokens = tokenizer(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    return tokens.input_ids


def _t5_ids(tokenizer, text, length):
    ids = tokenizer(text).input_ids
    return torch.tensor([ids + [0] * (length - len(ids))])


def _flux(encoders, tokenizers):
    return [tokenizers["clip"], tokenizers["t5"]], [encoders["clip-l-flat"], encoders["t5"]]


def _sd3(encoders, tokenizers, t5=True):
    return ([tokenizers["clip"], tokenizers["clip-pad0"], tokenizers["t5"]],
            [encoders["clip-l"], encoders["clip-g"], encoders["t5"] if t5 else None])


def test_encode_flux_is_t5_states_and_clip_pooled(encoders, tokenizers):
    cond = encode_flux(*_flux(encoders, tokenizers), "a photo of a cat", "blurry")
    with torch.no_grad():
        ids = _t5_ids(tokenizers["t5"], "a photo of a cat", 256)
        expected = encoders["t5"](input_ids=ids).last_hidden_state
        pooled = encoders["clip-l-flat"](_clip_ids(tokenizers["clip"], "a photo of a cat")).pooler_output
    assert cond.embeds.shape == cond.negative_embeds.shape == (1, 256, 192)
    assert (cond.embeds - expected).abs().max() <= 1e-6
    assert (cond.pooled - pooled).abs().max() <= 1e-6 and cond.negative_pooled.shape == (1, 64)
    assert cond.mask.all() and cond.negative_mask.all() and cond.mask.shape == (1, 256)
    assert cond.time_ids is None
    batched = encode_flux(*_flux(encoders, tokenizers), "a photo of a cat", "blurry", batch=3)
    assert batched.embeds.shape == (3, 256, 192) and batched.mask.shape == (3, 256)
    assert batched.pooled.shape == (3, 64)
    assert FLOW_ENCODERS["flux"] is encode_flux


def test_long_flux_prompt_is_not_truncated_and_negative_is_padded(encoders, tokenizers):
    prompt = " ".join(["cat"] * 300)
    cond = encode_flux(*_flux(encoders, tokenizers), prompt, "")
    length = len(tokenizers["t5"](prompt).input_ids)
    assert length > 256 and cond.embeds.shape[1] == length
    assert cond.mask.all() and cond.negative_mask[0, :256].all() and not cond.negative_mask[0, 256:].any()
    assert not cond.negative_embeds[0, 256:].any()


def test_encode_sd3_layout(encoders, tokenizers):
    cond = encode_sd3(*_sd3(encoders, tokenizers), "a photo of a cat", "")
    clip_l, clip_g, t5 = encoders["clip-l"], encoders["clip-g"], encoders["t5"]
    with torch.no_grad():
        out_l = clip_l(_clip_ids(tokenizers["clip"], "a photo of a cat"), output_hidden_states=True)
        out_g = clip_g(_clip_ids(tokenizers["clip-pad0"], "a photo of a cat"), output_hidden_states=True)
        unprojected_l = clip_l.text_model(_clip_ids(tokenizers["clip"], "a photo of a cat")).pooler_output
        t5_out = t5(input_ids=_t5_ids(tokenizers["t5"], "a photo of a cat", 77)).last_hidden_state
    assert cond.embeds.shape == cond.negative_embeds.shape == (1, 77 + 77, 192)
    assert (cond.embeds[:, :77, :64] - out_l.hidden_states[-2]).abs().max() <= 1e-6
    assert (cond.embeds[:, :77, 64:128] - out_g.hidden_states[-2]).abs().max() <= 1e-6
    assert not cond.embeds[:, :77, 128:].any()  # CLIP features zero-padded to T5's width
    assert (cond.embeds[:, 77:] - t5_out).abs().max() <= 1e-6
    assert cond.pooled.shape == (1, 128)
    assert (cond.pooled[:, :64] - unprojected_l).abs().max() <= 1e-6  # CLIP-L before its projection
    assert (cond.pooled[:, 64:] - out_g.text_embeds).abs().max() <= 1e-6  # CLIP-G projected
    assert cond.mask.all() and cond.negative_mask.all()


def test_encode_sd3_without_encoders_follows_comfyui(encoders, tokenizers):
    no_t5 = encode_sd3(*_sd3(encoders, tokenizers, t5=False), "a cat")
    assert no_t5.embeds.shape == (1, 77, 4096) and not no_t5.embeds[..., 128:].any()
    toks, encs = _sd3(encoders, tokenizers)
    no_l = encode_sd3(toks, [None, encs[1], None], "a cat")  # (with the tiny T5, 768 + 64 would not fit)
    assert no_l.pooled.shape == (1, 768 + 64) and not no_l.pooled[:, :768].any()
    assert not no_l.embeds[:, :, :768].any() and no_l.embeds[:, :, 768:832].any()
    with pytest.raises(DiffdiffError, match="exceed T5's width"):
        encode_sd3(toks, [None, encs[1], encs[2]], "a cat")
    nothing = encode_sd3(toks, [None, None, None], "a cat")
    assert nothing.embeds.shape == (1, 77, 4096) and nothing.pooled.shape == (1, 2048)
    assert not nothing.embeds.any() and not nothing.pooled.any()


def test_t5_weights_follow_comfyuis_formula(encoders, tokenizers):
    toks, encs = _flux(encoders, tokenizers)
    plain = encode_flux(toks, encs, "a cat photo").embeds
    assert torch.equal(encode_flux(toks, encs, "a (cat:1.0) photo").embeds, plain)
    weighted = encode_flux(toks, encs, "a (cat:1.3) photo").embeds
    ids = tokenizers["t5"]("a cat photo").input_ids
    position = ids.index(tokenizers["t5"]("cat", add_special_tokens=False).input_ids[0])
    with torch.no_grad():
        empty = encs[1](input_ids=torch.tensor([[1] + [0] * 255])).last_hidden_state
    expected = empty[:, position] + 1.3 * (plain[:, position] - empty[:, position])
    assert (weighted[:, position] - expected).abs().max() <= 1e-5
    others = [i for i in range(256) if i != position]
    assert torch.equal(weighted[:, others], plain[:, others])
    a1111 = encode_flux(toks, encs, "a (cat:1.3) photo", reading=PromptReading(style="a1111")).embeds
    scaled = plain.clone()
    scaled[:, position] *= 1.3
    assert (a1111 - scaled * (plain.mean() / scaled.mean())).abs().max() <= 1e-5


def test_lora_tags_and_embedding_words_leave_t5_text(encoders, tokenizers):
    toks, encs = _flux(encoders, tokenizers)
    plain = encode_flux(toks, encs, "a cat").embeds
    assert torch.equal(encode_flux(toks, encs, "a cat <lora:style:0.8>").embeds, plain)


def test_encode_z_image(encoders, tokenizers):
    qwen, tokenizer = encoders["qwen3"], tokenizers["qwen3"]
    cond = encode_z_image([tokenizer], [qwen], "a photo of a cat", "")
    ids = tokenizer(Z_IMAGE_TEMPLATE.format("a photo of a cat")).input_ids
    negative_ids = tokenizer(Z_IMAGE_TEMPLATE.format("")).input_ids
    assert ids[:3] == [151644, 872, 198] and ids[3:8] == [64, 6548, 315, 264, 8251]
    with torch.no_grad():
        expected, expected_negative = (
            qwen(input_ids=torch.tensor([row]), output_hidden_states=True).hidden_states[-2]
            for row in (ids, negative_ids))
    assert cond.embeds.shape == (1, len(ids), 32) and cond.pooled is None
    assert (cond.embeds - expected).abs().max() <= 1e-6
    assert cond.mask.all() and cond.negative_mask.shape == (1, len(ids))
    filler = len(ids) - len(negative_ids)
    assert cond.negative_mask[0].tolist() == [True] * len(negative_ids) + [False] * filler
    assert (cond.negative_embeds[:, :len(negative_ids)] - expected_negative).abs().max() <= 1e-6
    assert not cond.negative_embeds[:, len(negative_ids):].any()
    assert encode_z_image([tokenizer], [qwen], "a cat", batch=2).embeds.shape[0] == 2


def test_z_image_reads_weights_as_text(encoders, tokenizers):
    qwen, tokenizer = encoders["qwen3"], tokenizers["qwen3"]
    weighted = encode_z_image([tokenizer], [qwen], "a (cat:1.3) <lora:x:1>")
    literal = tokenizer(Z_IMAGE_TEMPLATE.format("a (cat:1.3) ")).input_ids
    assert weighted.embeds.shape[1] == len(literal)  # the brackets and the number are tokens, as in ComfyUI


def test_stack_conditionings_pads_masked_rows():
    short = Conditioning(torch.ones(1, 2, 3), torch.ones(1, 2, 3), torch.ones(1, 4), torch.ones(1, 4), None,
                         torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 2, dtype=torch.bool))
    long = dataclasses.replace(short, embeds=torch.full((1, 3, 3), 2.0),
                               negative_embeds=torch.full((1, 3, 3), 2.0),
                               mask=torch.ones(1, 3, dtype=torch.bool), negative_mask=None)
    stacked = stack_conditionings([short, long])
    assert stacked.embeds.shape == stacked.negative_embeds.shape == (2, 3, 3)
    assert stacked.mask.tolist() == [[True, True, False], [True, True, True]]
    assert stacked.negative_mask.tolist() == [[True, True, False], [True, True, True]]
    assert not stacked.embeds[0, 2].any() and stacked.pooled.shape == (2, 4)
    unmasked = stack_conditionings([Conditioning(torch.ones(1, 2, 3), torch.ones(1, 2, 3)),
                                    Conditioning(torch.ones(1, 4, 3), torch.ones(1, 4, 3))])
    assert unmasked.embeds.shape == (2, 4, 3) and unmasked.mask is None  # repeated, as before
