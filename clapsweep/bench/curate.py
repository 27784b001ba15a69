"""DU curation: `build_du` / `threshold_pairs` time against the bare chunked products of the
same sizes, and peak memory against the size of the full similarity matrix."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import torch

from clapsweep import curate
from clapsweep.bench.common import log, machine, ratio, resolve_device, sync


class _PeakRSS:
    """Peak resident memory above the starting level, sampled every 2 ms from /proc."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0
        self._stop = threading.Event()

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss() - self.base)
            time.sleep(0.002)

    def __enter__(self) -> _PeakRSS:
        self.base = self._rss()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss() - self.base)


def _measure(fn: Callable[[], object], device: torch.device) -> tuple[float, int, object]:
    """(seconds, peak extra bytes, result) of fn(); GPU: allocator peak, CPU: RSS peak."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        return time.perf_counter() - t0, torch.cuda.max_memory_allocated(device) - base, out
    with _PeakRSS() as peak:
        t0 = time.perf_counter()
        out = fn()
        secs = time.perf_counter() - t0
    return secs, peak.peak, out


def bare_products(text: torch.Tensor, audio: torch.Tensor, chunk: int) -> int:
    """The chunked products of curation alone (same blocks, no thresholding); blocks done."""
    blocks = 0
    for a0 in range(0, audio.shape[0], chunk):
        a_blk = audio[a0 : a0 + chunk]
        for t0 in range(0, text.shape[0], chunk):
            text[t0 : t0 + chunk] @ a_blk.T
            blocks += 1
    return blocks


def _sizes(
    gpu: bool, clips: int | None, captions_n: int | None, dim: int | None, sigma: float | None
) -> tuple[int, int, int, float]:
    """(clips, captions, dim, sigma) with the GPU or CPU defaults filled in."""
    clips = clips or (200_000 if gpu else 32_768)
    m = captions_n or (128_000 if gpu else 8_192)
    dim = dim or (1024 if gpu else 512)
    sigma = sigma if sigma is not None else round(4.5 / dim**0.5, 4)
    return clips, m, dim, sigma


def _unit_embeddings(
    m: int, clips: int, dim: int, dtype: torch.dtype, dev: torch.device, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random unit rows: (m, dim) text first, then (clips, dim) audio."""
    g = torch.Generator(device=dev).manual_seed(seed)

    def unit(n: int) -> torch.Tensor:
        x = torch.randn(n, dim, generator=g, device=dev)
        return torch.nn.functional.normalize(x, dim=1).to(dtype)

    text = unit(m)
    return text, unit(clips)


def _timed_runs(
    text: torch.Tensor, audio: torch.Tensor, sigma: float, chunk: int, dev: torch.device
) -> dict[str, tuple[float, int, object]]:
    """(seconds, peak bytes, result) of the bare products, threshold_pairs and build_du,
    after a small warm-up of each (kernels, allocator, thread pools)."""
    m, clips = text.shape[0], audio.shape[0]
    names = [f"caption {i}" for i in range(m)]
    ids = [f"audioset/clip{i}" for i in range(clips)]
    small = min(chunk, m, clips)
    bare_products(text[:small], audio[:small], chunk)
    curate.threshold_pairs(text[:small], audio[:small], sigma, chunk=chunk, device=dev)
    log(f"curate: {clips} clips x {m} captions x {text.shape[1]}")
    return {
        "bare": _measure(lambda: bare_products(text, audio, chunk), dev),
        "threshold_pairs": _measure(
            lambda: curate.threshold_pairs(text, audio, sigma, chunk=chunk, device=dev), dev
        ),
        "build_du": _measure(
            lambda: curate.build_du(text, audio, sigma, names, ids, chunk=chunk, device=dev), dev
        ),
    }


def _memory(gpu: bool, full_bytes: int, runs: dict) -> dict:
    du_mem = runs["build_du"][1]
    return {
        "measured_as": "torch.cuda.max_memory_allocated above the inputs"
        if gpu
        else "peak RSS above the start, sampled every 2 ms",
        "full_matrix_fp32_bytes": full_bytes,
        "bare_peak_bytes": int(runs["bare"][1]),
        "threshold_pairs_peak_bytes": int(runs["threshold_pairs"][1]),
        "build_du_peak_bytes": int(du_mem),
        "build_du_peak_over_full_matrix": round(du_mem / full_bytes, 4),
    }


def bench_curate(
    clips: int | None = None,
    captions_n: int | None = None,
    dim: int | None = None,
    device: str | None = None,
    sigma: float | None = None,
    chunk: int = curate.DEFAULT_CHUNK,
    extrapolate_to: tuple[int, int] = (1_900_000, 128_000),
    seed: int = 0,
) -> dict:
    """DU curation (`build_du`, `threshold_pairs`) against the bare chunked products.

    Random unit embeddings, bf16 on CUDA (what curation computes in there), float32 on CPU.
    `sigma` defaults to 4.5 / sqrt(dim), a few pairs per million. Times scale with
    clips x captions, so they are extrapolated to `extrapolate_to` (AudioSet x teacher captions).
    """
    began = time.perf_counter()
    dev = resolve_device(device)
    gpu = dev.type == "cuda"
    clips, m, dim, sigma = _sizes(gpu, clips, captions_n, dim, sigma)
    dtype = torch.bfloat16 if gpu else torch.float32
    text, audio = _unit_embeddings(m, clips, dim, dtype, dev, seed)
    runs = _timed_runs(text, audio, sigma, chunk, dev)
    (bare_s, _, blocks), (tp_s, _, found), (du_s, _, imp) = runs.values()
    full_bytes = m * clips * 4
    scale = extrapolate_to[0] * extrapolate_to[1] / (clips * m)
    flops = 2.0 * clips * m * dim
    return {
        "benchmark": "curate",
        "machine": machine(dev),
        "config": {
            "clips": clips,
            "captions": m,
            "dim": dim,
            "sigma": sigma,
            "chunk": chunk,
            "dtype": str(dtype).replace("torch.", ""),
            "blocks": blocks,
            "seed": seed,
        },
        "pairs_found": len(imp),
        "bare_products_s": round(bare_s, 6),
        "bare_tflops": round(flops / bare_s / 1e12, 3),
        "threshold_pairs_s": round(tp_s, 6),
        "build_du_s": round(du_s, 6),
        "ratio_threshold_pairs_over_bare": ratio(tp_s, bare_s),
        "ratio_build_du_over_bare": ratio(du_s, bare_s),
        "target": "build_du <= 1.5 x bare products (GPU)",
        "memory": _memory(gpu, full_bytes, runs),
        "extrapolated": {
            "to": {"clips": extrapolate_to[0], "captions": extrapolate_to[1]},
            "note": "linear in clips x captions; measured at the sizes above",
            "bare_products_s": round(bare_s * scale, 2),
            "build_du_s": round(du_s * scale, 2),
        },
        "threshold_pairs_found": len(found[0]),
        "seconds_total": round(time.perf_counter() - began, 1),
    }
