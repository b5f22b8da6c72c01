"""Command-line pieces shared by the verbs that run a model (edit, generate, upscale): the option groups
of a request as flags, turning parsed flags into request keywords, the model options, the early checks of
every file the run reads or writes, and writing the result PNG(s) plus the optional --stats JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from diffdiff.models.families import FAMILIES, PREDICTIONS
from diffdiff.tiles import BLENDS


class HelpFormatter(argparse.HelpFormatter):
    """--help shows each option's default where it has a meaningful one (not for flags, None or "")."""

    def _get_help_string(self, action):
        default = action.default
        shown = default not in (None, "", argparse.SUPPRESS) and not isinstance(default, bool)
        if shown and "%(default)" not in (action.help or "") and action.option_strings:
            return f"{action.help} (default: %(default)s)"
        return action.help


def add_sampling_options(parser: argparse.ArgumentParser, *, denoise: bool = False, batch: bool = True):
    group = parser.add_argument_group("sampling")
    group.add_argument("--sampler", help="sampler name (see `diffdiff samplers`; default: the model "
                       "family's, euler for SD1/SD2/SDXL)")
    group.add_argument("--scheduler", help="scheduler name (see `diffdiff samplers`; default: the "
                       "family's, normal for SD1/SD2/SDXL)")
    group.add_argument("--steps", type=int, help="sampler steps (default: the family's, 20 for SD1/SD2/SDXL)")
    group.add_argument("--cfg", type=float, help="classifier-free guidance scale (default: the family's, "
                       "7 for SD1/SD2/SDXL, 1 = off for Flux and Z-Image)")
    group.add_argument("--guidance", type=float, help="distilled guidance of networks that embed it "
                       "(default: Flux dev 3.5, Flux Fill 30)")
    group.add_argument("--slg", type=float, default=0.0, metavar="SCALE",
                       help="SD3/SD3.5 skip-layer guidance scale (0 = off; ComfyUI's node uses 3)")
    group.add_argument("--slg-layers", default="7,8,9", metavar="N,N",
                       help="the MMDiT blocks skip-layer guidance skips (default 7,8,9)")
    group.add_argument("--seed", type=int, default=0, help="noise seed (image k of a batch uses seed + k)")
    if denoise:
        group.add_argument("--denoise", type=float, default=1.0, help="overall strength scale in (0, 1]")
    if batch:
        group.add_argument("--batch", type=int, default=1, help="images to make; image k uses seed + k")


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    from diffdiff.request import Output
    from diffdiff.sampling import GATE_MODES, STRENGTH_LEVELS

    gate = parser.add_argument_group("map")
    gate.add_argument("--gate", default="exact",
                      help=f"how the map gates the sampler: {' | '.join(GATE_MODES)}")
    gate.add_argument("--gate-strength", type=float, default=1.0, help="soft gate strength in (0, 1]")
    gate.add_argument("--invert-map", action="store_true", help="use 1 - map (white = keep)")
    gate.add_argument("--strength-levels", help=f"{' | '.join(STRENGTH_LEVELS)}: a pixel between two steps' "
                      "thresholds enters part-way (continuous, the exact gate's default) or waits for the "
                      "next step (steps)")
    gate.add_argument("--no-composite", dest="composite", action="store_false",
                      help="keep the raw decoded image (no laying back of unchanged original pixels)")
    gate.add_argument("--alpha", action="store_true",
                      help="write the generated image with the composite opacity as its alpha channel")
    soft = dict(type=float, default=argparse.SUPPRESS)
    output = Output()
    gate.add_argument("--difference-threshold", **soft,
                      help="composite: latent RMS change at which new pixels get half the weight "
                      f"(default {output.difference_threshold:g})")
    gate.add_argument("--difference-contrast", **soft,
                      help="composite: steepness of that transition "
                      f"(default {output.difference_contrast:g})")
    gate.add_argument("--mask-influence", **soft,
                      help="composite: share of the opacity that follows the map rather than the change "
                      f"(default {output.mask_influence:g})")


