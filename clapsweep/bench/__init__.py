"""Performance benchmarks: training, data pipeline, DU curation and embedding throughput.

Every benchmark returns one plain dict (JSON-ready) holding its figures, the machine (device
name, torch version, audio decoder) and the exact configuration it ran, so a figure can be
repeated. One module per family:

- `train`: `bench_train`, samples/s of (a) the model alone, (b) the real trainer fed by the
  real data pipeline (in `real_trainer`, with `profile_train`), (c) a plain fp32 step.
- `data`: `bench_data`, clips/s of decode + resample + crop per worker count, source rate
  and cache state.
- `curate`: `bench_curate`, `build_du` / `threshold_pairs` against the bare chunked products.
- `eval`: `bench_eval`, `evaluate.embed_audio` throughput against training throughput.
- `figures`: the figures file that train and eval record (runs/bench/figures.json);
  `estimate`: the compute estimates `clapsweep run SWEEP --dry-run` makes from it.
- `common`: machine info, device, timing helpers, named configs, captions, WAV files, model.
- `wave_soundfile`: a stdlib stand-in for soundfile, for machines without libsndfile.
- `cli`: the `bench` commands (also `python -m clapsweep.bench train ...`).

Importing this package imports nothing else: the names below load their module on first
use. In particular it never touches sys.modules["soundfile"]; where soundfile is missing,
call `use_wave_decoder_if_needed()` before using a benchmark (the CLI does).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "use_wave_decoder_if_needed": "wave_soundfile",
    "audio_decoder": "wave_soundfile",
    "FILE_RATE": "common",
    "build_model": "common",
    "captions": "common",
    "cpu_model": "common",
    "machine": "common",
    "named_configs": "common",
    "resolve_device": "common",
    "write_clips": "common",
    "write_wav": "common",
    "PLAIN_TOKENS": "train",
    "bench_train": "train",
    "step_rate": "train",
    "default_profile_path": "real_trainer",
    "profile_train": "real_trainer",
    "trainer_rate": "real_trainer",
    "bench_data": "data",
    "bare_products": "curate",
    "bench_curate": "curate",
    "bench_eval": "eval",
    "encode_rate": "eval",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
