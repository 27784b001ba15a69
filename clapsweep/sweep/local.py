"""The backend interface, and the local backend: stages run one by one in this process.

A backend runs one DAG layer at a time. It receives the layer's stages (none depends on
another) and `execute`, a picklable callable that runs one stage completely: it resumes the
stage's .partial folder, calls the stage function, writes meta.json and renames the folder
into place, or records the failure and raises StageFailed. A backend only decides where and
when `execute` runs (this process, Ray workers, SLURM jobs) and passes on progress: `execute`
takes an optional `report` callable for the backend's own reporting (e.g. ray.tune.report).
"""

from __future__ import annotations

from collections.abc import Callable
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
    """In this process, in the order given. For debugging, CI and one-machine runs."""

    name = "local"

    def run_layer(
        self, stages: list[PlannedStage], execute: Execute
    ) -> dict[str, dict[str, Any] | BaseException]:
        results: dict[str, dict[str, Any] | BaseException] = {}
        for stage in stages:
            try:
                results[stage.name] = execute(stage)
            except Exception as e:  # recorded by execute; the rest of the layer goes on
                results[stage.name] = e
        return results
