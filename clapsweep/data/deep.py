"""`clapsweep data summary --deep`: decode every clip the way the trainer does and sort the bad ones.

The header probe of the adapters trusts what a file declares; a cut or damaged file can declare
a length it does not hold. Here each record goes through `load_audio` (the trainer's decoder,
at the file's native rate so that no time goes into resampling), in parallel over processes.
A file is bad when it is
- truncated: fewer frames decode than a format with exact lengths declares;
- corrupt: it does not decode at all, or holds NaN / infinite samples;
- silent: its peak absolute sample is below SILENT_PEAK (all zeros or near-silent).
The trainer skips the first two and counts them; silent files load, but teach nothing.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from clapsweep.audio import AudioError, load_audio
from clapsweep.data.manifest import Manifest

# 1e-4 full scale is -80 dBFS, about 3 steps of 16-bit audio: nothing audible is left.
SILENT_PEAK = 1e-4
PROBLEMS = ("truncated", "corrupt", "silent")
# Files per task sent to a worker: large enough to hide the inter-process cost of a task,
# small enough for a smooth progress bar.
_BATCH = 16


@dataclass(frozen=True)
class BadFile:
    path: str
    dataset: str
    problem: str  # one of PROBLEMS
    detail: str  # the decoder's message, naming the file


def default_jobs() -> int:
    """The CPUs this process may use (a Slurm job's share, not the whole node)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_file(path: str, sample_rate: int) -> tuple[str, str] | None:
    """(problem, detail) when the trainer cannot use the file as it is, None when it is fine."""
    try:
        wave = load_audio(path, sample_rate)
    except AudioError as e:
        why = str(e).removeprefix(f"{path}: ")
        return ("truncated" if why.startswith("truncated") else "corrupt"), str(e)
    # numpy, not torch: a torch reduction this small costs more in thread start-up than work.
    peak = float(np.abs(wave.numpy()).max())
    if peak < SILENT_PEAK:
        return "silent", f"{path}: silent: peak {peak:.3g} is below {SILENT_PEAK:g}"
    return None


def check(manifests: dict[str, Manifest], jobs: int = 1) -> list[BadFile]:
    """Decode every record of `manifests` on `jobs` processes; the bad files, sorted by path.

    Shows a progress bar with ETA on stderr when stderr is a terminal, a few lines otherwise.
    """
    work = [(r.path, r.sample_rate, name) for name, m in manifests.items() for r in m.records]
    batches = [work[i : i + _BATCH] for i in range(0, len(work), _BATCH)]
    bad: list[BadFile] = []

    def collect(batch: list[tuple[str, int, str]], results: list) -> None:
        for (path, _, dataset), result in zip(batch, results, strict=True):
            if result is not None:
                bad.append(BadFile(path, dataset, *result))
        progress.advance(len(batch))

    jobs = max(1, min(jobs, len(batches)))
    progress = _Progress(len(work), jobs)
    if jobs == 1:
        with progress:
            for batch in batches:
                collect(batch, _check_batch(batch))
    else:
        _run_pool(batches, jobs, progress, collect)
    return sorted(bad, key=lambda b: b.path)


def counts(bad: Iterable[BadFile]) -> dict[str, dict[str, int]]:
    """{dataset: {problem: number of files}}, every problem present (0 when none)."""
    tally = Counter((b.dataset, b.problem) for b in bad)
    datasets = sorted({dataset for dataset, _ in tally})
    return {d: {p: tally[(d, p)] for p in PROBLEMS} for d in datasets}


def write_csv(path: str | Path, bad: Iterable[BadFile]) -> None:
    """The bad files as CSV: path, dataset, problem, detail (a header line first)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "dataset", "problem", "detail"])
        writer.writerows([b.path, b.dataset, b.problem, b.detail] for b in bad)


# ----------------------------------------------------------------------------- helpers


def _check_batch(batch: list[tuple[str, int, str]]) -> list[tuple[str, str] | None]:
    return [check_file(path, rate) for path, rate, _ in batch]


def _worker_init() -> None:
    # mpg123 writes decoder warnings straight to file descriptor 2, where they would tear the
    # progress bar; a worker reports everything through its results or exceptions instead.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    torch.set_num_threads(1)  # one process per core already; no nested thread pools


def _run_pool(batches: list, jobs: int, progress: _Progress, collect: Callable) -> None:
    with ProcessPoolExecutor(jobs, initializer=_worker_init) as pool:
        # Start the workers before the progress bar's refresh thread: a forked child must not
        # inherit a lock that thread holds.
        pool.submit(int).result()
        queue = iter(batches)
        pending: dict = {}
        with progress:
            while True:
                # A bounded number of tasks in flight keeps memory flat on millions of files.
                while len(pending) < 4 * jobs and (batch := next(queue, None)) is not None:
                    pending[pool.submit(_check_batch, batch)] = batch
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    collect(pending.pop(future), future.result())


class _Progress:
    """A rich bar with ETA on a terminal; elsewhere a line at the start, each quarter and the end."""

    def __init__(self, total: int, jobs: int):
        self.console = Console(stderr=True)
        self.total, self.jobs, self.done = total, jobs, 0
        self.bar: Progress | None = None
        self.start = 0.0

    def __enter__(self) -> _Progress:
        self.start = time.monotonic()
        if self.console.is_terminal:
            columns = (TextColumn("deep check"), BarColumn(), MofNCompleteColumn())
            columns += (TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
            self.bar = Progress(*columns, console=self.console)
            self.task = self.bar.add_task("deep", total=self.total)
            self.bar.start()
        else:
            self._line(f"decoding {self.total} files on {self.jobs} process(es)")
        return self

    def advance(self, n: int) -> None:
        before, self.done = self.done, self.done + n
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        elif self.done < self.total and 4 * before // self.total < 4 * self.done // self.total:
            self._line(f"{self.done}/{self.total} files, {self._rate():.0f} files/s")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
        seconds = time.monotonic() - self.start
        self._line(f"{self.done} files in {seconds:.1f} s ({self._rate():.0f} files/s)")

    def _rate(self) -> float:
        return self.done / max(time.monotonic() - self.start, 1e-9)

    def _line(self, text: str) -> None:
        print(f"deep check: {text}", file=sys.stderr, flush=True)
