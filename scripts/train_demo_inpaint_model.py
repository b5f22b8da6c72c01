"""Fine-tune the demo model into a 9-channel inpainting checkpoint, as SD1.5-inpainting was made from SD1.5.

Loads `diffdiff/demo/demo-sd1.safetensors`, widens its UNet's conv_in from 4 to 9 input channels (the new
weights zero: latent, mask, masked-image latent — diffusers' StableDiffusionInpaint convention), renders and
encodes procedural training scenes with the demo VAE, and trains the UNet on eps prediction with random
holes (rectangles, ellipses, brush strokes, the scenes' house / lake / trees / sky / ground regions, 10 % the
whole window, 10 % none); the VAE and text encoder stay frozen and are written unchanged. The EMA weights
go to `diffdiff/demo/demo-sd1-inpaint.safetensors` (fp16, the SD1 single-file layout). See
`diffdiff/demo/inpaint_training.py` for the input convention. Deterministic for a seed and thread count;
`--tiny` is a seconds-long smoke run.

Usage: .venv/bin/python scripts/train_demo_inpaint_model.py [-o FILE] [--steps N] [--seed N] [--threads N]
       [--tiny] [--log FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# scenes encoded once: (count, side in px, share of the batches), as the demo trainer's UNet stage
SCENES = ((600, 256, 0.7), (120, 512, 0.3))
TINY_SCENES = ((6, 64, 0.5), (2, 128, 0.5))


def encode_scenes(vae, count: int, side: int, first_seed: int, progress, chunk: int = 50):
    """Latents (× scaling factor) with the scenes' region grids as extra channels, and the scenes stripped
    to their attributes (what the captions need), rendered and encoded `chunk` at a time."""
    import numpy as np
    import torch

    from diffdiff.demo.data import scene_pool, to_tensor
    from diffdiff.demo.inpaint_training import region_grid
    from diffdiff.demo.scenes import Scene
    from diffdiff.demo.training import encode_means

    windows, kept = [], []
    for start in range(0, count, chunk):
        scenes = scene_pool(min(chunk, count - start), first_seed + start, (side,), progress)
        latents = encode_means(vae, to_tensor([s.pixels for s in scenes]), batch=16)
        latents = latents * vae.config.scaling_factor
        regions = torch.from_numpy(np.stack([region_grid(s) for s in scenes]))
        windows.append(torch.cat([latents, regions], dim=1))
        kept += [Scene(np.zeros((0, 0, 3), np.uint8), s.attributes) for s in scenes]
    return torch.cat(windows), kept


def main(argv: list[str] | None = None) -> int:
    import torch
    from tqdm import tqdm

    from diffdiff.demo import DEMO_INPAINT_MODEL, DEMO_MODEL
    from diffdiff.demo.data import LatentBatches
    from diffdiff.demo.inpaint_training import InpaintBatches, expand_conv_in, grey_latent, train_inpainting
    from diffdiff.models import load_model
    from diffdiff.models.tiny import checkpoint_state, write_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=str(DEMO_INPAINT_MODEL),
                        help="the .safetensors to write")
    parser.add_argument("--base", default=str(DEMO_MODEL), help="the demo model to start from")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    parser.add_argument("--conv-in-lr", type=float, default=5.0,
                        help="learning-rate multiplier of the widened first convolution")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (results depend on it; on a shared 2-core machine two threads"
                             " stall each other, one runs steadily)")
    parser.add_argument("--tiny", action="store_true", help="a few steps on tiny sizes (a smoke test)")
    parser.add_argument("--log", help="write the settings, losses and timings as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.tiny:
        args.steps, args.batch = 3, 2
    scene_plan, side = (TINY_SCENES, 8) if args.tiny else (SCENES, 32)
    bar = dict(file=sys.stderr, dynamic_ncols=True, disable=None)
    started = time.perf_counter()
    timings = {}

    model = load_model(args.base, device="cpu", dtype="fp32")
    vae, text_encoder, tokenizer = model.vae.eval(), model.text_encoders[0].eval(), model.tokenizers[0]
    unet = expand_conv_in(model.unet)
    grey = grey_latent(vae)

    groups, first_seed = [], args.seed * 1_000_000 + 700_000  # training seeds (< 10,000,000), unlike tests'
    with torch.no_grad(), tqdm(total=sum(c for c, _, _ in scene_plan), desc="scenes", **bar) as progress:
        for count, size, share in scene_plan:
            windows, scenes = encode_scenes(vae, count, size, first_seed, progress)
            first_seed += count
            groups.append((windows, scenes, share))
    timings["scenes_s"] = time.perf_counter() - started
    batches = InpaintBatches(LatentBatches(groups, side, args.batch, seed=args.seed), seed=args.seed)
    with tqdm(total=args.steps, desc="unet", **bar) as progress:
        ema_unet, losses = train_inpainting(unet, text_encoder, tokenizer, batches, grey, steps=args.steps,
                                            lr=args.lr, seed=args.seed, conv_in_lr=args.conv_in_lr,
                                            warmup=min(100, args.steps // 10), progress=progress)
    timings["train_s"] = time.perf_counter() - started - timings["scenes_s"]
    timings["total_s"] = time.perf_counter() - started

    components = {"unet": ema_unet, "vae": vae, "text_encoder": text_encoder}
    state, metadata = checkpoint_state(components, "sd1", torch.float16)
    path = write_checkpoint(Path(args.output), state, metadata, overwrite=True)
    last = losses[-100:]
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {timings['total_s'] / 60:.1f} min"
          f" (scenes {timings['scenes_s'] / 60:.1f}, training {timings['train_s'] / 60:.1f});"
          f" {args.steps} steps of {args.batch}, final loss"
          f" {sum(last) / len(last):.4f} (mean of the last {len(last)} steps)")
    if args.log:
        settings = {k: v for k, v in vars(args).items() if k != "log"}
        log = {"settings": settings, "scenes": scene_plan, "latent_side": side, "timings": timings,
               "grey_latent": grey.tolist(), "losses": losses}
        Path(args.log).write_text(json.dumps(log))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
