"""The backend interface, and the local backend: stages run one by one in this process.

A backend runs one DAG layer at a time. It receives the layer's stages (none depends on
another) and `execute`, a picklable callable that runs one stage completely: it resumes the
stage's .partial folder, calls the stage function, writes meta.json and renames the folder
into place, or records the failure and raises StageFailed. A backend only decides where and
when `execute` runs (this process, Ray workers, SLURM jobs) and passes on progress: `execute`
takes an optional `report` callable for the backend's own reporting (e.g. ray.tune.report).
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Protocol

from clapsweep.sweep.plan import PlannedStage

Report = Callable[[dict[str, Any]], None]


class Execute(Protocol):
    def __call__(self, stage: PlannedStage, report: Report | None = None) -> dict[str, Any]: ...


class Backend:
    """Runs the stages of one layer; returns per stage name its result dict or exception."""

    name = "base"

    def run_layer(
        self, stages: list[PlannedStage], execute: Execute
    ) -> dict[str, dict[str, Any] | BaseException]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the backend started (a Ray runtime, ...). Called once, at the end."""


class LocalBackend(Backend):
    """On this machine. With workers=0 in this process, in the order given (debugging, CI);
    with workers=N in N worker processes of one torch thread each, so a small machine runs
    N small stages at once instead of one stage on N contending threads."""

    name = "local"

    def __init__(self, workers: int = 0):
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None

    def run_layer(
        self, stages: list[PlannedStage], execute: Execute
    ) -> dict[str, dict[str, Any] | BaseException]:
        if self.workers:
            return self._run_in_pool(stages, execute)
        results: dict[str, dict[str, Any] | BaseException] = {}
        for stage in stages:
            try:
                results[stage.name] = execute(stage)
            except Exception as e:  # recorded by execute; the rest of the layer goes on
                results[stage.name] = e
        return results

    def _run_in_pool(self, stages, execute) -> dict[str, dict[str, Any] | BaseException]:
        if self.pool is None:
            # spawn: the driver may hold OpenMP threads, which fork does not survive.
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=mp.get_context("spawn"), initializer=_one_thread
            )
        on_event = getattr(execute, "on_event", None)
        if on_event is not None:  # workers cannot print through the driver's console
            execute = dataclasses.replace(execute, on_event=None, reported=set())
        futures = {}
        for stage in stages:
            if on_event is not None:
                on_event({"event": "start", **stage.event_fields()})
            futures[self.pool.submit(execute, stage)] = stage
        results: dict[str, dict[str, Any] | BaseException] = {}
        for future in as_completed(futures):
            try:
                results[futures[future].name] = future.result()
            except Exception as e:
                results[futures[future].name] = e
        return results

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)
