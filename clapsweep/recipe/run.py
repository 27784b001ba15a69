"""`clapsweep run` for a sweep spec: the data checked (or synthworld generated), the plan
built, stages to redo forgotten, spec.yaml and plan.json written, the backend and tracker the
spec asks for made, and then the engine (clapsweep.sweep.runner.run_plan) runs the plan.
Also the inspection that reads a spec: describe_plan (dry run), status, spec_drift."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import yaml

from clapsweep.errors import UserError
from clapsweep.recipe.plan import build_plan, student_schedule
from clapsweep.recipe.spec import STAGE_KINDS, SweepSpec
from clapsweep.store import Store, atomic_file, folder_bytes, write_error_message, write_json
from clapsweep.sweep.executor import OnEvent, StageExecutor, StageFn, Tracker, pipeline_stage
from clapsweep.sweep.gc import register_sweep, sweeps_of
from clapsweep.sweep.local import Backend, Interrupted, LocalBackend
from clapsweep.sweep.plan import Plan, load_plan
from clapsweep.sweep.runner import nothing_ran, resolve_stage, run_plan
from clapsweep.sweep.slurm_profile import SlurmProfile, load_profile
from clapsweep.sweep.state import DONE, FAILED, STATES, stage_state


def make_tracker(spec: SweepSpec) -> Tracker:
    if not spec.tracking.wandb.enabled:
        return Tracker()
    from clapsweep.sweep.tracking import WandbTracker  # imports wandb: only when tracking

    return WandbTracker(spec)


def make_backend(
    spec: SweepSpec, retries: int | None = None, grace: float | None = None
) -> Backend:
    """The backend the spec asks for, with its options: the one place that reads them.
    `retries` and `grace` (the command line's) set the local backend's when given."""
    b = spec.backend
    if b.kind == "local":
        given = {"retries": retries, "grace": grace}
        return LocalBackend(b.workers, **{k: v for k, v in given.items() if v is not None})
    if b.kind == "slurm":
        from clapsweep.sweep.slurm_backend import SlurmBackend

        return SlurmBackend(slurm_profile(spec), spec.name, Store(spec.workdir, spec.store))
    return ray_backend(spec)


def ray_backend(spec: SweepSpec) -> Any:
    """The Ray backend of the spec's backend options (a search's Ray, whatever the kind)."""
    from clapsweep.sweep.ray_backend import RayBackend  # imports ray: only when used

    b = spec.backend
    resources = {kind: dataclasses.asdict(r) for kind, r in b.resources.items()}
    return RayBackend(spec.workdir, b.address, b.max_concurrent, resources)


def slurm_profile(spec: SweepSpec) -> SlurmProfile:
    """The sweep's SLURM profile (backend.profile) with its backend.slurm overrides."""
    return load_profile(spec.backend.profile, spec.backend.slurm)


# ----------------------------------------------------------------------------- the sweep


def run_sweep(
    spec: SweepSpec,
    backend: Backend | None = None,
    stage_fn: StageFn | None = None,
    dry_run: bool = False,
    on_event: OnEvent | None = None,
    tracker: Tracker | None = None,
    retries: int | None = None,
    grace: float | None = None,
    redo: list[str] | None = None,
) -> dict[str, Any]:
    """Run every stage of the sweep that is not finished yet; returns a summary.

    stage_fn defaults to clapsweep.pipeline.run_stage; backend and tracker default to what
    the spec asks for (`retries` and `grace` then set the local backend's: how often a stage
    whose worker died runs again, how long running stages get after an interrupt). With
    dry_run nothing is written or run: the result is describe_plan's.

    Interrupted (Ctrl-C; SIGTERM and SIGHUP under stop_signals) stops the sweep: no new
    stage starts, the running ones stop (see the backend), and Interrupted is raised with the
    summary of what ran as its `summary`. A stage that cannot write (disk full, over quota)
    stops the sweep too: the summary's `stopped` says why. A .partial folder that another
    live process on this host owns is left alone: "running elsewhere". `redo` names stages
    (by name, key or key prefix) to forget first; their dependants then recompute as stale.
    """
    emit = on_event or (lambda event: None)
    if dry_run:
        return describe_plan(spec) | {"dry_run": True}
    start = time.time()
    ensure_data(spec, emit)  # before anything is written: a bad root leaves no trace
    plan = build_plan(spec)  # after the data exist: keys hold their fingerprints
    store = Store(spec.workdir, spec.store)
    doomed = [resolve_stage(plan, text) for text in redo or []]
    with store.lock():  # a UserError when the workdir cannot be written
        for name in doomed:
            store.remove(name)
        summary, stop = _run_locked(
            spec, plan, store, backend, stage_fn, on_event, tracker, retries, grace, emit
        )
    summary["duration_s"] = round(time.time() - start, 3)
    if stop is not None:
        stop.summary = summary
        raise stop
    return summary


