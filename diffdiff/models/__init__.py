"""Model loading (SD1.x, SD2.x eps/v, SDXL, SD3/3.5, Flux.1 dev/schnell/Fill, Z-Image), prompt conditioning
and the model end of the denoiser chain."""

from .conditioning import Conditioning
from .loaded import LoadedModel
from .loading import family_of, load_model

__all__ = ["Conditioning", "LoadedModel", "family_of", "load_model", "make_tiny_model"]


def __getattr__(name):
    # diffdiff.models.tiny is written alongside; import it on first use so a missing module fails late.
    if name == "make_tiny_model":
        from .tiny import make_tiny_model

        return make_tiny_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
