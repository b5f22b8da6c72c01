"""Original single-file layouts of the flow-matching transformers (SD3/SD3.5, Flux.1 dev/schnell/Fill,
Z-Image): tiny real diffusers models written with `transformer_to_original` are recognised, their config is
read back from the shapes, diffusers' converters load them bit-identically and the loaded model computes the
same outputs; incomplete or padded files are refused naming a tensor."""

from __future__ import annotations

import re

import pytest
import torch

from diffdiff.errors import DiffdiffError
from diffdiff.models.flow_geometry import scaled_rope_axes
from diffdiff.models.flow_layout import (
    FLOW_NETWORK_PREFIX,
    detect_flow_family,
    infer_transformer_config,
    strip_network_prefix,
    transformer_class,
    transformer_from_original,
    transformer_to_original,
)

# Tiny configs that follow the documented geometry rules (SD3: head width 64 without qk norm; rotary axes:
# `scaled_rope_axes`; Z-Image: diffusers' default axes_lens).
SD3 = dict(sample_size=32, patch_size=2, in_channels=16, num_layers=2, attention_head_dim=64,
           num_attention_heads=1, joint_attention_dim=128, caption_projection_dim=64,
           pooled_projection_dim=128, out_channels=16, pos_embed_max_size=32)
FLUX = dict(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=128, pooled_projection_dim=64, guidance_embeds=True,
            axes_dims_rope=(4, 4, 8))
Z_IMAGE = dict(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=64, n_layers=2,
               n_refiner_layers=1, n_heads=2, n_kv_heads=2, qk_norm=True, cap_feat_dim=32,
               axes_dims=[8, 12, 12])
TINY = {
    "sd3": ("sd3", SD3),
    "sd35": ("sd3", SD3 | dict(attention_head_dim=32, num_attention_heads=2, dual_attention_layers=(0,),
                               qk_norm="rms_norm")),
    "flux": ("flux", FLUX),
    "flux-schnell": ("flux-schnell", FLUX | dict(guidance_embeds=False)),
    "flux-fill": ("flux-fill", FLUX | dict(in_channels=384, out_channels=64)),
    "z-image": ("z-image", Z_IMAGE),
}
OTHER_COMPONENTS = {"first_stage_model.decoder.conv_in.weight": torch.zeros(2, 2),
                    "text_encoders.clip_l.transformer.text_model.final_layer_norm.weight": torch.zeros(2)}


def _tiny(name: str):
    """(family, config, model with random weights: zero-initialised ones would hide a swapped half)."""
    family, config = TINY[name]
    torch.manual_seed(0)
    model = transformer_class(family)(**config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.2)
    return family, config, model


def _original(name: str, prefixed: bool):
    family, config, model = _tiny(name)
    original = transformer_to_original(family, model.state_dict(), config)
    if prefixed:  # a whole-model file: the network under the prefix, next to other components
        original = {FLOW_NETWORK_PREFIX + key: value for key, value in original.items()} | OTHER_COMPONENTS
    return family, config, model, original


def _run(family: str, model, seed: int = 1) -> torch.Tensor:
    """One forward call shaped as diffusers' pipeline for the family makes it."""
    gen = torch.Generator().manual_seed(seed)
    config = model.config
    with torch.no_grad():
        if family == "sd3":
            return model(hidden_states=torch.randn(1, 16, 8, 8, generator=gen),
                         encoder_hidden_states=torch.randn(1, 5, config.joint_attention_dim, generator=gen),
                         pooled_projections=torch.randn(1, config.pooled_projection_dim, generator=gen),
                         timestep=torch.tensor([500.0]), return_dict=False)[0]
        if family == "z-image":
            out = model([torch.randn(16, 1, 8, 8, generator=gen)], torch.tensor([0.3]),
                        [torch.randn(7, 32, generator=gen)], return_dict=False)[0]
            return torch.stack(out)
        img_ids = torch.zeros(4, 4, 3)
        img_ids[..., 1] += torch.arange(4)[:, None]
        img_ids[..., 2] += torch.arange(4)[None, :]
        guidance = torch.tensor([3.5]) if config.guidance_embeds else None
        return model(hidden_states=torch.randn(1, 16, config.in_channels, generator=gen),
                     encoder_hidden_states=torch.randn(1, 5, config.joint_attention_dim, generator=gen),
                     pooled_projections=torch.randn(1, config.pooled_projection_dim, generator=gen),
                     timestep=torch.tensor([0.6]),
                     img_ids=img_ids.reshape(16, 3), txt_ids=torch.zeros(5, 3), guidance=guidance,
                     return_dict=False)[0]


