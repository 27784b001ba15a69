"""The engine's driver: run a Plan in a Store layer by layer through a Backend, each stage by
a StageExecutor (stage function + tracker), and summarise. It knows no dataset, strategy or
spec: clapsweep.recipe.run builds the plan, the backend and the executor from a sweep spec.

All state lives in the store (see clapsweep.store), none in the driver: a driver killed at
any moment is restarted with the same command. Finished stages are never run again, a stage
that was interrupted resumes in its .partial folder, a failed one is retried, and the
dependents of a failed stage are skipped while the rest of the sweep goes on.

Hooks:
- `Backend` (clapsweep.sweep.local) runs one layer.
- `Tracker` (clapsweep.sweep.executor) receives each stage execution (start, progress, final
  metrics or failure) in the process that runs it; the caller closes it with the summary.
"""

from __future__ import annotations

import traceback
from typing import Any

from clapsweep.errors import UserError
from clapsweep.store import StageBusy, Store, describe_owner
from clapsweep.sweep.executor import OnEvent, StageExecutor, StageFailed
from clapsweep.sweep.local import Backend, Interrupted, interrupted, stops_sweep
from clapsweep.sweep.plan import Plan, PlannedStage


def resolve_stage(plan: Plan, text: str) -> str:
    """The plan's stage named by `text`: its full name, its key, or a unique key prefix."""
    names = [n for n, s in plan.stages.items() if text in (n, s.key)]
    names = names or [n for n, s in plan.stages.items() if s.key.startswith(text)]
    if len(names) == 1:
        return names[0]
    if not names:
        raise UserError(
            f"--redo {text}: no stage of this sweep has that name or key; "
            "`clapsweep status SWEEP --json` lists them"
        )
    raise UserError(f"--redo {text}: names {len(names)} stages ({', '.join(names[:3])}, ...); "
                    "give more of the key")  # fmt: skip


def run_plan(
    plan: Plan, store: Store, backend: Backend, executor: StageExecutor, emit: OnEvent
) -> tuple[dict[str, Any], Interrupted | None]:
    """Run every stage of the plan the store does not hold yet (the caller holds the store's
    lock); the summary's counts and lists, and the interrupt that stopped the run (None when
    none did)."""
    todo = [s for s in plan.stages.values() if not store.is_done(s.name)]
    emit(
        {
            "event": "plan",
            "stages_total": len(plan.stages),
            "stages_cached": len(plan.stages) - len(todo),
        }
    )
    return _run_layers(plan, store, backend, executor, emit)


def nothing_ran(plan: Plan, stopped: str) -> dict[str, Any]:
    """The summary of a run stopped (`stopped` says why) before any stage: all "not run"."""
    return _summary(plan, {}, [], [], [], None, stopped)


BLOCKING = ("failed", "skipped", "elsewhere", "not run")


def _run_layers(
    plan: Plan, store: Store, backend: Backend, executor: StageExecutor, emit: OnEvent
) -> tuple[dict[str, Any], Interrupted | None]:
    """Run the layers; the summary's counts and lists, and the interrupt that stopped them
    (None when none did)."""
    # name -> cached | executed | failed | skipped | elsewhere | not run
    state: dict[str, str] = {}
    failures: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    elsewhere: list[dict[str, Any]] = []
    stop: Interrupted | None = None
    stopped: str | None = None  # why the sweep stopped early (a full disk)

    def left_alone(stage: PlannedStage, owner: str) -> None:
        state[stage.name] = "elsewhere"
        elsewhere.append(stage.event_fields() | {"owner": owner})
        emit({"event": "elsewhere", "owner": owner} | stage.event_fields())

    try:
        for index, layer in enumerate(plan.layers()):
            ready = []
            for stage in layer:
                if store.is_done(stage.name):
                    state[stage.name] = "cached"
                    continue
                blocked = [n for n in stage.inputs.values() if state.get(n) in BLOCKING]
                if blocked:
                    state[stage.name] = "skipped"
                    skipped.append(stage.event_fields() | {"because": blocked[0]})
                    emit({"event": "skipped", "because": blocked[0]} | stage.event_fields())
                    continue
                checks = getattr(backend, "checks_owners", False)
                owner = store.live_owner(stage.name) if checks else None
                if owner is not None:
                    left_alone(stage, describe_owner(owner))
                    continue
                ready.append(stage)
            if not ready:
                continue
            emit({"event": "layer", "layer": index, "stages": len(ready)})
            try:
                results = backend.run_layer(ready, executor)
            except KeyboardInterrupt as e:
                stop = interrupted(e)
                results = stop.results
            full = [o for o in results.values() if stops_sweep(o)]
            if full:
                stopped = str(full[0])
            for stage in ready:
                outcome = results.get(stage.name)
                told = stage.name in executor.reported  # in-process: already announced
                if isinstance(outcome, dict | None) and store.is_done(stage.name):
                    state[stage.name] = "executed"
                    if not told:
                        seconds = store.meta(stage.name).get("duration_s")  # not queue time
                        emit(
                            {"event": "done", "result": outcome or {}, "seconds": seconds}
                            | stage.event_fields()
                        )
                    continue
                if outcome is None and (stop is not None or stopped is not None):
                    state[stage.name] = "not run"  # never started, or stopped: not failed
                    continue
                if isinstance(outcome, StageBusy):
                    left_alone(stage, outcome.owner)
                    continue
                state[stage.name] = "failed"
                failure = _failure(store, stage, outcome)
                failures.append(failure)
                if not told:
                    emit({"event": "failed"} | failure | {"users": stage.users})
            if stop is not None or stopped is not None:
                break
    except KeyboardInterrupt as e:  # between layers, or while recording one
        stop = interrupted(e)
    return _summary(plan, state, failures, skipped, elsewhere, stop, stopped), stop


def _summary(
    plan: Plan,
    state: dict[str, str],
    failures: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
    elsewhere: list[dict[str, Any]],
    stop: Interrupted | None,
    stopped: str | None,
) -> dict[str, Any]:
    for name in plan.stages:
        state.setdefault(name, "not run")
    count = list(state.values()).count
    return {
        "stages_total": len(plan.stages),
        "stages_executed": count("executed"),
        "stages_cached": count("cached"),
        "stages_failed": count("failed"),
        "stages_skipped": count("skipped"),
        "stages_elsewhere": count("elsewhere"),
        "stages_not_run": count("not run"),
        "failures": failures,
        "skipped": skipped,
        "elsewhere": elsewhere,
        "interrupted": stop.signal_name if stop is not None else None,
        "stopped": stopped,
    }


def _failure(store: Store, stage: PlannedStage, outcome: Any) -> dict[str, Any]:
    """The failure record of a stage; the backend's error is recorded if execute could not."""
    if isinstance(outcome, StageFailed):
        message, log = outcome.message, outcome.log
    else:
        record = store.failure(stage.name)
        if record is None:
            # The backend lost the stage (a worker died, a job was cancelled, ...).
            if isinstance(outcome, BaseException):
                message = f"{type(outcome).__name__}: {outcome}"
                text = "".join(traceback.format_exception(outcome))
            else:
                message, text = "the backend returned no result for this stage", ""
            record = store.fail(stage.name, message, text)
        message, log = record["message"], record["log"]
    return {
        "name": stage.name,
        "kind": stage.kind,
        "key": stage.key,
        "message": message,
        "log": log,
    }
