"""(b) of bench_train: samples/s of the real `train()` fed by the real data pipeline, and
`profile_train`, which runs it under torch.profiler and cProfile and writes where the time
goes."""

from __future__ import annotations

import contextlib
import copy
import cProfile
import io
import os
import pstats
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from clapsweep.config import TrainConfig
from clapsweep.data.cache import AudioCache
from clapsweep.data.datasets import Pair
from clapsweep.models.clap import CLAP
from clapsweep.train import TrainData, train

# ----------------------------------------------------------------------------- (b)


def trainer_rate(
    model: CLAP,
    pairs: Sequence[Pair],
    cache: AudioCache,
    clip_samples: int,
    cfg: TrainConfig,
    device: torch.device,
    warmup: int,
    out_dir: str | Path,
    profiler: Callable[[], contextlib.AbstractContextManager] | None = None,
) -> dict:
    """Samples/s of the real `train()` after `warmup` steps (cfg.log_every must be `warmup`).

    The step times come from the trainer's own reports, which call loss.item() and so
    synchronise the GPU.
    """
    stamps: dict[int, float] = {}

    def report(row: dict) -> None:
        stamps[row["step"]] = time.perf_counter()

    model = copy.deepcopy(model)
    with profiler() if profiler else contextlib.nullcontext():
        result = train(
            model, TrainData(main=pairs), cfg, out_dir, cache, clip_samples, report, str(device)
        )
    last = result["steps"]
    if warmup not in stamps or last <= warmup:
        raise ValueError(f"the trainer ran {last} steps; need more than the {warmup} warm-up")
    seconds = stamps[last] - stamps[warmup]
    out = {
        "samples_per_s": round(cfg.batch_size * (last - warmup) / seconds, 3),
        "timed_steps": last - warmup,
        "seconds": round(seconds, 3),
        "num_workers": cfg.num_workers,
    }
    if cfg.num_workers == 0:  # with workers, each holds its own counters
        out["cache_hits"], out["cache_misses"] = cache.hits, cache.misses
    return out


# ----------------------------------------------------------------------------- profile


def default_profile_path() -> Path:
    """$OUT/bench-profile.txt when $OUT is set (device machines), else ./bench-profile.txt."""
    out = os.environ.get("OUT")
    return Path(out) / "bench-profile.txt" if out else Path("bench-profile.txt")


def _under_profilers(
    device: torch.device, python: cProfile.Profile, holder: dict
) -> Callable[[], contextlib.AbstractContextManager]:
    """A context manager factory running torch.profiler and `python`; the torch profile
    goes to holder["prof"]."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)

    @contextlib.contextmanager
    def both() -> Iterator[None]:
        with warnings.catch_warnings():
            # One profiling cycle is all we record, which torch warns about.
            warnings.filterwarnings("ignore", message=".*Profiler clears events")
            with profile(activities=activities) as prof:
                python.enable()
                try:
                    yield
                finally:
                    python.disable()
        holder["prof"] = prof

    return both


def _profile_text(
    events, python: cProfile.Profile, cfg: TrainConfig, device: torch.device, rate: dict
) -> str:
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = events.table(sort_by=sort, row_limit=15)
    stream = io.StringIO()
    pstats.Stats(python, stream=stream).sort_stats("cumulative").print_stats(25)
    return (
        f"clapsweep bench: profile of the real trainer ({cfg.max_steps} steps, batch "
        f"{cfg.batch_size}, workers {cfg.num_workers}, {device.type}), {rate['samples_per_s']} "
        f"samples/s under the profilers\n\n== torch.profiler: top 15 ops by {sort} ==\n{table}\n"
        f"== cProfile: top 25 functions by cumulative time (main process) ==\n{stream.getvalue()}"
    )


def profile_train(
    model: CLAP,
    pairs: Sequence[Pair],
    cache: AudioCache,
    clip_samples: int,
    cfg: TrainConfig,
    device: torch.device,
    path: str | Path,
    out_dir: str | Path,
) -> dict:
    """Run the real trainer under torch.profiler and cProfile; write both summaries to `path`."""
    holder: dict = {}
    python = cProfile.Profile()
    both = _under_profilers(device, python, holder)
    warm = cfg.log_every
    rate = trainer_rate(model, pairs, cache, clip_samples, cfg, device, warm, out_dir, both)
    events = holder["prof"].key_averages()
    text = _profile_text(events, python, cfg, device, rate)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    top = sorted(events, key=lambda e: getattr(e, attr, 0), reverse=True)[:15]
    return {
        "path": str(path),
        "samples_per_s_profiled": rate["samples_per_s"],
        "top_ops_ms": [[e.key, round(getattr(e, attr, 0) / 1000, 2)] for e in top],
    }
