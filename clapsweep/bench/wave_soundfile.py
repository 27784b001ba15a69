"""A stdlib stand-in for the parts of soundfile that clapsweep.audio uses (16-bit PCM WAV).

The GPU machines lack libsndfile, so `import soundfile` fails there and with it the whole
pipeline. The benchmarks write their own 16-bit WAV files, which the stdlib `wave` module can
decode, so the bench CLI calls `use_wave_decoder_if_needed()` before it imports the pipeline.
Nothing here runs on import: the stand-in is installed only by that explicit call, and only
where soundfile cannot be imported. `audio_decoder()` says which decoder this process uses;
every benchmark result records it as `machine.audio_decoder`.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
import wave

import numpy as np

REAL_DECODER = "soundfile"
STAND_IN_DECODER = "stdlib wave (soundfile missing)"
_MARK = "__clapsweep_stand_in__"  # set on the stand-in module, to tell it from the real one


def make_stand_in() -> types.ModuleType:
    """A new `soundfile` stand-in module: SoundFileError, info(path), read(path, ...)."""
    mod = types.ModuleType("soundfile")
    # A spec, as imported modules have: transformers looks soundfile up with find_spec.
    mod.__spec__ = importlib.machinery.ModuleSpec("soundfile", None)

    class SoundFileError(Exception):
        pass

    def info(path):
        try:
            with wave.open(str(path), "rb") as w:
                return types.SimpleNamespace(
                    frames=w.getnframes(),
                    samplerate=w.getframerate(),
                    channels=w.getnchannels(),
                    format="WAV",
                )
        except (wave.Error, EOFError) as e:
            raise SoundFileError(f"{path}: {e}") from None

    def read(path, dtype="float32", always_2d=False):
        try:
            with wave.open(str(path), "rb") as w:
                width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
                raw = w.readframes(w.getnframes())
        except (wave.Error, EOFError) as e:
            raise SoundFileError(f"{path}: {e}") from None
        if width != 2:
            raise SoundFileError(f"{path}: the stdlib decoder reads 16-bit PCM only")
        data = np.frombuffer(raw, dtype="<i2").reshape(-1, channels).astype(dtype) / 32768
        return (data if always_2d or channels > 1 else data[:, 0]), rate

    mod.SoundFileError, mod.info, mod.read = SoundFileError, info, read
    setattr(mod, _MARK, True)
    return mod


def is_stand_in(module: object) -> bool:
    """Whether `module` is a stand-in made by `make_stand_in`."""
    return bool(getattr(module, _MARK, False))


def use_wave_decoder_if_needed() -> str:
    """Make `import soundfile` work in this process; return which decoder it gives.

    Imports the real soundfile when it can; only when that fails (ImportError, or OSError
    for a missing libsndfile) installs the stand-in as sys.modules["soundfile"]. Call it
    before anything imports clapsweep.audio. Only this process is affected.
    """
    if is_stand_in(sys.modules.get("soundfile")):
        return STAND_IN_DECODER
    try:
        import soundfile  # noqa: F401
    except (ImportError, OSError):
        sys.modules["soundfile"] = make_stand_in()
        return STAND_IN_DECODER
    return REAL_DECODER


def audio_decoder() -> str:
    """The decoder `import soundfile` gives this process now: the real one or the stand-in."""
    return STAND_IN_DECODER if is_stand_in(sys.modules.get("soundfile")) else REAL_DECODER
