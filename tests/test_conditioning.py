"""encode_prompt on tiny SD1 and SDXL models: layers, shapes, pooled, time_ids; CFG end to end."""

import dataclasses

import pytest
import torch

from diffdiff.models import load_model, make_tiny_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-cond")
    return {family: load_model(make_tiny_model(root / family, family), device="cpu")
            for family in ("sd1", "sdxl")}


def _ids(tokenizer, text):
    tokens = tokenizer(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    return tokens.input_ids


def test_sd1_uses_last_hidden_state(models):
    model = models["sd1"]
    cond = model.encode_prompt("a red fox", "blurry")
    encoder, tokenizer = model.text_encoders[0], model.tokenizers[0]
    with torch.no_grad():
        expected = encoder(_ids(tokenizer, "a red fox")).last_hidden_state
        expected_negative = encoder(_ids(tokenizer, "blurry")).last_hidden_state
    assert cond.embeds.shape == (1, 77, 16)
    torch.testing.assert_close(cond.embeds, expected)
    torch.testing.assert_close(cond.negative_embeds, expected_negative)
    assert cond.pooled is None and cond.time_ids is None
    assert model.encode_prompt("a red fox", batch=3).embeds.shape == (3, 77, 16)


def test_sdxl_concatenates_penultimate_layers_and_adds_pooled_and_time_ids(models):
    model = models["sdxl"]
    cond = model.encode_prompt("a castle", "", width=96, height=64)
    (tok_1, tok_2), (enc_1, enc_2) = model.tokenizers, model.text_encoders
    with torch.no_grad():
        out_1 = enc_1(_ids(tok_1, "a castle"), output_hidden_states=True)
        out_2 = enc_2(_ids(tok_2, "a castle"), output_hidden_states=True)
    assert cond.embeds.shape == (1, 77, 16 + 32)
    torch.testing.assert_close(cond.embeds[..., :16], out_1.hidden_states[-2])
    torch.testing.assert_close(cond.embeds[..., 16:], out_2.hidden_states[-2])
    assert cond.pooled.shape == (1, 32)
    torch.testing.assert_close(cond.pooled, out_2.text_embeds)
    assert cond.negative_pooled.shape == (1, 32)
    assert cond.time_ids.tolist() == [[64.0, 96.0, 0.0, 0.0, 64.0, 96.0]]  # orig h, w, crop, target h, w
    # SD2's OpenCLIP tokenizer pads with "!" (id 0), CLIP-L with <|endoftext|> (49407)
    assert _ids(tok_2, "a castle")[0, -1].item() == 0 and _ids(tok_1, "a castle")[0, -1].item() == 49407


def test_sdxl_denoiser_cfg_combines_cond_and_uncond(models):
    model = models["sdxl"]
    cond = model.encode_prompt("a castle", "fog", width=16, height=16)
    swapped = dataclasses.replace(cond, embeds=cond.negative_embeds, pooled=cond.negative_pooled)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    sigma = torch.full((2,), 3.0)
    x0_cond = model.denoiser(cond, 1.0)(x, sigma)
    x0_uncond = model.denoiser(swapped, 1.0)(x, sigma)
    guided = model.denoiser(cond, 4.0)
    x0 = guided(x, sigma, active_mask=torch.ones(2, 1, 8, 8))
    assert guided.inner_calls == 1
    assert guided.model_sampling is model.model_sampling
    torch.testing.assert_close(x0, x0_uncond + 4.0 * (x0_cond - x0_uncond), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(x0_cond, x0_uncond)
