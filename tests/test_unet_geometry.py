"""UNet geometry inferred from an ldm-layout checkpoint's tensors (`unet_geometry.infer_unet_config`).

Distilled / pruned shapes (BK-SDM base/small/tiny, segmind small-sd / tiny-sd, SSD-1B, Segmind Vega, per-level
resnet counts) are written as whole single files without a UNet config and loaded; the test is that the
loaded UNet computes what the original computed. The shipped full-size configs and the tiny families' header
configs must come back from their own tensors.
"""

import json

import pytest
import torch

from diffdiff.errors import DiffdiffError
from diffdiff.models import load_model
from diffdiff.models.ldm_layout import UNET_PREFIX, unet_from_ldm, unet_to_ldm
from diffdiff.models.single_file import CONFIGS_METADATA_KEY
from diffdiff.models.tiny import (
    build_tiny_components,
    checkpoint_state,
    shipped_config,
    single_file_state,
    write_checkpoint,
)
from diffdiff.models.unet_geometry import infer_unet_config

GEOMETRY_FIELDS = ("in_channels", "out_channels", "block_out_channels", "down_block_types", "up_block_types",
                   "mid_block_type", "cross_attention_dim", "use_linear_projection", "addition_embed_type",
                   "projection_class_embeddings_input_dim")


def _meta_unet(config):
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return UNet2DConditionModel.from_config(config)


def _shapes(config) -> dict:
    return {key: tuple(value.shape) for key, value in _meta_unet(config).state_dict().items()}


def _ldm(unet_state: dict) -> dict:
    return {UNET_PREFIX + key: value for key, value in unet_to_ldm(unet_state).items()}


def _heads(config) -> list[int]:
    heads = config.get("attention_head_dim", 8)
    return list(heads) if isinstance(heads, (list, tuple)) else [heads] * len(config["block_out_channels"])


def _layers(config) -> list[int]:
    layers = config.get("layers_per_block", 2)
    return list(layers) if isinstance(layers, (list, tuple)) else [layers] * len(config["block_out_channels"])


def _full(config: dict) -> dict:
    """The config as the class completes it (its defaults for absent entries), sequences as lists."""
    full = dict(_meta_unet(config).config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in full.items()}


def _assert_same_geometry(inferred: dict, expected: dict) -> None:
    full_inferred, full_expected = _full(inferred), _full(expected)
    for name in GEOMETRY_FIELDS:
        assert full_inferred[name] == full_expected[name], name
    assert _layers(inferred) == _layers(expected)
    assert _shapes(inferred) == _shapes(expected)  # every weight, transformer depths included


# --- the shipped full-size configs, on the meta device ---------------------------------------------------


@pytest.mark.parametrize("family", ["sd1", "sd2", "sd2-v", "sdxl"])
def test_shipped_configs_come_back_from_their_tensors(family):
    config = shipped_config(family, "unet")
    ldm = _ldm(_meta_unet(config).state_dict())  # meta tensors: shapes only, nothing allocated
    inferred = infer_unet_config(ldm, {})
    assert inferred["block_out_channels"] == config["block_out_channels"]
    _assert_same_geometry(inferred, config)
    assert inferred["transformer_layers_per_block"] == config.get("transformer_layers_per_block", 1)
    assert inferred["reverse_transformer_layers_per_block"] is None
    with_defaults = infer_unet_config(ldm, config)
    assert _heads(with_defaults) == _heads(config)
    assert with_defaults["sample_size"] == config["sample_size"]


# --- the tiny families: inference agrees with the header configs ---------------------------------------


@pytest.mark.parametrize("inpainting", [False, True], ids=["plain", "inpainting"])
@pytest.mark.parametrize("family", ["sd1", "sd2", "sd2-v", "sdxl"])
def test_inference_agrees_with_tiny_header_configs(family, inpainting):
    state, metadata = single_file_state(family, inpainting)
    header = json.loads(metadata[CONFIGS_METADATA_KEY])["unet"]
    _assert_same_geometry(infer_unet_config(state, shipped_config(family, "unet")), header)
    inferred = infer_unet_config(state, header)  # what the loader does: the header gives the defaults
    _assert_same_geometry(inferred, header)
    assert _heads(inferred) == _heads(header)
    assert inferred.get("addition_time_embed_dim") == header.get("addition_time_embed_dim")
    if family == "sdxl":  # the per-id width also follows from the pooled projection when defaults differ
        shipped = infer_unet_config(state, shipped_config(family, "unet"))
        assert shipped["addition_time_embed_dim"] == header["addition_time_embed_dim"] == 8


