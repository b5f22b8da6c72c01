"""make_tiny_model → load_model end to end: both forms of every family load to the same model.

For sd1, sd2, sd2-v and sdxl the diffusers folder and the A1111-layout single file must give the same family
and parametrisation, bit-identical weights (also identical to `build_tiny_components`), identical prompt
conditioning and identical x0 from one denoiser call. Also: prediction overrides, SDXL conditioning from the
single file, separate VAE files and folders, family overrides that contradict the file, incomplete files.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from diffdiff.errors import DiffdiffError
from diffdiff.models import load_model, make_tiny_model
from diffdiff.models.ldm_layout import diffusers_to_ldm
from diffdiff.models.tiny import build_tiny_components

FAMILIES = ("sd1", "sd2", "sd2-v", "sdxl")
PREDICTION = {"sd1": "eps", "sd2": "eps", "sd2-v": "v", "sdxl": "eps"}
TEXT_WIDTH = {"sd1": 16, "sd2": 16, "sd2-v": 16, "sdxl": 16 + 32}
SIGMA = 3.0


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """{family: (folder, single file)} written once."""
    root = tmp_path_factory.mktemp("roundtrip")
    return {
        family: (make_tiny_model(root / family, family),
                 make_tiny_model(root / "single", family, single_file=True))
        for family in FAMILIES
    }


@pytest.fixture(scope="session")
def loaded(files):
    """{family: (model from the folder, model from the single file)}."""
    return {family: tuple(load_model(path, device="cpu") for path in paths)
            for family, paths in files.items()}


def _latent():
    return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(7))


def _metadata(path):
    with safe_open(str(path), "pt") as handle:
        return handle.metadata()


def _assert_same_state(expected, actual, what):
    expected, actual = expected.state_dict(), actual.state_dict()
    assert set(expected) == set(actual), what
    for key, tensor in expected.items():
        assert torch.equal(tensor, actual[key]), f"{what}: {key}"


def _components(model):
    named = {"unet": model.unet, "vae": model.vae, "text_encoder": model.text_encoders[0]}
    if len(model.text_encoders) > 1:
        named["text_encoder_2"] = model.text_encoders[1]
    return named


@pytest.mark.parametrize("family", FAMILIES)
def test_both_forms_have_the_family_and_parametrisation(loaded, family):
    for model in loaded[family]:
        assert model.family == family
        assert model.model_sampling.prediction == PREDICTION[family]
        assert model.latent_channels == 4 and model.vae_codec.factor == 8
        assert len(model.text_encoders) == len(model.tokenizers) == (2 if family == "sdxl" else 1)
        assert len(model.short_hash) == 10
    folder_model, single_model = loaded[family]
    scaling = 0.13025 if family == "sdxl" else 0.18215
    assert folder_model.vae_codec.scaling_factor == single_model.vae_codec.scaling_factor == scaling


@pytest.mark.parametrize("family", FAMILIES)
def test_weights_equal_between_forms_and_to_the_built_model(loaded, family):
    built = build_tiny_components(family)
    folder_model, single_model = loaded[family]
    for form, model in (("folder", folder_model), ("single", single_model)):
        components = _components(model)
        assert set(components) == set(built)
        for name, module in components.items():
            assert type(module) is type(built[name]), (form, name)
            _assert_same_state(built[name], module, f"{family} {form} {name}")


@pytest.mark.parametrize("family", FAMILIES)
def test_same_prompt_gives_identical_conditioning(loaded, family):
    folder_model, single_model = loaded[family]
    a = folder_model.encode_prompt("a red fox in snow", "blurry", width=96, height=64, batch=2)
    b = single_model.encode_prompt("a red fox in snow", "blurry", width=96, height=64, batch=2)
    assert a.embeds.shape == (2, 77, TEXT_WIDTH[family])
    for field in ("embeds", "negative_embeds", "pooled", "negative_pooled", "time_ids"):
        first, second = getattr(a, field), getattr(b, field)
        assert (first is None) == (second is None) == (family != "sdxl" and field in (
            "pooled", "negative_pooled", "time_ids")), field
        if first is not None:
            assert torch.equal(first, second), field
    assert not torch.equal(a.embeds, a.negative_embeds)  # the prompt reaches the encoder


@pytest.mark.parametrize("family", FAMILIES)
def test_one_denoiser_call_gives_identical_x0(loaded, family):
    folder_model, single_model = loaded[family]
    x = _latent()
    sigma = torch.tensor([SIGMA])
    results = []
    for model in (folder_model, single_model):
        conditioning = model.encode_prompt("a castle", "fog", width=64, height=64)
        results.append(model.denoiser(conditioning, 5.0)(x, sigma))
    assert results[0].shape == x.shape and torch.isfinite(results[0]).all()
    assert torch.equal(results[0], results[1])


def test_sd2_and_sd2_v_files_differ_only_in_parametrisation(loaded):
    """Same seeded weights, different prediction: the x0 estimates must differ."""
    x, sigma = _latent(), torch.tensor([SIGMA])
    eps_model, v_model = loaded["sd2"][1], loaded["sd2-v"][1]
    x0 = [m.denoiser(m.encode_prompt("a castle"), 1.0)(x, sigma) for m in (eps_model, v_model)]
    assert not torch.allclose(x0[0], x0[1])


def test_prediction_override_on_an_sd2_single_file(files, loaded):
    """prediction="v" turns the sd2 file's network output into x0 by the V formula (docs/design.md §2)."""
    _, single = files["sd2"]
    as_v = load_model(single, prediction="v", device="cpu")
    assert as_v.family == "sd2-v" and as_v.model_sampling.prediction == "v"
    as_eps = loaded["sd2"][1]
    _assert_same_state(as_eps.unet, as_v.unet, "unet")
    x, sigma = _latent(), torch.tensor([SIGMA])
    conditioning = as_eps.encode_prompt("a castle")
    x0_eps = as_eps.denoiser(conditioning, 1.0)(x, sigma)
    x0_v = as_v.denoiser(conditioning, 1.0)(x, sigma)
    out = (x - x0_eps) / SIGMA  # eps: x0 = x − σ·out, so this is the network output
    expected = x / (SIGMA**2 + 1) - out * SIGMA / (SIGMA**2 + 1) ** 0.5
    torch.testing.assert_close(x0_v, expected, rtol=1e-4, atol=1e-5)
    back = load_model(files["sd2-v"][1], prediction="eps", device="cpu")
    assert back.family == "sd2" and back.model_sampling.prediction == "eps"


