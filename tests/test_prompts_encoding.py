"""Prompt encoding on tiny SD1 / SDXL models, each checked against the formula computed here by hand from
the text encoder itself: long prompts in 75-token chunks, BREAK, ComfyUI's and A1111's weighting, CLIP skip,
textual-inversion embeddings, and prompts of different lengths batched together."""

import copy

import pytest
import torch
from safetensors.torch import save_file

from diffdiff.errors import DiffdiffError
from diffdiff.models import load_model, make_tiny_model
from diffdiff.models.conditioning import PromptReading
from diffdiff.prompts import EmbeddingLibrary

WORDS = ("red blue green cat dog tree house sky sun moon river stone bird fish road car boat hill lake rain "
         "snow wind fire gold rose star").split()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-prompts")
    models = {family: load_model(make_tiny_model(root / family, family), device="cpu")
              for family in ("sd1", "sdxl")}
    with torch.no_grad():  # a fresh layer norm (bias 0) centres every token: give the means A1111 uses a size
        models["sd1"].text_encoders[0].final_layer_norm.bias.add_(0.05)
    return models


@pytest.fixture(scope="module")
def library(tmp_path_factory, models):
    folder = tmp_path_factory.mktemp("embeddings")
    generator = torch.Generator().manual_seed(5)
    save_file({"emb_params": torch.randn(2, 16, generator=generator)}, str(folder / "inkstyle.safetensors"))
    both = {"clip_l": torch.randn(3, 16, generator=generator),
            "clip_g": torch.randn(3, 32, generator=generator)}
    save_file(both, str(folder / "xlstyle.safetensors"))
    save_file({"emb_params": torch.randn(1, 24, generator=generator)}, str(folder / "wide.safetensors"))
    torch.save({"string_to_param": {"*": torch.randn(1, 16, generator=generator)}}, folder / "pickled.pt")
    return folder


def window(tokenizer, tokens):
    """One 77-token window: start, `tokens`, end, then the tokenizer's padding."""
    ids = [tokenizer.bos_token_id, *tokens, tokenizer.eos_token_id]
    return torch.tensor([ids + [tokenizer.pad_token_id] * (77 - len(ids))])


def content(tokenizer, text):
    return tokenizer(text, add_special_tokens=False).input_ids


def last_hidden(model, ids):
    with torch.no_grad():
        return model.text_encoders[0](ids).last_hidden_state


def test_a_200_token_prompt_gives_three_chunks_each_encoded_alone(models):
    model = models["sd1"]
    tokenizer = model.tokenizers[0]
    words = [WORDS[k % len(WORDS)] for k in range(200)]  # one token each
    cond = model.encode_prompt(" ".join(words))
    assert cond.embeds.shape == (1, 3 * 77, 16)
    ids = content(tokenizer, " ".join(words))
    for index, part in enumerate((ids[:75], ids[75:150], ids[150:])):
        expected = last_hidden(model, window(tokenizer, part))
        torch.testing.assert_close(cond.embeds[:, 77 * index : 77 * (index + 1)], expected)


def test_break_starts_a_new_chunk(models):
    model = models["sd1"]
    tokenizer = model.tokenizers[0]
    for style in ("comfy", "a1111"):
        cond = model.encode_prompt("a cat BREAK a dog", reading=PromptReading(style))
        assert cond.embeds.shape == (1, 154, 16)
        second = last_hidden(model, window(tokenizer, content(tokenizer, "a dog")))
        torch.testing.assert_close(cond.embeds[:, 77:], second)


def test_a1111_moves_the_words_after_a_late_comma_to_the_next_chunk(models):
    model = models["sd1"]
    tokenizer = model.tokenizers[0]
    words = [WORDS[k % len(WORDS)] for k in range(70)] + [","] + [WORDS[k] for k in range(10)]
    text = " ".join(words)
    ids = content(tokenizer, text)
    a1111 = model.encode_prompt(text, reading=PromptReading("a1111"))
    comfy = model.encode_prompt(text)
    torch.testing.assert_close(a1111.embeds[:, :77], last_hidden(model, window(tokenizer, ids[:71])))
    torch.testing.assert_close(a1111.embeds[:, 77:], last_hidden(model, window(tokenizer, ids[71:])))
    torch.testing.assert_close(comfy.embeds[:, :77], last_hidden(model, window(tokenizer, ids[:75])))