# --- distilled shapes: written without a UNet config, loaded, same outputs -----------------------------

SD1_DISTILLED = {
    # BK-SDM-Base and segmind small-sd: one resnet (+ attention) per down level, two per up level
    "bk-sdm-base/small-sd": dict(layers_per_block=1),
    # BK-SDM-Small: also no middle block
    "bk-sdm-small": dict(layers_per_block=1, mid_block_type=None),
    # BK-SDM-Tiny and segmind tiny-sd: also without the innermost level (3 levels, all attending)
    "bk-sdm-tiny/tiny-sd": dict(
        layers_per_block=1, mid_block_type=None, block_out_channels=[32, 32, 64],
        down_block_types=["CrossAttnDownBlock2D"] * 3, up_block_types=["CrossAttnUpBlock2D"] * 3),
    # pruned by hand: resnets and transformer depths that differ per level (our own converter's case)
    "per-level-resnets": dict(layers_per_block=[1, 2, 1, 2], transformer_layers_per_block=[1, 2, 1, 1]),
}
SDXL_DISTILLED = {
    # SSD-1B: SDXL levels with fewer transformer blocks, different in every up block; a lone-resnet middle
    "ssd-1b": dict(layers_per_block=2, transformer_layers_per_block=[1, 2, 3],
                   reverse_transformer_layers_per_block=[[3, 3, 2], [2, 1, 1], [1, 1, 1]],
                   mid_block_type="UNetMidBlock2D"),
    # Segmind Vega: one resnet per down level, shallower still, up depths of their own
    "segmind-vega": dict(layers_per_block=1, transformer_layers_per_block=[1, 1, 2],
                         reverse_transformer_layers_per_block=[[2, 1], [1, 2], [1, 1]],
                         mid_block_type="UNetMidBlock2D"),
    # SDXL layout without a middle block (as KOALA's)
    "sdxl-no-mid": dict(layers_per_block=1, transformer_layers_per_block=[1, 1, 2], mid_block_type=None),
}


def _sd1_unet_config(shape: dict) -> dict:
    """SD1 layout (8 heads, 1x1-conv projections, the tiny CLIP's 16-wide context), 32 groups."""
    config = shipped_config("sd1", "unet")
    config.update(block_out_channels=[32, 32, 64, 64], cross_attention_dim=16, sample_size=8)
    config.update(shape)
    return config


def _sdxl_unet_config(shape: dict) -> dict:
    """SDXL layout (64-wide heads, linear projections, label_emb of the tiny encoders' widths)."""
    config = shipped_config("sdxl", "unet")
    config.update(block_out_channels=[32, 64, 128], attention_head_dim=[1, 1, 2], cross_attention_dim=48,
                  addition_time_embed_dim=8, projection_class_embeddings_input_dim=32 + 6 * 8, sample_size=8)
    config.update(shape)
    return config


def _original(config: dict):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(7)
    unet = UNet2DConditionModel.from_config(config).eval()
    with torch.no_grad():
        for parameter in unet.parameters():  # no zero-initialised layer may hide a wrong mapping
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return unet


def _write_without_unet_config(path, family: str, unet) -> None:
    """A whole checkpoint (tiny VAE and text encoders) whose header configs name everything but the UNet."""
    components = {**build_tiny_components(family), "unet": unet}
    state, metadata = checkpoint_state(components, family)
    configs = json.loads(metadata[CONFIGS_METADATA_KEY])
    del configs["unet"]
    metadata[CONFIGS_METADATA_KEY] = json.dumps(configs)
    write_checkpoint(path, state, metadata)


def _outputs(unet, family: str, config: dict) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    sample = torch.randn(2, config["in_channels"], 16, 16, generator=generator)
    context = torch.randn(2, 5, config["cross_attention_dim"], generator=generator)
    kwargs = {}
    if family == "sdxl":
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.randn(2, 32, generator=generator),
                                       "time_ids": torch.tensor([[16.0, 16, 0, 0, 16, 16]] * 2)}
    with torch.no_grad():
        return unet(sample, torch.tensor([500.0, 20.0]), encoder_hidden_states=context, **kwargs).sample


@pytest.mark.parametrize("family, name", [("sd1", name) for name in SD1_DISTILLED]
                         + [("sdxl", name) for name in SDXL_DISTILLED])
