"""clapsweep: unsupervised improvement of audio-text CLAP models, run as tracked sweeps."""

__version__ = "0.1.0"