def test_plain_prompts_read_the_same_in_both_styles_and_equal_the_encoder(models):
    model = models["sd1"]
    tokenizer = model.tokenizers[0]
    expected = last_hidden(model, window(tokenizer, content(tokenizer, "a red fox, in snow")))
    for style in ("comfy", "a1111"):
        cond = model.encode_prompt("a red fox, in snow", reading=PromptReading(style))
        assert torch.equal(cond.embeds, expected)


def test_comfy_weights_lerp_from_the_empty_prompt(models):
    model = models["sd1"]
    tokenizer = model.tokenizers[0]
    plain = last_hidden(model, window(tokenizer, content(tokenizer, "a red fox")))[0]
    empty = last_hidden(model, window(tokenizer, []))[0]
    red = 2  # start, "a", "red"
    expected = plain.clone()
    expected[red] = empty[red] + 1.5 * (plain[red] - empty[red])
    cond = model.encode_prompt("a (red:1.5) fox")
    torch.testing.assert_close(cond.embeds[0], expected)
    assert not torch.allclose(expected[red], plain[red])


def test_a1111_weights_scale_then_restore_the_mean(models):
    model = models["sd1"]
    tokenizer = model.tokenizers[0]
    plain = last_hidden(model, window(tokenizer, content(tokenizer, "a red fox")))[0]
    multipliers = torch.ones(77)
    multipliers[2] = 1.5  # (red:1.5)
    multipliers[3] = 1 / 1.1  # [fox]
    scaled = plain * multipliers[:, None]
    expected = scaled * (plain.mean() / scaled.mean())
    cond = model.encode_prompt("a (red:1.5) [fox]", reading=PromptReading("a1111"))
    torch.testing.assert_close(cond.embeds[0], expected)


def test_clip_skip_selects_the_hidden_layer(models):
    sd1 = models["sd1"]
    tokenizer, encoder = sd1.tokenizers[0], sd1.text_encoders[0]
    ids = window(tokenizer, content(tokenizer, "a castle"))
    with torch.no_grad():
        output = encoder(ids, output_hidden_states=True)
        expected = encoder.final_layer_norm(output.hidden_states[-2])
    cond = sd1.encode_prompt("a castle", reading=PromptReading(clip_skip=2))
    torch.testing.assert_close(cond.embeds, expected)
    assert not torch.allclose(cond.embeds, output.last_hidden_state)
    with pytest.raises(DiffdiffError, match="clip skip 3 is out of range: this text encoder has 2 layers"):
        sd1.encode_prompt("a castle", reading=PromptReading(clip_skip=3))

    sdxl = models["sdxl"]  # SDXL reads layer 2 from the top by default, raw (no final norm)
    (tok_1, tok_2), (enc_1, enc_2) = sdxl.tokenizers, sdxl.text_encoders
    with torch.no_grad():
        last_1 = enc_1(window(tok_1, content(tok_1, "a castle")), output_hidden_states=True).hidden_states[-1]
        last_2 = enc_2(window(tok_2, content(tok_2, "a castle")), output_hidden_states=True).hidden_states[-1]
    cond = sdxl.encode_prompt("a castle", width=64, height=64, reading=PromptReading(clip_skip=1))
    torch.testing.assert_close(cond.embeds, torch.cat([last_1, last_2], dim=-1))


def with_vectors(encoder, vectors):
    """A copy of `encoder` whose vocabulary gains `vectors` as new tokens (ids from 49408 on)."""
    extended = copy.deepcopy(encoder)
    size = extended.get_input_embeddings().weight.shape[0]
    extended.resize_token_embeddings(size + len(vectors))
    with torch.no_grad():
        extended.get_input_embeddings().weight[size:] = vectors
    return extended, list(range(size, size + len(vectors)))


