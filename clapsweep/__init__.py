"""clapsweep: unsupervised improvement of audio-text CLAP models, run as tracked sweeps."""

__version__ = "0.1.0"


def version() -> str:
    """The installed distribution's version; __version__ when clapsweep runs uninstalled
    (a source tree on PYTHONPATH, as on SLURM nodes without the package)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("clapsweep")
    except PackageNotFoundError:
        return __version__