def add_region_options(parser: argparse.ArgumentParser) -> None:
    from diffdiff.regions import FILL_MODES
    from diffdiff.request.parts import CROP_MODES, INPAINT_MASKS, Region

    group = parser.add_argument_group("region")
    group.add_argument("--crop", default=argparse.SUPPRESS,
                       help=f"{' | '.join(CROP_MODES)}: edit crops around the map's regions at the model's "
                       "native size and stitch them back (auto: when they cover at most half of an image "
                       "larger than that)")
    group.add_argument("--context", type=int, default=argparse.SUPPRESS,
                       help="pixels of surroundings kept around each cropped region "
                       "(default half the region's longer side)")
    group.add_argument("--fill", default=argparse.SUPPRESS,
                       help=f"pre-fill where the map is at least --fill-threshold: {' | '.join(FILL_MODES)}")
    group.add_argument("--fill-threshold", type=float, default=argparse.SUPPRESS,
                       help="map value from which pixels are pre-filled "
                       f"(default {Region().fill_threshold:g})")
    group.add_argument("--inpaint-mask", default=argparse.SUPPRESS,
                       help=f"inpainting checkpoints: {' | '.join(INPAINT_MASKS)} (the mask input is the "
                       "map's non-zero area, or follows the gate step by step)")


def add_tiling_options(parser: argparse.ArgumentParser, *, tile_help: str):
    group = parser.add_argument_group("tiles")
    group.add_argument("--tile", default="auto", help=tile_help)
    group.add_argument("--overlap", type=int, help="network tile overlap in pixels (default a quarter tile)")
    group.add_argument("--blend", default="mixture", help=f"tile blend: {' | '.join(BLENDS)}")
    group.add_argument("--tile-batch", type=int, default=4, help="tiles evaluated per network call")
    group.add_argument("--vae-tile", default="auto",
                       help="VAE tile size in pixels (multiple of 8), auto (tile above about a megapixel) "
                            "or off")


def add_prompt_options(parser: argparse.ArgumentParser) -> None:
    from diffdiff.prompts import STYLES

    group = parser.add_argument_group("prompt")
    group.add_argument("--prompt-style", default="comfy", choices=STYLES,
                       help="how (text:1.2) weights are read: comfy = ComfyUI's (lerp from the empty "
                            "prompt), a1111 = A1111's ((text:w) multiplies, [text] divides, mean restored)")
    group.add_argument("--clip-skip", type=int, metavar="N",
                       help="text encoder layer to use, counted from the top as A1111 does (1 = last; "
                            "default 1, SDXL 2)")
    group.add_argument("--lora", action="append", default=[], metavar="FILE[:WEIGHT[:TEXT_WEIGHT]]",
                       help="apply a LoRA (repeatable); TEXT_WEIGHT defaults to WEIGHT")
    group.add_argument("--lora-dir", metavar="DIR",
                       help="folder where <lora:NAME:WEIGHT> prompt tags are looked up")
    group.add_argument("--embeddings-dir", metavar="DIR",
                       help="folder of textual-inversion embeddings (embedding:NAME; with --prompt-style "
                            "a1111 also the bare file name)")


def add_device_options(group) -> None:
    """--device and --dtype (the edit verbs and the page share them)."""
    from diffdiff.models.precision import SHORT_NAMES

    group.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    group.add_argument("--dtype", choices=tuple(SHORT_NAMES.values()),
                       help="network precision (default: what the device runs natively; the README's "
                            "precision table)")


