"""`LoadedModel`: one loaded model of any family: prompt encoding, the model end of the denoiser chain,
the VAE."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from ..errors import DiffdiffError
from .conditioning import Conditioning, PromptReading, encode_sd, encode_sdxl
from .denoiser import CFGDenoiser, ParametrisedNetwork
from .families import FAMILY_TABLE, base_family
from .networks import network_adapter
from .precision import Precision
from .skip_layers import SkipLayerGuidance
from .vae import VaeCodec


def _model_sampling(family: str):
    from ..sampling import model_sampling

    return model_sampling(family)


def file_sha256(path: str | Path, chunk: int = 1 << 20, start: int = 0) -> str:
    """The sha256 of a file's bytes from offset `start` on, in hex, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(start)
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_sha256_once(path: str | Path, start: int = 0) -> str:
    """`file_sha256`, read once per version of the file (its path, inode, modification time and size): runs
    that name the same large file again (a LoRA on every batch line) do not read it again."""
    stat = Path(path).stat()
    return _versioned_sha256(str(Path(path).resolve()), start, stat.st_ino, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _versioned_sha256(path: str, start: int, inode: int, mtime_ns: int, size: int) -> str:
    return file_sha256(path, start=start)


def file_short_hash(path: Path) -> str:
    """A1111's short model hash: the first 10 hex digits of the file's sha256."""
    return file_sha256(path)[:10]


class LoadedModel:
    """A loaded model: `family`, `model_sampling`, `device`, `precision` (`dtype`: its network dtype), `name`,
    `short_hash`, `latent_channels`,
    `inpainting` (the network also takes a mask and a masked-image latent: a 9-channel UNet, Flux Fill),
    `vae_codec` (pixels ↔ latents), and the modules `network` (the UNet or flow transformer; also `unet`),
    `vae`, `text_encoders`, `tokenizers`.

    `text_encoders` may be given as a function that loads them: it runs on first use (the first prompt to
    encode, or a LoRA that patches them), so a run that needs no encoding never builds them."""

    def __init__(self, *, family, network, vae, text_encoders, tokenizers, device, precision: Precision, name,
                 hash_file=None):
        self.family = family
        self.device = device
        self.network = network.to(device)
        self.vae = vae.to(device)
        self._text_encoders = text_encoders if callable(text_encoders) else self._on_device(text_encoders)
        self.tokenizers = list(tokenizers)
        self.precision = precision
        self.dtype = precision.network
        self.name = name
        self.model_sampling = _model_sampling(family)
        self.vae_codec = VaeCodec(self.vae, device)
        self.latent_channels = self.vae_codec.latent_channels
        kind = FAMILY_TABLE[family].network
        in_channels = int(network.config.in_channels)
        nine_channels = kind == "unet" and in_channels == 2 * self.latent_channels + 1
        self.inpainting = family == "flux-fill" or nine_channels
        self._compiled = None
        self._hash_file = Path(hash_file) if hash_file is not None else None
        self._short_hash = None

    @property
    def unet(self):
        """The denoising network (named for the UNet families; the flow families' transformer)."""
        return self.network

    def __repr__(self) -> str:
        return f"LoadedModel({self.name!r}, family={self.family!r}, device={self.device}, dtype={self.dtype})"

    def compile(self, backend: str = "inductor") -> None:
        """Run the network through `torch.compile(backend=...)` from now on. Its first call at each new input
        shape compiles (minutes for a full-size UNet on a CPU); the weights stay the network's own, so LoRAs
        still patch them (and cause one recompile)."""
        import torch

        self._compiled = torch.compile(self.network, backend=backend)

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    @property
    def text_encoders(self) -> list:
        """The text encoders on the model's device, loaded on first use when given as a loader."""
        if callable(self._text_encoders):
            self._text_encoders = self._on_device(self._text_encoders())
        return self._text_encoders

    def _on_device(self, encoders) -> list:
        return [encoder.to(self.device) for encoder in encoders]

    @property
    def text_encoders_loaded(self) -> bool:
        return not callable(self._text_encoders)

    @property
    def short_hash(self) -> str | None:
        """First 10 hex digits of the checkpoint's sha256 (computed once, on first use); None if no file."""
        if self._short_hash is None and self._hash_file is not None:
            self._short_hash = file_short_hash(self._hash_file)
        return self._short_hash

    def encode_prompt(self, prompt: str, negative: str = "", width: int = 1024, height: int = 1024,
                      batch: int = 1, reading: PromptReading | None = None) -> Conditioning:
        """Conditioning for `prompt` / `negative` read as `reading` says (default: ComfyUI's weighting, the
        family's CLIP skip, no embeddings); `width` / `height` (pixels) feed SDXL's time_ids."""
        family = FAMILY_TABLE[self.family]
        if family.network != "unet":
            from .flow_conditioning import FLOW_ENCODERS

            encode = FLOW_ENCODERS[family.network]
            return encode(self.tokenizers, self.text_encoders, prompt, negative, batch=batch, reading=reading)
        if base_family(self.family) == "sdxl":
            return encode_sdxl(self.tokenizers, self.text_encoders, prompt, negative, width=width,
                               height=height, batch=batch, reading=reading, clip_skip=family.clip_skip)
        return encode_sd(self.tokenizers[0], self.text_encoders[0], prompt, negative, batch=batch,
                         reading=reading, clip_skip=family.clip_skip)

    def sampling_at(self, width: int, height: int):
        """The `ModelSampling` of a run at width × height pixels: Flux dev's (and Fill's) schedule shift μ
        grows with the image's token count (`flux_mu`); every other family's is fixed."""
        if self.family in ("flux", "flux-fill"):
            from ..sampling import flux_mu, model_sampling

            return model_sampling(self.family, shift=flux_mu(width, height))
        return self.model_sampling

    def denoiser(self, conditioning: Conditioning, cfg: float, guidance: float | None = None,
                 skip_layer_guidance: tuple | None = None) -> CFGDenoiser:
        """`denoiser(x, sigma, **kw) -> x0`: CFG over the parametrised network (uncond skipped at cfg 1);
        `guidance` is the distilled guidance of networks that embed one (default: the family's);
        `skip_layer_guidance` (scale, blocks) is SD3's (`skip_layers.SkipLayerGuidance`)."""
        family = FAMILY_TABLE[self.family]
        post_cfg = None
        if skip_layer_guidance is not None:
            if family.network != "sd3":
                raise DiffdiffError(f"skip-layer guidance (--slg) is for SD3 / SD3.5, not {self.family}")
            scale, layers = skip_layer_guidance
            post_cfg = SkipLayerGuidance(scale, layers, self.model_sampling)
        module = self.network if self._compiled is None else self._compiled
        guidance = guidance if guidance is not None else family.guidance
        adapter = network_adapter(family.network, module, guidance)
        network = ParametrisedNetwork(adapter, self.model_sampling)
        uncond = conditioning.network_kwargs(negative=True)  # given at cfg 1 too: the CFG++ samplers run it
        return CFGDenoiser(network, conditioning.network_kwargs(), uncond, cfg, post_cfg)
