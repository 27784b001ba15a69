"""Data pipeline throughput: clips/s of decode + resample + crop through the real PairDataset
and DataLoader, per source rate, worker count and cache state (none, cold, warm)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from clapsweep.bench.common import log, machine, pairs_for, write_clips
from clapsweep.data.cache import AudioCache
from clapsweep.data.datasets import Pair
from clapsweep.loader import PairDataset, epoch_batches, make_loader


def _one_pass(dataset: PairDataset, n: int, batch: int, workers: int) -> tuple[float, int]:
    """Seconds for one epoch through the real loader (worker start-up included), and clips."""
    batches = epoch_batches(n, 0, batch, 0.0, 0, 0)
    t0 = time.perf_counter()
    clips = 0
    for b in make_loader(dataset, batches, workers, pin_memory=False):
        clips += 0 if b["audio"] is None else len(b["audio"])
    return time.perf_counter() - t0, clips


def _rows_for(
    pairs: Sequence[Pair], rate: int, workers: int, cache_dir: Path, target_rate: int,
    clip: int, batch_size: int,
) -> list[dict]:  # fmt: skip
    """One row per cache state for files at `rate` read by `workers` workers."""
    caches = {"none": AudioCache(None, target_rate), "cold": AudioCache(cache_dir, target_rate)}
    caches["warm"] = caches["cold"]  # the cold pass fills it
    rows = []
    for mode, audio_cache in caches.items():
        dataset = PairDataset(pairs, (), audio_cache, clip)
        secs, clips = _one_pass(dataset, len(pairs), batch_size, workers)
        rows.append(
            {
                "source_rate": rate,
                "workers": workers,
                "cache": mode,
                "clips": clips,
                "seconds": round(secs, 6),
                "clips_per_s": round(clips / secs, 2),
            }
        )
    return rows


def bench_data(
    seconds: float = 5.0,
    files: int = 64,
    workers: Sequence[int] = (0, 2),
    rates: Sequence[int] = (48000, 44100, 16000),
    target_rate: int = 44100,
    file_seconds: float = 10.0,
    batch_size: int = 16,
) -> dict:
    """Clips/s of decode + resample to `target_rate` + random crop of `seconds`, through the
    real PairDataset and DataLoader, per source rate, worker count and cache state:
    `none` (no cache: decode every time), `cold` (empty cache: decode and store), `warm`
    (a second pass over the same cache). Files are in the OS page cache (just written)."""
    began = time.perf_counter()
    clip = round(target_rate * seconds)
    rows = []
    with tempfile.TemporaryDirectory(prefix="clapsweep-bench-") as tmp:
        for rate in rates:
            log(f"data: {files} files at {rate} Hz")
            pairs = pairs_for(write_clips(Path(tmp) / f"wav{rate}", files, file_seconds, rate))
            for w in workers:
                cache_dir = Path(tmp) / f"cache{rate}-{w}"
                rows += _rows_for(pairs, rate, w, cache_dir, target_rate, clip, batch_size)
    return {
        "benchmark": "data",
        "machine": machine(torch.device("cpu")),
        "config": {
            "crop_seconds": seconds,
            "target_rate": target_rate,
            "files": files,
            "file_seconds": file_seconds,
            "workers": list(workers),
            "rates": list(rates),
            "batch_size": batch_size,
            "file_format": "16-bit PCM mono WAV",
        },
        "rows": rows,
        "seconds_total": round(time.perf_counter() - began, 1),
    }
