"""Train diffdiff's demo model from scratch on procedural landscapes and write one SD1 `.safetensors`.

Stages (each with a progress bar): render a pool of scenes and train the VAE on crops of them and of the
scikit-image sample photos; render and encode the diffusion training scenes; train the UNet and text encoder;
write the EMA weights in the A1111/SD1 single-file layout (fp16 by default) that `diffdiff edit --model`
reads. Deterministic for a seed and thread count. The defaults are the shipped model's
(`diffdiff/demo/demo-sd1.safetensors`, see docs/demo-model.md); `--tiny` is a seconds-long smoke run.

Usage: .venv/bin/python scripts/train_demo_model.py [-o FILE] [--seed N] [--threads N] [--tiny]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

TINY = dict(pool_scenes=8, vae_steps=3, vae_batch=2, vae_crop=32, latent_scenes=((6, 64, 0.5), (2, 128, 0.5)),
            latent_side=8, unet_steps=3, unet_batch=2)


def main(argv: list[str] | None = None) -> int:
    import torch
    from tqdm import tqdm

    from diffdiff.demo import DEMO_MODEL
    from diffdiff.demo.data import PHOTOS, LatentBatches, VaeBatches, photo, scene_pool, to_tensor
    from diffdiff.demo.networks import build_networks
    from diffdiff.demo.training import TrainingPlan, encode_means, scaling_factor, train_diffusion, train_vae
    from diffdiff.models.tiny import checkpoint_state, write_checkpoint
    from diffdiff.models.tokenizer import load_tokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=str(DEMO_MODEL), help="the .safetensors to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (results depend on it)")
    parser.add_argument("--tiny", action="store_true", help="a few steps on tiny sizes (a smoke test)")
    parser.add_argument("--fp32", action="store_true", help="write fp32 weights instead of fp16")
    parser.add_argument("--no-photos", action="store_true", help="train the VAE on scenes only")
    parser.add_argument("--log", help="write the settings, losses and timings as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    plan = TrainingPlan(seed=args.seed, **(TINY if args.tiny else {}))
    bar = dict(file=sys.stderr, dynamic_ncols=True, disable=None)
    started = time.perf_counter()
    timings = {}

    networks = build_networks(plan.seed)
    with tqdm(total=plan.pool_scenes, desc="vae scenes", **bar) as progress:
        pool = scene_pool(plan.pool_scenes, plan.seed * 1_000_000, progress=progress)
    photos = [] if args.no_photos or args.tiny else [photo(name) for name in PHOTOS]
    batches = VaeBatches(pool, photos, plan.vae_crop, plan.vae_batch, seed=plan.seed)
    with tqdm(total=plan.vae_steps, desc="vae", **bar) as progress:
        vae_losses = train_vae(networks["vae"], batches, plan, progress)
    timings["vae_s"] = time.perf_counter() - started

    groups, first_seed = [], plan.seed * 1_000_000 + 500_000
    with tqdm(total=sum(count for count, _, _ in plan.latent_scenes), desc="unet scenes", **bar) as progress:
        for count, side, share in plan.latent_scenes:
            scenes = scene_pool(count, first_seed, (side,), progress)
            first_seed += count
            groups.append((encode_means(networks["vae"], to_tensor([s.pixels for s in scenes]), batch=16),
                           scenes, share))
    factor = scaling_factor(torch.cat([raw.flatten() for raw, _, _ in groups]))
    networks["vae"].register_to_config(scaling_factor=factor)
    groups = [(raw * factor, scenes, share) for raw, scenes, share in groups]
    latent_batches = LatentBatches(groups, plan.latent_side, plan.unet_batch, seed=plan.seed)
    with tqdm(total=plan.unet_steps, desc="unet", **bar) as progress:
        trained = train_diffusion(networks["unet"], networks["text_encoder"], load_tokenizer("clip"),
                                  latent_batches, plan, progress)
    unet, text_encoder, unet_losses = trained
    timings["total_s"] = time.perf_counter() - started

    components = {"unet": unet, "vae": networks["vae"], "text_encoder": text_encoder}
    state, metadata = checkpoint_state(components, "sd1", None if args.fp32 else torch.float16)
    path = write_checkpoint(Path(args.output), state, metadata, overwrite=True)
    last = unet_losses[-100:]
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {timings['total_s'] / 60:.1f} min;"
          f" vae loss {vae_losses[-1]:.4f}, unet loss {sum(last) / len(last):.4f},"
          f" latent scaling factor {factor:.4f}")
    if args.log:
        log = {"plan": dataclasses.asdict(plan), "threads": args.threads, "timings": timings,
               "vae_losses": vae_losses, "unet_losses": unet_losses, "scaling_factor": factor}
        Path(args.log).write_text(json.dumps(log))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