def test_sdxl_single_file_conditioning_shapes(loaded):
    model = loaded["sdxl"][1]
    conditioning = model.encode_prompt("a castle", "", width=96, height=64, batch=3)
    assert conditioning.embeds.shape == conditioning.negative_embeds.shape == (3, 77, 16 + 32)
    assert conditioning.pooled.shape == conditioning.negative_pooled.shape == (3, 32)
    assert conditioning.time_ids.shape == (3, 6)
    assert conditioning.time_ids[0].tolist() == [64.0, 96.0, 0.0, 0.0, 64.0, 96.0]
    added = conditioning.network_kwargs()["added_cond_kwargs"]
    assert set(added) == {"text_embeds", "time_ids"}
    x0 = model.denoiser(conditioning, 3.0)(torch.randn(3, 4, 8, 12), torch.full((3,), SIGMA))
    assert x0.shape == (3, 4, 8, 12) and torch.isfinite(x0).all()


def _other_vae(family):
    """The tiny VAE of `family` with perturbed weights: a different VAE of the same shape."""
    vae = build_tiny_components(family)["vae"]
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for parameter in vae.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.01)
    return vae


def test_single_file_with_a_separate_vae_file(files, tmp_path):
    _, single = files["sd1"]
    other = _other_vae("sd1")
    ldm_vae = tmp_path / "vae-ldm.safetensors"
    save_file({k: v.contiguous() for k, v in diffusers_to_ldm({"vae": other.state_dict()}, "sd1").items()},
              str(ldm_vae))
    with_vae = load_model(single, vae=ldm_vae, device="cpu")
    _assert_same_state(other, with_vae.vae, "vae from the separate file")
    _assert_same_state(build_tiny_components("sd1")["unet"], with_vae.unet, "unet")

    # a single file without VAE weights is refused alone and completed by the separate file
    state = {k: v for k, v in load_file(str(single)).items() if not k.startswith("first_stage_model.")}
    no_vae = tmp_path / "no-vae.safetensors"
    save_file(state, str(no_vae), metadata=_metadata(single))
    with pytest.raises(DiffdiffError, match="lacks .* vae weights") as error:
        load_model(no_vae, device="cpu")
    assert "\n" not in str(error.value)
    completed = load_model(no_vae, vae=ldm_vae, device="cpu")
    _assert_same_state(other, completed.vae, "vae completing the file")