def _run_locked(
    spec: SweepSpec,
    plan: Plan,
    store: Store,
    backend: Backend | None,
    stage_fn: StageFn | None,
    on_event: OnEvent | None,
    tracker: Tracker | None,
    retries: int | None,
    grace: float | None,
    emit: OnEvent,
) -> tuple[dict[str, Any], Interrupted | None]:
    try:
        _write_records(spec, plan, store)
    except OSError as e:  # nothing ran: every stage is "not run" (atomic_file left nothing)
        stopped = write_error_message(e, spec.workdir)
        head = {"sweep": spec.name, "workdir": spec.workdir, "backend": spec.backend.kind}
        return head | {"dry_run": False} | nothing_ran(plan, stopped), None
    own_backend = backend is None
    backend = backend or make_backend(spec, retries, grace)
    tracker = tracker or make_tracker(spec)
    executor = StageExecutor(
        spec.workdir, spec.name, stage_fn or pipeline_stage, tracker, on_event, store=spec.store
    )
    try:
        summary, stop = run_plan(plan, store, backend, executor, emit)
    finally:
        if own_backend:
            backend.close()
    summary = {
        "sweep": spec.name,
        "workdir": spec.workdir,
        "backend": backend.name,
        "dry_run": False,
        **summary,
    }
    tracker.close(summary)
    return summary, stop


def _write_records(spec: SweepSpec, plan: Plan, store: Store) -> None:
    """spec.yaml (the resolved spec, loadable as is) and plan.json, for `report` and `status`."""
    store.workdir.mkdir(parents=True, exist_ok=True)
    text = "# Written by clapsweep run: the sweep as resolved (paths absolute).\n"
    text += "".join(f"# override: {o}\n" for o in getattr(spec, "overrides", []))
    text += yaml.safe_dump(dataclasses.asdict(spec), sort_keys=False)
    with atomic_file(store.workdir / "spec.yaml") as f:
        f.write(text)
    write_json(store.workdir / "plan.json", plan.to_json())
    if store.root != store.workdir:  # a project store: say which sweeps use it (for gc)
        register_sweep(store, spec.name)


def ensure_data(spec: SweepSpec, on_event: OnEvent | None = None) -> None:
    """Generate synthworld into data.root if the spec asks for it (a no-op once it is there);
    otherwise data.root must hold the datasets."""
    root = Path(spec.data.root)
    synth = spec.data.synth
    if synth is not None:
        from clapsweep.data import synthworld

        if on_event is not None:
            on_event({"event": "data", "root": str(root), "scale": synth.scale})
        synthworld.generate(root, scale=synth.scale, seed=synth.seed)
    elif not (root.is_dir() and any(root.iterdir())):
        raise UserError(
            f"data.root: {root} is missing or empty; point it (or CLAPSWEEP_DATA) at your "
            "datasets (docs/datasets.md), or add data.synth to generate the offline synthworld"
        )
    custom = spec.data.custom_tasks
    names = [*spec.data.teacher, spec.data.wild, *(t for t in spec.data.tasks if t not in custom)]
    for task in spec.data.tasks:
        if task in custom:  # a custom task's CSV is checked (header, fields) before anything runs
            from clapsweep.data.custom import read_rows

            read_rows(task, custom[task].csv)
    missing = [n for n in names if not (root / n).is_dir()]
    if missing:
        raise UserError(
            f"data.root: {root} has no {', '.join(missing)} folder; each dataset lives in "
            "<root>/<name>/ in its official layout (docs/datasets.md)"
        )


# ----------------------------------------------------------------------------- inspection