def test_distilled_checkpoint_loads_and_computes_the_same(family, name, tmp_path):
    shapes = SD1_DISTILLED if family == "sd1" else SDXL_DISTILLED
    config = (_sd1_unet_config if family == "sd1" else _sdxl_unet_config)(shapes[name])
    original = _original(config)
    path = tmp_path / f"{name.replace('/', '-')}.safetensors"
    _write_without_unet_config(path, family, original)
    loaded = load_model(path, device="cpu", dtype="fp32").unet
    assert (loaded.mid_block is None) == (original.mid_block is None)
    expected = _outputs(original, family, config)
    assert expected.std() > 0
    assert (_outputs(loaded, family, config) - expected).abs().max() <= 1e-6


def test_diffusers_converter_takes_uniform_distilled_shapes_and_ours_the_rest():
    """diffusers' converter handles one resnet count for all levels (no middle, any depths); per-level counts
    go through our inverse map, which gives the same result wherever both apply."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    for shape in (SD1_DISTILLED["bk-sdm-small"], SD1_DISTILLED["bk-sdm-tiny/tiny-sd"]):
        unet = _meta_unet(_sd1_unet_config(shape))
        state = unet.state_dict()
        ldm = _ldm(state)
        assert convert_ldm_unet_checkpoint(ldm, dict(unet.config)).keys() == state.keys()
        assert unet_from_ldm(ldm, state.keys()).keys() == state.keys()
    for shape in (SDXL_DISTILLED["ssd-1b"], SDXL_DISTILLED["segmind-vega"]):
        unet = _meta_unet(_sdxl_unet_config(shape))
        state = unet.state_dict()
        converted = convert_ldm_unet_checkpoint(_ldm(state), dict(unet.config))
        assert {k: v.shape for k, v in converted.items()} == {k: v.shape for k, v in state.items()}
    unet = _meta_unet(_sd1_unet_config(SD1_DISTILLED["per-level-resnets"]))
    ldm = _ldm(unet.state_dict())
    downsamplers = sorted(int(k.split(".")[3]) for k in ldm if k.endswith(".0.op.weight"))
    assert downsamplers == [2, 5, 7]  # levels of 1, 2, 1 (and 2) resnets, numbered on
    depth_two = "model.diffusion_model.output_blocks.{}.1.transformer_blocks.1.norm1.weight"
    assert depth_two.format(5) in ldm and depth_two.format(4) not in ldm  # up levels of 3, 2, 3, 3 blocks
    back = unet_from_ldm(ldm, unet.state_dict().keys())
    assert {k: v.shape for k, v in back.items()} == {k: v.shape for k, v in unet.state_dict().items()}


# --- strictness ------------------------------------------------------------------------------------------


def test_a_missing_attention_weight_is_still_named(tmp_path):
    family = "sd1"
    _write_without_unet_config(tmp_path / "full.safetensors", family,
                               _original(_sd1_unet_config(SD1_DISTILLED["bk-sdm-small"])))
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(tmp_path / "full.safetensors"), framework="pt") as handle:
        metadata = handle.metadata()
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    removed = "model.diffusion_model.input_blocks.3.1.transformer_blocks.0.attn1.to_q.weight"
    del state[removed]
    path = tmp_path / "incomplete.safetensors"
    save_file(state, str(path), metadata=metadata)
    with pytest.raises(DiffdiffError, match="lacks 1 unet weights") as error:
        load_model(path, device="cpu", dtype="fp32")
    assert "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight" in str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_block_or_no_unet_is_refused():
    config = _sd1_unet_config(SD1_DISTILLED["bk-sdm-base/small-sd"])
    ldm = _ldm(_meta_unet(config).state_dict())
    holed = {k: v for k, v in ldm.items() if not k.startswith("model.diffusion_model.input_blocks.2.")}
    with pytest.raises(DiffdiffError, match="input_blocks.2"):
        infer_unet_config(holed, {})
    short = {k: v for k, v in ldm.items() if not k.startswith("model.diffusion_model.output_blocks.3.")}
    with pytest.raises(DiffdiffError, match="output_blocks.3"):
        infer_unet_config(short, {})
    with pytest.raises(DiffdiffError, match="lacks the unet weights"):
        infer_unet_config({"first_stage_model.x": torch.zeros(1)}, {})


def test_a_middle_depth_diffusers_cannot_build_is_refused():
    config = _sdxl_unet_config(dict(layers_per_block=1, transformer_layers_per_block=[1, 1, 2]))
    ldm = _ldm(_meta_unet(config).state_dict())
    deeper = {k: v for k, v in ldm.items() if ".middle_block.1.transformer_blocks.1." not in k}
    with pytest.raises(DiffdiffError, match="middle block has 1 transformer blocks but the last level 2"):
        infer_unet_config(deeper, {})
