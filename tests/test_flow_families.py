"""The flow families end to end: tiny SD3 / Flux dev, schnell, Fill / Z-Image models in every form, loaded
through the real loading code and edited through the CLI with a strength map."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from diffdiff.cli.main import main
from diffdiff.errors import DiffdiffError
from diffdiff.models import load_model, make_tiny_model
from diffdiff.models.tiny_flow import write_tiny_flow_parts

FLOW = ("sd3", "flux", "flux-schnell", "flux-fill", "z-image")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """{family: {"folder", "file", "parts"}} and a test picture with its map."""
    root = tmp_path_factory.mktemp("flow")
    models = {family: {"folder": make_tiny_model(root / family, family),
                       "file": make_tiny_model(root / "files", family, single_file=True),
                       "parts": write_tiny_flow_parts(root / f"{family}-parts", family)}
              for family in FLOW}
    rng = np.random.default_rng(3)
    image = root / "image.png"
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(image)
    strength = np.zeros((40, 56), np.uint8)
    strength[8:32, 24:] = np.linspace(60, 255, 32).astype(np.uint8)
    strength_path = root / "map.png"
    Image.fromarray(strength).save(strength_path)
    return {"models": models, "image": image, "map": strength_path, "strength": strength, "root": root}


def _denoised(model, seed: int = 0):
    """x0 of one denoiser call of `model` on a fixed latent, prompt and σ (fp32, CPU)."""
    generator = torch.Generator().manual_seed(seed)
    latent = torch.randn(1, model.latent_channels, 6, 8, generator=generator)
    conditioning = model.encode_prompt("a red boat", "blurry", width=64, height=48)
    denoiser = model.denoiser(conditioning, cfg=2.0)
    extra = {}
    if model.inpainting:
        masked = torch.randn(1, 16, 6, 8, generator=generator)
        extra["concat"] = torch.cat([torch.ones(1, 1, 6, 8), masked], 1)
    return denoiser(latent, torch.tensor([0.6]), **extra)


@pytest.mark.parametrize("family", FLOW)
def test_folder_file_and_parts_load_the_same_model(tiny, family):
    """The diffusers folder goes through from_pretrained; the single file and the separate parts through the
    original layouts, our inverse writers and the converters: all three must compute the same x0."""
    paths = tiny["models"][family]
    folder = load_model(paths["folder"], device="cpu", dtype="fp32")
    single = load_model(paths["file"], device="cpu", dtype="fp32")
    parts = load_model(paths["parts"]["transformer"], vae=paths["parts"]["vae"],
                       text_encoders=paths["parts"]["text_encoders"], device="cpu", dtype="fp32")
    assert folder.family == single.family == parts.family == family
    reference = _denoised(folder)
    assert torch.isfinite(reference).all()
    torch.testing.assert_close(_denoised(single), reference, rtol=0, atol=1e-5)
    torch.testing.assert_close(_denoised(parts), reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", FLOW)
def test_cli_edit_keeps_map_zero_pixels_and_names_the_family(tiny, family, tmp_path, capsys):
    out = tmp_path / "out.png"
    model = tiny["models"][family]["file"]
    argv = ["edit", str(tiny["image"]), "--map", str(tiny["map"]), "--model", str(model),
            "--prompt", "a lake at dawn", "--steps", "3", "-o", str(out), "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    source = np.asarray(Image.open(tiny["image"]).convert("RGB"))
    result = Image.open(out)
    pixels = np.asarray(result.convert("RGB"))
    keep = tiny["strength"] == 0
    assert np.array_equal(pixels[keep], source[keep])
    assert not np.array_equal(pixels[~keep], source[~keep])
    settings = json.loads(result.text["diffdiff"])
    assert settings["family"] == family
    defaults = {"sd3": 4.5}.get(family, 1.0)
    assert settings["cfg"] == defaults and settings["steps"] == 3


def test_transformer_only_file_needs_its_text_encoders_and_vae(tiny):
    parts = tiny["models"]["flux"]["parts"]
    with pytest.raises(DiffdiffError, match="t5"):
        load_model(parts["transformer"], vae=parts["vae"], text_encoders=parts["text_encoders"][:1],
                   device="cpu")
    with pytest.raises(DiffdiffError, match="--vae"):
        load_model(parts["transformer"], text_encoders=parts["text_encoders"], device="cpu")


@pytest.mark.parametrize("family", ["sd3", "flux", "z-image"])
def test_a_missing_transformer_tensor_is_refused_by_name(tiny, family, tmp_path):
    state = load_file(str(tiny["models"][family]["file"]))
    victim = sorted(key for key in state if key.startswith("model.diffusion_model.") and "weight" in key)[3]
    del state[victim]
    broken = tmp_path / "broken.safetensors"
    save_file(state, str(broken))
    with pytest.raises(DiffdiffError, match="lacks"):
        load_model(broken, device="cpu")


def test_a_missing_text_encoder_tensor_is_refused_by_name(tiny, tmp_path):
    parts = tiny["models"]["z-image"]["parts"]
    encoder = load_file(str(parts["text_encoders"][0]))
    victim = sorted(key for key in encoder if "layers.1." in key)[0]
    del encoder[victim]
    broken = tmp_path / "qwen.safetensors"
    save_file(encoder, str(broken))
    with pytest.raises(DiffdiffError, match=victim.split(".")[-2]):
        load_model(parts["transformer"], vae=parts["vae"], text_encoders=[broken], device="cpu")


def test_family_override_must_name_the_same_network(tiny):
    path = tiny["models"]["flux"]["file"]
    assert load_model(path, family="flux-schnell", device="cpu").family == "flux-schnell"
    with pytest.raises(DiffdiffError, match="does not match"):
        load_model(path, family="sd3", device="cpu")
    with pytest.raises(DiffdiffError, match="does not match"):
        load_model(path, family="sd1", device="cpu")


def test_loras_are_refused_for_flow_families(tiny, tmp_path, capsys):
    lora = tmp_path / "style.safetensors"
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(1, 1)}, str(lora))
    argv = ["edit", str(tiny["image"]), "--map", str(tiny["map"]), "--model",
            str(tiny["models"]["flux-schnell"]["file"]), "--prompt", "a lake <lora:style:1>", "--lora-dir",
            str(tmp_path), "--steps", "1", "-o", str(tmp_path / "out.png"), "--quiet"]
    assert main(argv) == 2
    assert "not supported for the flux-schnell family" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["flux-fill", "z-image"])
def test_python_api_edits_and_generates_from_a_folder(tiny, family):
    from diffdiff.pipeline import edit, generate

    model = load_model(tiny["models"][family]["folder"], device="cpu")
    stats = {}
    result = edit(str(tiny["image"]), str(tiny["map"]), "a lake", model=model, steps=2, stats=stats)
    pixels = np.asarray(result.images[0].convert("RGB"))
    source = np.asarray(Image.open(tiny["image"]).convert("RGB"))
    keep = tiny["strength"] == 0
    assert np.array_equal(pixels[keep], source[keep])
    assert result.settings["family"] == family and stats["steps"] == 2
    assert result.settings.get("inpainting_model", False) == (family == "flux-fill")
    generated = generate("a lake", model=model, width=40, height=24, steps=2)
    assert generated.images[0].size == (40, 24)


def test_skip_layer_guidance_follows_comfyuis_formula_in_its_window(tiny):
    """x0 + scale·(x0_cond − x0_cond with blocks skipped) for σ in (σ at 15 %, σ at 1 %], else x0 unchanged;
    the skipped branch computed here straight from the transformer."""
    from diffdiff.models.networks import SD3Network

    model = load_model(tiny["models"]["sd3"]["folder"], device="cpu", dtype="fp32")
    conditioning = model.encode_prompt("a red boat", "blurry")
    plain = model.denoiser(conditioning, cfg=2.0)
    guided = model.denoiser(conditioning, cfg=2.0, skip_layer_guidance=(3.0, (1,)))
    ms = model.model_sampling
    inside, outside = ms.percent_to_sigma(0.05), ms.percent_to_sigma(0.5)
    x = torch.randn(1, 16, 6, 8, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([inside])
    kwargs = conditioning.network_kwargs()
    with torch.no_grad():
        output = SD3Network(model.network)(ms.calculate_input(sigma, x), ms.timestep(sigma), skip_layers=[1],
                                           **kwargs)
        skipped = ms.calculate_denoised(sigma, output, x)
        cond = plain.inner(x, sigma, **kwargs)
    expected = plain(x, sigma) + 3.0 * (cond - skipped)
    assert (cond - skipped).abs().max() > 1e-4  # skipping the block changes the prediction
    torch.testing.assert_close(guided(x, sigma), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(guided(x, torch.tensor([outside])), plain(x, torch.tensor([outside])),
                               rtol=0, atol=0)
    with pytest.raises(DiffdiffError, match="SD3"):
        flux = load_model(tiny["models"]["flux"]["file"], device="cpu")
        flux.denoiser(conditioning, 1.0, skip_layer_guidance=(3.0, (1,)))


def test_slg_flags_reach_the_settings(tiny, tmp_path, capsys):
    out = tmp_path / "out.png"
    model = tiny["models"]["sd3"]["file"]
    argv = ["edit", str(tiny["image"]), "--map", str(tiny["map"]), "--model", str(model),
            "--prompt", "a lake", "--steps", "3", "--slg", "2.5", "--quiet",
            "--slg-layers", "0, 1", "-o", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    settings = json.loads(Image.open(out).text["diffdiff"])
    assert settings["slg"] == 2.5 and settings["slg_layers"] == [0, 1]
    bad = argv[:-4] + ["--slg-layers", "seven", "-o", str(tmp_path / "bad.png")]
    assert "--slg" in bad and "0, 1" not in bad
    assert main(bad) == 2
    assert "slg layers" in capsys.readouterr().err


def test_a_batch_runs_a_transformer_only_flux_with_its_parts(tiny, tmp_path, capsys):
    parts = tiny["models"]["flux-schnell"]["parts"]
    manifest = tmp_path / "jobs.jsonl"
    lines = [{"image": str(tiny["image"]), "map": str(tiny["map"]), "prompt": prompt, "seed": seed}
             for seed, prompt in enumerate(("a boat", "a lake"))]
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    argv = ["batch", str(manifest), "-o", str(tmp_path / "out"), "--model", str(parts["transformer"]),
            "--vae", str(parts["vae"]), "--quiet"]
    for encoder in parts["text_encoders"]:
        argv += ["--text-encoder", str(encoder)]
    assert main(argv) == 0, capsys.readouterr().err
    written = sorted((tmp_path / "out").glob("*.png"))
    assert len(written) == 2
    settings = [json.loads(Image.open(path).text["diffdiff"]) for path in written]
    assert {(item["family"], item["steps"]) for item in settings} == {("flux-schnell", 4)}