def test_separate_vae_from_a_folder_or_another_tiny_file(files):
    folder, single = files["sd1"]
    from_folder = load_model(single, vae=folder, device="cpu")  # a model folder's vae/
    from_vae_folder = load_model(single, vae=folder / "vae", device="cpu")  # a VAE folder
    for model in (from_folder, from_vae_folder):
        _assert_same_state(build_tiny_components("sd1")["vae"], model.vae, "vae folder")
    # another tiny file's VAE is built with that file's own header config (its scaling factor)
    xl_vae = load_model(single, vae=files["sdxl"][1], device="cpu")
    _assert_same_state(build_tiny_components("sdxl")["vae"], xl_vae.vae, "sdxl vae")
    assert xl_vae.family == "sd1" and xl_vae.vae_codec.scaling_factor == 0.13025
    with pytest.raises(DiffdiffError, match="VAE not found"):
        load_model(single, vae=folder / "nope.safetensors", device="cpu")


def test_family_override_that_contradicts_the_model_is_refused(files):
    with pytest.raises(DiffdiffError, match="does not match"):
        load_model(files["sdxl"][1], family="sd1", device="cpu")
    with pytest.raises(DiffdiffError, match="does not match"):
        load_model(files["sd1"][1], family="sd2", device="cpu")
    with pytest.raises(DiffdiffError, match="does not match"):
        load_model(files["sdxl"][0], family="sd1", device="cpu")
    with pytest.raises(DiffdiffError, match="does not match"):
        load_model(files["sd1"][0], family="sdxl", device="cpu")
    assert load_model(files["sd2"][1], family="sd2-v", device="cpu").family == "sd2-v"


def test_header_family_decides_v_without_the_marker(files, tmp_path):
    _, single = files["sd2-v"]
    state = load_file(str(single))
    del state["v_pred"]
    unmarked = tmp_path / "unmarked.safetensors"
    save_file(state, str(unmarked), metadata=_metadata(single))
    assert load_model(unmarked, device="cpu").family == "sd2-v"
    metadata = dict(_metadata(single), **{"diffdiff.family": "sd2"})
    save_file(state, str(unmarked), metadata=metadata)
    assert load_model(unmarked, device="cpu").family == "sd2"


def test_incomplete_sdxl_file_is_a_one_line_error(files, tmp_path):
    _, single = files["sdxl"]
    state = {k: v for k, v in load_file(str(single)).items() if not k.startswith("model.diffusion_model.")}
    path = tmp_path / "no-unet.safetensors"
    save_file(state, str(path), metadata=_metadata(single))
    with pytest.raises(DiffdiffError, match="unet") as error:
        load_model(path, device="cpu")
    assert "\n" not in str(error.value)


def test_single_file_without_header_uses_the_real_configs(files, tmp_path):
    """Without `diffdiff.configs` the UNet's geometry is read from its tensors, but the text encoder takes
    the shipped (full-size) config, which the tiny weights do not fit."""
    _, single = files["sd1"]
    bare = tmp_path / "bare.safetensors"
    save_file(load_file(str(single)), str(bare))
    assert json.loads(_metadata(single)["diffdiff.configs"])["unet"]["block_out_channels"] == [32, 64]
    with pytest.raises(DiffdiffError, match="text_encoder weights"):
        load_model(bare, device="cpu")


def test_loading_restores_library_verbosity(files):
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    before = diffusers_logging.get_verbosity(), transformers_logging.get_verbosity()
    load_model(files["sd1"][0], device="cpu")
    assert (diffusers_logging.get_verbosity(), transformers_logging.get_verbosity()) == before
