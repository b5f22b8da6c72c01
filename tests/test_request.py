"""Requests: every option checked once, in the option group that owns it, with a one-line message; the
settings record comes from the request; keywords route to their groups by one rule."""

import numpy as np
import pytest
from PIL import Image

from diffdiff.errors import DiffdiffError
from diffdiff.request import (
    EditRequest,
    GenerateRequest,
    Output,
    Sampling,
    Tiling,
    UpscaleRequest,
    keywords_for,
)
from diffdiff.request.parts import MAX_SCHEDULE_STEPS

IMAGE = Image.new("RGB", (40, 24), (10, 20, 30))


@pytest.mark.parametrize("options, message", [
    ({"sampler": "eulr"}, "euler_ancestral"),
    ({"scheduler": "fast"}, "karras"),
    ({"steps": 0}, "steps must be an integer in [1, 1000]"),
    ({"steps": 2.5}, "steps must be an integer"),
    ({"cfg": float("nan")}, "cfg must lie in"),
    ({"denoise": 0}, "denoise must lie in (0, 1]"),
    ({"denoise": 1e-300}, "noise levels"),
    ({"batch": 0}, "batch must be an integer in [1, 64]"),
    ({"seed": -1}, "seed must be an integer"),
    ({"gate": "hard"}, "exact, comfy, mask"),
    ({"gate_strength": 0}, "gate strength must lie in (0, 1]"),
    ({"invert_map": "yes"}, "invert_map must be True or False"),
    ({"tile": 60}, "multiple of 8"),
    ({"vae_tile": "big"}, "vae tile must be auto, off or a size"),
    ({"blend": "average"}, "mixture, multidiffusion, spot"),
    ({"overlap": 12}, "multiple of 8"),
    ({"tile": 64, "overlap": 64}, "smaller than the tile size"),
    ({"alpha": True, "composite": False}, "drop --no-composite"),
    ({"steps_count": 3}, "unknown option(s) steps_count; valid options: allow_pickle, alpha, batch"),
])
def test_bad_options_fail_with_one_line_before_any_image_is_read(options, message):
    with pytest.raises(DiffdiffError, match=None) as caught:
        EditRequest.build("no-such-image.png", 0.5, "x", **options)  # the options fail first
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_absurd_denoise_is_refused_before_a_schedule_is_built():
    Sampling(steps=10, denoise=10 / MAX_SCHEDULE_STEPS)  # exactly at the bound: fine
    for denoise in (1e-9, 1e-6, 1e-300):
        with pytest.raises(DiffdiffError, match="raise denoise or use fewer steps"):
            Sampling(steps=20, denoise=denoise)


def test_every_recorded_seed_is_one_the_seed_option_accepts():
    Sampling(seed=2**63 - 2, batch=2)
    with pytest.raises(DiffdiffError, match="seed must be an integer in"):
        Sampling(seed=2**63 - 1, batch=2)  # item 1 would record seed 2^63, which --seed refuses


@pytest.mark.parametrize("prompt, message", [
    (None, "prompt must be text; got NoneType"),
    (["a", "b"], "prompt must be text; got list"),
    ("bad \udcff bytes", "prompt is not valid UTF-8"),  # how Python hands over an invalid UTF-8 argument
])
def test_prompts_are_checked_up_front(prompt, message):
    with pytest.raises(DiffdiffError, match="prompt"):
        EditRequest.build(IMAGE, 0.5, prompt)
    try:
        GenerateRequest.build(prompt)
    except DiffdiffError as error:
        assert message in str(error)
    else:
        raise AssertionError("no error")


def test_the_map_is_checked_and_brought_to_the_image_size_once():
    half = np.tile(np.linspace(0, 1, 20, dtype=np.float32), (12, 1))
    request = EditRequest.build(IMAGE, half, "x", invert_map=True)
    assert request.strength.values.shape == (24, 40) and request.strength.values.dtype == np.float32
    assert request.strength.values[:, 0].min() > 0.95 and request.strength.description == "array (inverted)"
    with pytest.raises(DiffdiffError, match="aspect"):
        EditRequest.build(IMAGE, np.zeros((24, 24)), "x")
    with pytest.raises(DiffdiffError, match="NaN"):
        EditRequest.build(IMAGE, np.full((24, 40), np.nan), "x")
    with pytest.raises(DiffdiffError, match="at least 8 pixels"):
        EditRequest.build(Image.new("RGB", (4, 30)), 0.5, "x")


def test_the_record_holds_every_option_under_its_keyword():
    request = EditRequest.build(IMAGE, 0.25, "a lake", negative="fog", steps=3, gate="comfy", vae_tile=128,
                                composite=False)
    record = request.record()
    assert record["mode"] == "edit" and record["map"] == "constant 0.25" and record["image"] == "image"
    assert record["gate"] == "comfy" and record["vae_tile"] == 128 and record["composite"] is False
    assert set(keywords_for(*EditRequest.OPTION_GROUPS)) <= set(record)
    generated = GenerateRequest.build("a lake", width=64, height=40, tile="off").record()
    assert generated["mode"] == "generate" and "denoise" not in generated and "gate" not in generated
    with pytest.raises(DiffdiffError, match="denoise applies to edits"):
        GenerateRequest.build("a lake", denoise=0.5)


def test_option_groups_are_frozen_and_normalise_their_values():
    tiling = Tiling(tile="512", overlap=64)
    assert tiling.tile == 512 and tiling.vae_tile == "auto"
    with pytest.raises(AttributeError):
        tiling.tile = 64
    assert Output().composite is True and Sampling(cfg=5).cfg == 5.0


def test_upscale_options(tmp_path):
    with pytest.raises(DiffdiffError, match="not both"):
        UpscaleRequest.build(IMAGE, strength=0.3, strength_from="detail")
    with pytest.raises(DiffdiffError, match="needs --map FILE"):
        UpscaleRequest.build(IMAGE, strength_from="map")
    with pytest.raises(DiffdiffError, match="only with --strength-from map"):
        UpscaleRequest.build(IMAGE, map="m.png")
    with pytest.raises(DiffdiffError, match="must not exceed"):
        UpscaleRequest.build(IMAGE, strength_from="detail", min_strength=0.6, max_strength=0.2)
    with pytest.raises(DiffdiffError, match="scale must lie in"):
        UpscaleRequest.build(IMAGE, scale=0)
    request = UpscaleRequest.build(IMAGE, scale=1.5)
    assert request.enlarge.strength == 0.35 and request.enlarge.target_size(IMAGE.size) == (60, 36)
    assert request.record(0.35)["mode"] == "upscale" and request.record(0.35)["width"] == 60