def test_an_embedding_takes_one_position_per_vector(models, library):
    model = models["sd1"]
    tokenizer = model.tokenizers[0]
    vectors = EmbeddingLibrary(library).vectors("inkstyle", 0, 16)
    extended, new_ids = with_vectors(model.text_encoders[0], vectors)
    ids = window(tokenizer, content(tokenizer, "a") + new_ids + content(tokenizer, "cat"))
    with torch.no_grad():
        expected = extended(ids).last_hidden_state
    lib = EmbeddingLibrary(library)
    comfy = model.encode_prompt("a embedding:inkstyle cat", reading=PromptReading(embeddings=lib))
    a1111 = model.encode_prompt("a inkstyle cat", reading=PromptReading("a1111", embeddings=lib))
    torch.testing.assert_close(comfy.embeds, expected)
    torch.testing.assert_close(a1111.embeds, expected)


def test_sdxl_embeddings_give_each_encoder_its_own_vectors(models, library):
    model = models["sdxl"]
    lib = EmbeddingLibrary(library)
    cond = model.encode_prompt("embedding:xlstyle", width=64, height=64,
                               reading=PromptReading(embeddings=lib))
    for index, (tokenizer, encoder) in enumerate(zip(model.tokenizers, model.text_encoders)):
        extended, new_ids = with_vectors(encoder, lib.vectors("xlstyle", index, encoder.config.hidden_size))
        with torch.no_grad():
            expected = extended(window(tokenizer, new_ids), output_hidden_states=True).hidden_states[-2]
        part = cond.embeds[..., :16] if index == 0 else cond.embeds[..., 16:]
        torch.testing.assert_close(part, expected)


@pytest.mark.parametrize(("prompt", "message"), [
    ("embedding:missing", "embedding 'missing' not found in"),
    ("embedding:wide", "wide.safetensors has 24-wide vectors; this model's text encoder takes 16"),
    ("embedding:pickled", "pickled.pt is a pickle, which can run code"),
])
def test_bad_embeddings_are_refused_with_one_line(models, library, prompt, message):
    with pytest.raises(DiffdiffError, match=message) as caught:
        models["sd1"].encode_prompt(prompt, reading=PromptReading(embeddings=EmbeddingLibrary(library)))
    assert "\n" not in str(caught.value)


def test_a_pickled_embedding_loads_with_allow_pickle(models, library):
    lib = EmbeddingLibrary(library, allow_pickle=True)
    cond = models["sd1"].encode_prompt("embedding:pickled", reading=PromptReading(embeddings=lib))
    assert cond.embeds.shape == (1, 77, 16)


def test_prompts_of_different_lengths_batch_by_repetition(models):
    model = models["sd1"]
    long_prompt = " ".join(WORDS[k % len(WORDS)] for k in range(100))
    cond = model.encode_prompt(long_prompt, "blurry")
    short = model.encode_prompt("blurry").embeds
    assert cond.embeds.shape == cond.negative_embeds.shape == (1, 154, 16)
    torch.testing.assert_close(cond.negative_embeds, torch.cat([short, short], dim=1))
    # repeating the keys and values leaves cross-attention unchanged: the network's output is the same
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    sigma = torch.full((1,), 2.0)
    denoise = model.denoiser(model.encode_prompt("blurry", "blurry"), 1.0)
    repeated = model.denoiser(model.encode_prompt(long_prompt, "blurry"), 1.0)
    swapped = type(cond)(cond.negative_embeds, cond.negative_embeds)
    torch.testing.assert_close(model.denoiser(swapped, 1.0)(x, sigma), denoise(x, sigma),
                               rtol=1e-5, atol=1e-5)
    assert not torch.allclose(repeated(x, sigma), denoise(x, sigma))