def _plain(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("prefixed", [False, True], ids=["transformer-only", "whole-model"])
@pytest.mark.parametrize("name", list(TINY))
def test_original_layout_round_trip(name, prefixed):
    family, config, model, original = _original(name, prefixed)
    assert detect_flow_family(original.keys(), lambda key: tuple(original[key].shape)) == family

    inferred = infer_transformer_config(family, original)
    assert {k: _plain(v) for k, v in inferred.items()} == {k: _plain(model.config[k]) for k in inferred}
    assert {k: _plain(v) for k, v in config.items()} == {k: _plain(inferred[k]) for k in config}

    before = dict(original)
    converted = transformer_from_original(family, original, inferred)
    assert original.keys() == before.keys() and all(original[k] is before[k] for k in before)  # untouched
    expected = model.state_dict()
    assert converted.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(converted[key], tensor), key

    loaded = transformer_class(family)(**inferred).eval()
    loaded.load_state_dict(converted, strict=True)
    first, second = _run(family, model), _run(family, loaded)
    assert first.shape == second.shape and torch.isfinite(first).all()
    assert (first - second).abs().max().item() <= 1e-6

    again = transformer_to_original(family, converted, inferred)  # and back: the same file
    network = strip_network_prefix(original)
    assert again.keys() == network.keys()
    assert all(torch.equal(again[k], network[k]) for k in network)


@pytest.mark.parametrize("name", ["sd35", "flux", "z-image"])
def test_missing_tensor_is_named(name):
    family, config, _, original = _original(name, prefixed=True)
    victim = sorted(key for key in original if key.startswith(FLOW_NETWORK_PREFIX))[3]
    del original[victim]
    bare = victim[len(FLOW_NETWORK_PREFIX):]
    with pytest.raises(DiffdiffError, match=rf"lacks 1 weights \(e\.g\. {re.escape(bare)}\)"):
        transformer_from_original(family, original, config)


@pytest.mark.parametrize("name", ["sd3", "flux-schnell", "z-image"])
def test_unknown_tensor_is_refused(name):
    family, config, _, original = _original(name, prefixed=False)
    original["double_blocks.7.img_attn.extra.weight"] = torch.zeros(3)
    with pytest.raises(DiffdiffError, match=r"1 unknown weights \(e\.g\. double_blocks\.7\.img_attn\.extra"):
        transformer_from_original(family, original, config)


def test_misshapen_tensor_is_refused():
    family, config, _, original = _original("flux-fill", prefixed=False)
    original["img_in.weight"] = original["img_in.weight"][:, :64]
    expected = r"img_in\.weight has shape \(32, 64\); the model expects \(32, 384\)"
    with pytest.raises(DiffdiffError, match=expected):
        transformer_from_original(family, original, config)


def test_z_image_unused_final_norm_is_accepted():
    family, config, model, original = _original("z-image", prefixed=False)
    converted = transformer_from_original(family, original | {"norm_final.weight": torch.ones(64)}, config)
    assert converted.keys() == model.state_dict().keys()


def test_detection_rejects_other_layouts():
    from diffdiff.models.tiny import single_file_state

    state, _ = single_file_state("sd1")
    assert detect_flow_family(state.keys(), lambda key: tuple(state[key].shape)) is None
    _, _, _, original = _original("flux", prefixed=False)
    depth = original | {"img_in.weight": torch.zeros(64, 128)}  # Flux Depth: not one of ours
    assert detect_flow_family(depth.keys(), lambda key: tuple(depth[key].shape)) is None
    _, _, z_image = _tiny("z-image")  # diffusers layout: not an original file
    assert detect_flow_family(z_image.state_dict().keys(), lambda key: ()) is None


def test_strip_network_prefix():
    state = {"model.diffusion_model.img_in.weight": 1, "first_stage_model.x": 2, "text_encoders.y": 3}
    assert strip_network_prefix(state) == {"img_in.weight": 1}
    assert strip_network_prefix({"img_in.weight": 1, "vae.x": 2, "conditioner.y": 3}) == {"img_in.weight": 1}


def test_rope_axes_rule():
    assert scaled_rope_axes((16, 56, 56), 128) == (16, 56, 56)
    assert scaled_rope_axes((16, 56, 56), 32) == (4, 14, 14)
    assert scaled_rope_axes((32, 48, 48), 16) == (4, 6, 6)
    assert scaled_rope_axes((16, 56, 56), 16) == (4, 4, 8)  # diffusers' tiny-test split
    with pytest.raises(DiffdiffError, match="head width 12 cannot be shared"):
        scaled_rope_axes((16, 56, 56), 12)


def test_unknown_family_is_refused():
    with pytest.raises(DiffdiffError, match="unknown flow model family 'sd4'"):
        infer_transformer_config("sd4", {})


# The released models' diffusers configs (stabilityai/*-diffusers, black-forest-labs/FLUX.1-*,
# Tongyi-MAI/Z-Image-Turbo), built on the meta device: no memory, only names and shapes.
MMDIT_24 = dict(num_layers=24, num_attention_heads=24, caption_projection_dim=1536)  # SD3(.5) medium
RELEASED = {
    "sd3-medium": ("sd3", MMDIT_24 | dict(pos_embed_max_size=192)),
    "sd3.5-large": ("sd3", dict(num_layers=38, num_attention_heads=38, caption_projection_dim=2432,
                                pos_embed_max_size=192, qk_norm="rms_norm")),
    "sd3.5-medium": ("sd3", MMDIT_24 | dict(pos_embed_max_size=384, qk_norm="rms_norm",
                                            dual_attention_layers=tuple(range(13)))),
    "flux.1-dev": ("flux", dict(guidance_embeds=True)),
    "flux.1-schnell": ("flux-schnell", dict(guidance_embeds=False)),
    "flux.1-fill-dev": ("flux-fill", dict(guidance_embeds=True, in_channels=384, out_channels=64)),
    "z-image-turbo": ("z-image", dict()),
}


@pytest.mark.parametrize("name", list(RELEASED))
def test_released_geometry_is_read_back(name):
    family, config = RELEASED[name]
    with torch.device("meta"):
        model = transformer_class(family)(**config)
    original = transformer_to_original(family, model.state_dict(), dict(model.config))
    assert detect_flow_family(original.keys(), lambda key: tuple(original[key].shape)) == family
    inferred = infer_transformer_config(family, original)
    assert {k: _plain(v) for k, v in inferred.items()} == {k: _plain(model.config[k]) for k in inferred}
    converted = transformer_from_original(family, original, inferred)
    assert {k: v.shape for k, v in converted.items()} == {k: v.shape for k, v in model.state_dict().items()}
