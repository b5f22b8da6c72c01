"""diffdiff: diffusion image editing where the denoising strength is a per-pixel map."""

__version__ = "0.1.0"