def describe_plan(spec: SweepSpec, plan: Plan | None = None) -> dict[str, Any]:
    """Per stage kind: total, done, new, shared (used by more than one trial) and, with a
    project store, other_sweeps (also planned by another sweep that uses the store)."""
    plan = plan or build_plan(spec)
    store = Store(spec.workdir, spec.store)
    others = _planned_elsewhere(store)
    fields = ("total", "done", "new", "shared", "other_sweeps")
    kinds = {k: dict.fromkeys(fields, 0) for k in STAGE_KINDS}
    for stage in plan.stages.values():
        row = kinds[stage.kind]
        row["total"] += 1
        row["done" if store.is_done(stage.name) else "new"] += 1
        row["shared"] += len(stage.users) > 1
        row["other_sweeps"] += stage.name in others
    totals = {f: sum(r[f] for r in kinds.values()) for f in fields}
    resources = {k: dataclasses.asdict(r) for k, r in spec.backend.resources.items()}
    try:
        schedule = student_schedule(spec, plan)
    except UserError as e:  # no data yet: the plan is still worth showing
        schedule = {"teacher_pairs": None, "students": [], "unavailable": str(e)}
    return {
        "sweep": spec.name,
        "workdir": spec.workdir,
        "backend": spec.backend.kind,
        "layers": len(plan.layers()),
        "kinds": kinds,
        "totals": totals,
        "resources": resources,
        "schedule": schedule,
    }


def _planned_elsewhere(store: Store) -> set[str]:
    """The stages other sweeps sharing this project store plan (none without one)."""
    if store.root == store.workdir:
        return set()
    here = str(store.workdir.resolve())
    return set().union(*(s["stages"] for s in sweeps_of(store.root) if s["workdir"] != here))


def spec_drift(spec: SweepSpec) -> list[str]:
    """How the spec as it resolves now differs from the one the last run stored (spec.yaml):
    'data.root: /datasets -> /home/me/data/real', one line per changed value."""
    path = Path(spec.workdir) / "spec.yaml"
    try:
        stored = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return []
    now = json.loads(json.dumps(dataclasses.asdict(spec)))
    return [f"{k}: {a!r} -> {b!r}" for k, a, b in _differences(stored, now, "")]


def _differences(a: Any, b: Any, where: str):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            yield from _differences(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))
    elif a != b:
        yield where, a, b


def sweep_plan(spec: SweepSpec) -> tuple[Plan, list[str]]:
    """The sweep's plan and what differs: the stored plan.json when a run wrote one (the
    sweep as it ran), else the spec's; the list says how the spec now resolves differently
    (an unset variable, a changed root or data), empty when it agrees."""
    stored = load_plan(spec.workdir)
    plan = build_plan(spec)
    if stored is None or set(stored.stages) == set(plan.stages):
        return plan, []
    drift = spec_drift(spec) or ["the data or checkpoint files changed (their fingerprints)"]
    new = len(set(plan.stages) - set(stored.stages))
    return stored, [
        *drift,
        f"{new} stage(s) of the spec as it resolves now are not in the stored plan",
    ]


def _disk(store: Store, name: str, meta: dict[str, Any]) -> int:
    if meta.get("files"):
        return sum(f["size"] for f in meta["files"].values())
    return folder_bytes(store.final(name))


def status(spec: SweepSpec) -> dict[str, Any]:
    """Per stage kind: done / running / failed / pending (clapsweep.sweep.state, the model
    the report reads too) and disk used, and the failures, for the stored plan (see
    sweep_plan; `drift` says how the spec now differs)."""
    plan, drift = sweep_plan(spec)
    store = Store(spec.workdir, spec.store)
    locked = store.is_locked()
    fields = ("total", *STATES)
    kinds = {k: dict.fromkeys(fields, 0) | {"bytes": 0} for k in STAGE_KINDS}
    failures = []
    for stage in plan.stages.values():
        state = stage_state(store, stage.name, locked)
        if state.state == DONE:
            kinds[stage.kind]["bytes"] += _disk(store, stage.name, state.meta)
        elif state.state == FAILED:
            who = {"name": stage.name, "kind": stage.kind, "key": stage.key}
            failures.append(who | state.failure)
        kinds[stage.kind]["total"] += 1
        kinds[stage.kind][state.state] += 1
    totals = {f: sum(r[f] for r in kinds.values()) for f in (*fields, "bytes")}
    return {
        "sweep": spec.name,
        "workdir": spec.workdir,
        "locked": locked,
        "kinds": kinds,
        "totals": totals,
        "failures": failures,
        "drift": drift,
    }
