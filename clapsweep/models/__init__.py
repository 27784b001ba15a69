"""Audio encoders (CNN14, SmallCNN), text encoders, the CLAP model and checkpoint interop."""

from clapsweep.models.clap import CLAP, Projection
from clapsweep.models.cnn14 import Cnn14
from clapsweep.models.interop import CheckpointError, load_msclap, load_panns_cnn14
from clapsweep.models.small_cnn import SmallCNN
from clapsweep.models.text import TextEncoder, resolve_text_model

__all__ = [
    "CLAP",
    "CheckpointError",
    "Cnn14",
    "Projection",
    "SmallCNN",
    "TextEncoder",
    "load_msclap",
    "load_panns_cnn14",
    "resolve_text_model",
]
