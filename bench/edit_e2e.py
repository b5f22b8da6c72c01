"""End-to-end edit benchmark: one 512² edit with a full-size SD1.5 UNet (random weights) — where does time go?

The UNet and the CLIP text encoder are built at full size from the configs shipped in
diffdiff/models/configs/sd1 (random weights; no download). The VAE is the tiny one by default
(`--full-vae` builds the real-size one). The script times every UNet forward and reports the share of
wall time the edit spends outside the network (goal: ≤ 2 %), the VAE and text-encoder time, and peak
memory. Usage: `python bench/edit_e2e.py [--steps 4] [--size 512] [--full-vae] [--device cpu]`.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "diffdiff" / "models" / "configs" / "sd1"


def _read_config(component: str) -> dict:
    return json.loads((CONFIGS / component / "config.json").read_text())


def build_model(full_vae: bool, device: str):
    """A LoadedModel with a full-size SD1.5 UNet and text encoder (random weights)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from diffdiff.models.loaded import LoadedModel
    from diffdiff.models.precision import Capabilities, choose_precision
    from diffdiff.models.tiny import tiny_configs
    from diffdiff.models.tokenizer import load_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(_read_config("unet")).eval()
    text_encoder = CLIPTextModel(CLIPTextConfig.from_dict(_read_config("text_encoder"))).eval()
    vae_config = _read_config("vae") if full_vae else tiny_configs("sd1")["vae"]
    vae = AutoencoderKL.from_config(vae_config).eval()
    return LoadedModel(family="sd1", network=unet, vae=vae, text_encoders=[text_encoder],
                       tokenizers=[load_tokenizer("clip")], device=torch.device(device),
                       precision=choose_precision(Capabilities(torch.device(device).type), "fp32"),
                       name="random-sd15")


class Stopwatch:
    """Accumulates the time spent inside calls of wrapped functions or modules."""

    def __init__(self, device: str):
        self.seconds = 0.0
        self.calls = 0
        self._cuda = device.startswith("cuda")

    def _sync(self):
        if self._cuda:
            torch.cuda.synchronize()

    def wrap(self, function):
        def timed(*args, **kwargs):
            self._sync()
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self._sync()
                self.seconds += time.perf_counter() - start
                self.calls += 1

        return timed


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--full-vae", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    from PIL import Image

    from diffdiff.pipeline import edit

    started = time.perf_counter()
    model = build_model(args.full_vae, args.device)
    built = time.perf_counter() - started
    rss_after_build = peak_rss_gib()

    network, vae, text = Stopwatch(args.device), Stopwatch(args.device), Stopwatch(args.device)
    model.unet.forward = network.wrap(model.unet.forward)
    model.vae_codec.encode = vae.wrap(model.vae_codec.encode)
    model.vae_codec.decode = vae.wrap(model.vae_codec.decode)
    model.encode_prompt = text.wrap(model.encode_prompt)

    image = Image.open(ROOT / "examples" / "demo.png").convert("RGB").resize((args.size, args.size))
    strength = Image.open(ROOT / "examples" / "gradient-map.png").resize((args.size, args.size))
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    stats: dict = {}
    start = time.perf_counter()
    edit(image, strength, "a watercolour landscape", model=model, steps=args.steps, cfg=args.cfg, seed=1,
         tile="off", vae_tile="off", stats=stats)
    wall = time.perf_counter() - start
    outside = wall - network.seconds

    print(f"edit {args.size}x{args.size}, {args.steps} steps, cfg {args.cfg}, device {args.device}, "
          f"torch threads {torch.get_num_threads()}, VAE {'full' if args.full_vae else 'tiny'}")
    print(f"model build (random init): {built:.1f} s")
    print(f"edit wall time:            {wall:.2f} s")
    each = network.seconds / max(network.calls, 1)
    print(f"  UNet forwards:           {network.seconds:.2f} s in {network.calls} calls "
          f"({each:.2f} s each; network calls counted by the run {stats['network_calls']})")
    print(f"  VAE encode+decode:       {vae.seconds:.2f} s")
    print(f"  text encoder:            {text.seconds:.2f} s")
    print(f"  outside the network:     {outside:.2f} s = {100 * outside / wall:.2f} % of the edit "
          "(goal <= 2 %)")
    print(f"  outside network and VAE: {outside - vae.seconds:.2f} s = "
          f"{100 * (outside - vae.seconds) / wall:.2f} %")
    glue = outside - vae.seconds - text.seconds
    print(f"  pipeline glue (no UNet, VAE or text encoder): {glue:.2f} s = {100 * glue / wall:.2f} %")
    print(f"peak RSS: {peak_rss_gib():.2f} GiB (after model build {rss_after_build:.2f} GiB)")
    if args.device.startswith("cuda"):
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 1024**3:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
