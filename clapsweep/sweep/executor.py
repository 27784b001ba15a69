"""Running one planned stage to completion in the store, whatever the backend: the
StageExecutor, the failures it raises and the Tracker interface it reports to. Backends and
trackers import this module, the runner imports them: no import circle."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clapsweep.errors import UserError
from clapsweep.store import FULL, Store, make_meta, write_error_message
from clapsweep.sweep.local import Report, interrupted
from clapsweep.sweep.plan import PlannedStage

StageFn = Callable[..., dict[str, Any]]
OnEvent = Callable[[dict[str, Any]], None]


class StageFailed(Exception):
    """A stage raised; its traceback is in `log`. Picklable, so remote backends return it."""

    def __init__(self, name: str, message: str, log: str) -> None:
        super().__init__(name, message, log)
        self.name, self.message, self.log = name, message, log

    def __str__(self) -> str:
        return self.message


class DiskFull(StageFailed):
    """A stage could not write: no space left, or over the disk quota. Every stage after it
    would fail the same way, so the driver stops the sweep (exit 2) with this message."""

    stops_sweep = True


def disk_error(e: BaseException | None) -> OSError | None:
    """The OSError saying the disk is full (ENOSPC) or over quota (EDQUOT) in `e` or what
    caused it, or None."""
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, OSError) and e.errno in FULL:
            return e
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


# ----------------------------------------------------------------------------- tracking hook


class TrackerRun:
    """One stage execution as the tracker sees it. The base class records nothing."""

    def log(self, metrics: dict[str, Any]) -> None: ...

    def finish(self, result: dict[str, Any]) -> None: ...

    def fail(self, message: str) -> None: ...


class Tracker:
    """Experiment tracking (W&B later). Must be picklable: remote backends ship it along."""

    def start(self, stage: PlannedStage, sweep: str) -> TrackerRun:
        return TrackerRun()

    def close(self, summary: dict[str, Any]) -> None:
        """Called by the driver once the sweep's run is over."""

    def log_tables(self, tables: dict[str, tuple[list[str], list[list[Any]]]]) -> None:
        """Aggregated result tables, {name: (columns, rows)} (the report); dropped here."""


def pipeline_stage(
    kind: str,
    config: dict[str, Any],
    inputs: dict[str, Path],
    out: Path,
    report: Report | None = None,
) -> dict[str, Any]:
    """The real stage function, imported only when a stage runs (it pulls in torch)."""
    from clapsweep.pipeline import run_stage

    return run_stage(kind, config, inputs, out, report)


def stage_config(stage: PlannedStage) -> dict[str, Any]:
    """The config a stage function gets: its own copy, with the stage key in `runtime` (the
    key names the stage's random streams; runtime is outside the key)."""
    config = json.loads(json.dumps(stage.config))
    config["runtime"] = {**config.get("runtime", {}), "key": stage.key}
    return config


@dataclass
class StageExecutor:
    """Runs one planned stage to completion in the store. Picklable when its fields are;
    a remote backend should drop `on_event` (dataclasses.replace(ex, on_event=None))."""

    workdir: str
    sweep: str
    stage_fn: StageFn = pipeline_stage
    tracker: Tracker = dataclasses.field(default_factory=Tracker)
    on_event: OnEvent | None = None
    # Stages whose done/failed event was emitted here; the driver emits the others'.
    reported: set[str] = dataclasses.field(default_factory=set)
    store: str | None = None  # the project store's root (None: the workdir)

    def open_store(self) -> Store:
        return Store(self.workdir, self.store)

    def __call__(self, stage: PlannedStage, report: Report | None = None) -> dict[str, Any]:
        store = self.open_store()
        started = time.time()
        try:
            work = store.begin(stage.name)  # StageBusy: another live process runs it
        except OSError as e:
            raise self._failed(store, stage, e, None) from e
        self._emit({"event": "start"}, stage)
        run = self.tracker.start(stage, self.sweep)

        def progress(metrics: dict[str, Any]) -> None:
            run.log(metrics)
            if report is not None:
                report(metrics)
            self._emit({"event": "progress", "metrics": metrics}, stage)

        try:
            inputs = {role: store.final(name) for role, name in stage.inputs.items()}
            for role, name in stage.inputs.items():
                if not store.is_done(name):
                    raise UserError(f"input {role} ({name}): {store.problem(name)}")
            upstream = store.input_outputs(stage.inputs)
            result = self.stage_fn(stage.kind, stage_config(stage), inputs, work, progress)
            result = json.loads(json.dumps(result if result is not None else {}))
            meta = make_meta(
                stage.kind, stage.key, stage.config, stage.inputs, result, started, time.time(),
                upstream,
            )  # fmt: skip
            store.commit(stage.name, meta)
        except KeyboardInterrupt as e:  # stopped, not failed: the .partial stays to resume
            store.note(stage.name, f"interrupted ({interrupted(e).signal_name})")
            with contextlib.suppress(Exception):
                run.fail(f"interrupted ({interrupted(e).signal_name})")
            raise
        except Exception as e:
            raise self._failed(store, stage, e, run) from e
        run.finish(result)
        self._emit({"event": "done", "result": result, "seconds": time.time() - started}, stage)
        return result

    def _failed(
        self, store: Store, stage: PlannedStage, e: Exception, run: TrackerRun | None
    ) -> StageFailed:
        """Record the failure (best effort: the disk may be full) and say so."""
        full = disk_error(e)
        if full is not None:
            message = write_error_message(full, store.partial(stage.name))
        elif isinstance(e, UserError):
            message = str(e)
        else:
            message = f"{type(e).__name__}: {e}"
        for name in stage.inputs.values():
            if str(store.final(name)) in message:  # a damaged input: say how to get it anew
                message += (
                    f" (input stage {name} is damaged: rerun with --redo {name} to compute "
                    "it again; `clapsweep verify` checks stages)"
                )
                break
        record = store.fail(stage.name, message, traceback.format_exc())
        if run is not None:
            with contextlib.suppress(Exception):
                run.fail(message)
        self._emit({"event": "failed", "message": message, "log": record["log"]}, stage)
        return (DiskFull if full is not None else StageFailed)(stage.name, message, record["log"])

    def _emit(self, event: dict[str, Any], stage: PlannedStage) -> None:
        if self.on_event is not None:
            self.on_event(event | stage.event_fields())
            if event["event"] in ("done", "failed"):
                self.reported.add(stage.name)