def add_model_options(parser: argparse.ArgumentParser, *, model_help: str | None = None) -> None:
    """The model flags; `model_help` given, --model is optional with that help (a batch line may name it)."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=model_help is None, metavar="PATH",
                       help=model_help or "checkpoint (.safetensors), diffusers folder, or a hub id in the "
                                          "offline cache")
    group.add_argument("--vae", metavar="PATH", help="a separate VAE file (.safetensors)")
    group.add_argument("--text-encoder", action="append", dest="text_encoders", metavar="PATH",
                       help="a text-encoder file an SD3 / Flux / Z-Image checkpoint lacks (CLIP-L, CLIP-G, "
                            "T5-XXL or Qwen3, recognised by its tensors); repeat for each")
    group.add_argument("--family", choices=FAMILIES,
                       help="override family detection (must agree with the file's text encoders or "
                            "network; e.g. sd2 vs sd2-v, flux vs flux-schnell)")
    group.add_argument("--prediction", choices=PREDICTIONS,
                       help="override the prediction type of an SD2 checkpoint")
    add_device_options(group)
    group.add_argument("--compile", action="store_true",
                       help="run the network through torch.compile (pays off over many images of one size)")
    group.add_argument("--allow-pickle", action="store_true",
                       help="allow loading pickled .ckpt/.bin files (they can run code: trusted files only)")


def add_file_options(parser: argparse.ArgumentParser, *, batch: bool = True) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("-o", "--output", required=True, metavar="OUT.png",
                       help="output PNG" + (" (a batch adds OUT-1.png, OUT-2.png, ...)" if batch else ""))
    group.add_argument("--overwrite", action="store_true", help="replace existing outputs (and --stats)")
    group.add_argument("--stats", metavar="FILE.json", help="write the run's counts and seconds as JSON")
    group.add_argument("--quiet", action="store_true", help="no progress bar and no output listing")


def request_keywords(args, request_type) -> dict:
    """The flags that are keywords of `request_type`'s option groups, as a dict for its `build`."""
    from diffdiff.request import keywords_for

    values = vars(args)
    return {key: values[key] for key in keywords_for(*request_type.OPTION_GROUPS) if key in values}


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def check_files(args, outputs: list[Path], inputs: list) -> None:
    """Before any work: the model, VAE and text encoders exist, the outputs are writable (and new unless
    --overwrite), and --stats obeys the same rule and is none of the run's inputs or outputs."""
    from diffdiff.atomic import CLI_OVERWRITE_HINT, check_writable
    from diffdiff.errors import DiffdiffError
    from diffdiff.models.device import resolve_device
    from diffdiff.models.hub import is_local_path

    model = Path(args.model).expanduser()
    if not model.exists() and is_local_path(args.model):
        raise DiffdiffError(f"model {args.model} not found (give a checkpoint file, a folder or a hub id)")
    if args.vae and not Path(args.vae).expanduser().is_file():
        raise DiffdiffError(f"VAE file {args.vae} not found")
    for encoder in args.text_encoders or ():
        if not Path(encoder).expanduser().is_file():
            raise DiffdiffError(f"text-encoder file {encoder} not found")
    resolve_device(args.device)
    if args.stats:
        stats = Path(args.stats)
        named = (*inputs, args.model, args.vae, *(args.text_encoders or ()))
        others = [*outputs, *(Path(path) for path in named if path)]
        for other in others:
            if _same_file(stats, other):
                raise DiffdiffError(f"--stats {stats} is also one of this run's files ({other}); "
                                    "choose another")
        check_writable(stats, args.overwrite, hint=CLI_OVERWRITE_HINT)


def run_request(args, request, run, inputs: list) -> int:
    """The verbs' common end: check the files (outputs, model, --stats against `inputs`), load the model, run
    `run(request, model, callback=progress)` under a progress bar, and write the results. The stats carry
    the seconds of every phase: import and load here, the run's own, and writing the images."""
    from diffdiff.imageio import check_outputs
    from diffdiff.phases import PhaseClock, phase
    from diffdiff.progress import StepProgress
    from diffdiff.request import with_family_defaults

    outputs = check_outputs(args.output, request.sampling.batch, overwrite=args.overwrite)
    check_files(args, outputs, inputs)
    clock = PhaseClock()
    with clock.measuring():
        with phase("import"):
            import_networks()
        with phase("load"):
            model = load_model_from_args(args)
    request = with_family_defaults(request, model.family)
    with StepProgress(request.sampling.steps, description=args.verb, quiet=args.quiet) as progress:
        result = run(request, model, callback=progress)
    for name, seconds in result.stats.get("phases", {}).items():
        clock.add(name, seconds)
    with clock.measuring(), phase("write"):
        written = result.save(args.output, overwrite=args.overwrite)
    result.stats["phases"] = clock.ordered()
    return report_results(args, result, written)


def import_networks() -> None:
    """Import the network libraries a run needs (the import phase of the stats)."""
    import diffusers  # noqa: F401
    import transformers  # noqa: F401
    from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: F401
    from transformers import CLIPTextModel  # noqa: F401


def load_options(args) -> dict:
    """The model flags as `load_model` keywords (every one but the path)."""
    return {"family": args.family, "prediction": args.prediction, "vae": args.vae,
            "text_encoders": args.text_encoders, "device": args.device,
            "dtype": args.dtype, "allow_pickle": args.allow_pickle, "compile": args.compile}


def load_model_from_args(args):
    from diffdiff.models import load_model

    return load_model(args.model, **load_options(args))


def report_results(args, result, written: list) -> int:
    """Write --stats (when asked) and list the written files (unless --quiet)."""
    from diffdiff.atomic import CLI_OVERWRITE_HINT, atomic_write

    if args.stats:
        text = json.dumps(result.stats, indent=2, sort_keys=True)
        atomic_write(args.stats, lambda tmp: tmp.write_text(text + "\n"), overwrite=args.overwrite,
                     hint=CLI_OVERWRITE_HINT)
    if not args.quiet:
        for path in written:
            print(path)
    return 0
