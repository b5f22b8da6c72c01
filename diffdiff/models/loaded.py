"""`LoadedModel`: one loaded SD-family model: prompt encoding, the model end of the denoiser chain, VAE."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from .conditioning import Conditioning, PromptReading, encode_sd, encode_sdxl
from .denoiser import CFGDenoiser, ParametrisedNetwork
from .families import FAMILY_TABLE, base_family
from .precision import Precision
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
    `inpainting` (the UNet also takes a mask and a masked-image latent: 2·latent + 1 input channels),
    `vae_codec` (pixels ↔ latents), and the networks `unet`, `vae`, `text_encoders`, `tokenizers`.

    `text_encoders` may be given as a function that loads them: it runs on first use (the first prompt to
    encode, or a LoRA that patches them), so a run that needs no encoding never builds them."""

    def __init__(self, *, family, unet, vae, text_encoders, tokenizers, device, precision: Precision, name,
                 hash_file=None):
        self.family = family
        self.device = device
        self.unet = unet.to(device)
        self.vae = vae.to(device)
        self._text_encoders = text_encoders if callable(text_encoders) else self._on_device(text_encoders)
        self.tokenizers = list(tokenizers)
        self.precision = precision
        self.dtype = precision.network
        self.name = name
        self.model_sampling = _model_sampling(family)
        self.latent_channels = int(unet.config.out_channels)
        self.inpainting = int(unet.config.in_channels) == 2 * self.latent_channels + 1
        self.vae_codec = VaeCodec(self.vae, device)
        self._compiled = None
        self._hash_file = Path(hash_file) if hash_file is not None else None
        self._short_hash = None

    def __repr__(self) -> str:
        return f"LoadedModel({self.name!r}, family={self.family!r}, device={self.device}, dtype={self.dtype})"

    def compile(self, backend: str = "inductor") -> None:
        """Run the UNet through `torch.compile(backend=...)` from now on. Its first call at each new input
        shape compiles (minutes for a full-size UNet on a CPU); the weights stay the UNet's own, so LoRAs
        still patch them (and cause one recompile)."""
        import torch

        self._compiled = torch.compile(self.unet, backend=backend)

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
        clip_skip = FAMILY_TABLE[self.family].clip_skip
        if base_family(self.family) == "sdxl":
            return encode_sdxl(self.tokenizers, self.text_encoders, prompt, negative, width=width,
                               height=height, batch=batch, reading=reading, clip_skip=clip_skip)
        return encode_sd(self.tokenizers[0], self.text_encoders[0], prompt, negative, batch=batch,
                         reading=reading, clip_skip=clip_skip)

    def denoiser(self, conditioning: Conditioning, cfg: float) -> CFGDenoiser:
        """`denoiser(x, sigma, **kw) -> x0`: CFG over the parametrised UNet (uncond skipped at cfg 1)."""
        unet = self.unet if self._compiled is None else self._compiled
        network = ParametrisedNetwork(unet, self.model_sampling)
        uncond = conditioning.network_kwargs(negative=True) if cfg != 1.0 else None
        return CFGDenoiser(network, conditioning.network_kwargs(), uncond, cfg)
