"""Choosing a row's values without the test folds: a Tune search per task, then a re-run.

A sweep with `search:` first searches, per task, the values of one grid row (thresholds,
beta, replay, student lr or epochs) with Ray Tune. A trial is the stage sub-DAG of one row
at the search seed (grid.seed[0]) and fraction (grid.teacher_fraction[0]): teacher ->
embed -> curate(s) -> student -> eval, keyed like every stage, so trials share the teacher,
the embeddings and any curation their values have in common. The trial's eval reads only
the task's validation folds; so does the student's per-epoch validation, which ASHA uses to
stop weak trials early (a stopped student stays unfinished in the store and is recorded as
stopped). The best finished trial's values then replace the row for that task, and the
whole sweep runs as usual with every seed, every eval leaving the validation folds out.

Records, under <workdir>/search/<task>/: `trials/<trial id>.json` (one per finished trial,
written by the trial: the store's word that it is done) and `search.json` (all trials, the
best, the signature of the search it belongs to). A later run with the same signature uses
search.json and does not search again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from clapsweep.errors import UserError
from clapsweep.recipe.plan import build_plan, data_fingerprints
from clapsweep.recipe.search_spec import validation_folds
from clapsweep.recipe.spec import GridSpec, RowSpec, SweepSpec
from clapsweep.store import Store, write_json
from clapsweep.sweep.executor import OnEvent, StageExecutor
from clapsweep.sweep.plan import PlannedStage
from clapsweep.sweep.ray_backend import DEFAULT_RESOURCES

METRIC = "val_accuracy"
THRESHOLD_AXES = ("sigma", "sigma_ds")
ROW_AXES = ("beta", "replay")  # the other row fields; lr and epochs are row train keys


# ----------------------------------------------------------------------------- trials


def trial_row(row: RowSpec, task: str, values: dict[str, Any]) -> RowSpec:
    """The row with a trial's (or the chosen) values, for `task` only."""
    changes: dict[str, Any] = {"tasks": [task]}
    train = dict(row.train or {})
    for axis, value in values.items():
        if axis in THRESHOLD_AXES or axis in ROW_AXES:
            changes[axis] = float(value)
        else:  # lr, epochs
            train[axis] = int(value) if axis == "epochs" else float(value)
    if train:
        changes["train"] = train
    return dataclasses.replace(row, **changes)


def search_row(spec: SweepSpec) -> RowSpec:
    return next(r for r in spec.grid.rows if r.name == spec.search.row)


def trial_spec(spec: SweepSpec, task: str, values: dict[str, Any]) -> SweepSpec:
    """The one-row, one-seed, one-fraction sweep a trial is."""
    grid = GridSpec(
        rows=[trial_row(search_row(spec), task, values)],
        seed=[spec.grid.seed[0]],
        teacher_fraction=[spec.grid.teacher_fraction[0]],
    )
    return dataclasses.replace(spec, grid=grid, msclap_checkpoint=None)


def trial_stages(
    spec: SweepSpec, task: str, values: dict[str, Any], prints: dict[str, str], trial: str
) -> list[PlannedStage]:
    """The trial's stages, inputs first: the student's validation eval and what it reads.
    The student validates after each epoch (runtime: outside its key, so it is the same
    stage as the final run's at that seed)."""
    plan = build_plan(trial_spec(spec, task, values), prints, split="validation")
    student = next(s for s in plan.stages.values() if s.kind == "student")
    evaluation = next(
        s
        for s in plan.stages.values()
        if s.kind == "eval" and s.inputs.get("model") == student.name
    )
    needed = _ancestors(plan.stages, evaluation.name)
    stages = [s for name, s in plan.stages.items() if name in needed]
    folds = validation_folds(spec)[task]
    student.config["runtime"] = {
        **student.config["runtime"],
        "validate": {"task": task, "folds": folds},
    }
    for stage in stages:
        for user in stage.users:
            user["swept"] = {**user.get("swept", {}), "trial": trial}
    return stages


def _ancestors(stages: dict[str, PlannedStage], name: str) -> set[str]:
    out, todo = set(), [name]
    while todo:
        n = todo.pop()
        if n not in out:
            out.add(n)
            todo.extend(stages[n].inputs.values())
    return out


def run_trial(
    config: dict[str, Any],
    spec: SweepSpec,
    task: str,
    prints: dict[str, str],
    folder: str,
    tracker: Any,
) -> None:
    """One Tune trial (in a Ray worker): its stages through the store, validation accuracy
    to Tune after each student epoch and at the end; a record once it finished."""
    from ray import tune

    from clapsweep.sweep.search import run_stages

    trial = tune.get_context().get_trial_id()
    record_path = Path(folder) / "trials" / f"{trial}.json"
    if record_path.is_file():  # finished before a restart: say so again, compute nothing
        record = json.loads(record_path.read_text())
        tune.report({METRIC: record[METRIC], "epoch": record["epochs"], "finished": 1})
        return
    started = time.time()
    stages = trial_stages(spec, task, config, prints, trial)
    history: list[dict[str, Any]] = []
    student = next(s for s in stages if s.kind == "student")
    last = student.config["train"]["epochs"]

    def report(metrics: dict[str, Any]) -> None:
        if "validation_accuracy" in metrics:
            history.append({"epoch": metrics["epoch"], METRIC: metrics["validation_accuracy"]})
            # The last epoch is reported by the eval below: ASHA ends a trial that reaches
            # max_t (raising SystemExit in it), which would leave the student uncommitted.
            if metrics["epoch"] < last:
                tune.report({METRIC: metrics["validation_accuracy"], "epoch": metrics["epoch"]})

    execute = StageExecutor(
        spec.workdir, search_name(spec, task), tracker=tracker, store=spec.store
    )
    how = run_stages(stages, execute, report)
    store = Store(spec.workdir, spec.store)
    evaluation = next(s for s in stages if s.kind == "eval")  # the student's, on validation
    accuracy = store.meta(evaluation.name)["result"][task]["accuracy"]
    epochs = store.meta(student.name)["result"]["epochs"]
    record = {
        "trial": trial,
        "values": dict(config),
        "status": "finished",
        METRIC: accuracy,
        "epochs": epochs,
        "history": history,
        "stages": {s.name: how[s.name] for s in stages},
        "seconds": round(time.time() - started, 1),
    }
    write_json(record_path, record)
    tune.report({METRIC: accuracy, "epoch": epochs, "finished": 1})


# ----------------------------------------------------------------------------- the search


def search_name(spec: SweepSpec, task: str) -> str:
    return f"{spec.name}-search-{task}"


def signature(spec: SweepSpec, task: str) -> str:
    """What a task's search result depends on: the search section, the row, the trials'
    seed and fraction and everything their stages read. A change searches anew."""
    parts = {
        "search": spec.search,
        "row": search_row(spec),
        "seed": spec.grid.seed[0],
        "fraction": spec.grid.teacher_fraction[0],
        "task": task,
        **{
            k: getattr(spec, k) for k in ("data", "frontend", "model", "train", "student", "curate")
        },
    }
    blob = json.dumps({k: _plain(v) for k, v in parts.items()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def search_tasks(spec: SweepSpec) -> list[str]:
    return list(spec.search.tasks or spec.data.tasks)


def folder_of(spec: SweepSpec, task: str) -> Path:
    return Path(spec.workdir) / "search" / task


def load_result(spec: SweepSpec, task: str) -> dict[str, Any] | None:
    """The finished search of `task` for this spec (search.json), or None."""
    path = folder_of(spec, task) / "search.json"
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or result.get("signature") != signature(spec, task):
        return None  # another search's, or damaged: search again
    return result


def run_search(spec: SweepSpec, ray: Any, tracker: Any, on_event: OnEvent | None = None) -> dict:
    """Search every task of the spec's search (skipping those already searched); returns
    {task: search result}. `ray` is a RayBackend: it starts or joins Ray, and its student
    resources are each trial's."""
    emit = on_event or (lambda event: None)
    prints = data_fingerprints(spec)
    results = {}
    for task in search_tasks(spec):
        result = load_result(spec, task)
        if result is None:
            ray.connect()
            student = ray.resources.get("student", DEFAULT_RESOURCES)
            result = _search_task(spec, task, prints, tracker, student, emit)
        emit(
            {
                "event": "search",
                "task": task,
                "best": result["best"],
                "trials": len(result["trials"]),
            }
        )
        results[task] = result
    return results


def _search_task(
    spec: SweepSpec, task: str, prints: dict, tracker: Any, resources: dict, emit: OnEvent
) -> dict:
    from ray import tune

    from clapsweep.sweep.search import tune_search

    search = spec.search
    folder = folder_of(spec, task)
    (folder / "trials").mkdir(parents=True, exist_ok=True)
    sig = signature(spec, task)
    started = time.time()
    trainable = tune.with_parameters(
        run_trial, spec=spec, task=task, prints=prints, folder=str(folder), tracker=tracker
    )
    grid = tune_search(
        name=f"tune-{sig}",
        storage=folder,
        trainable=trainable,
        param_space=param_space(search),
        metric=METRIC,
        mode="max",
        search_alg=search_alg(search),
        scheduler=scheduler(search, max_epochs(spec)),
        num_samples=search.num_samples or (1 if search.searcher == "grid" else 8),
        max_concurrent=search.max_concurrent,
        resources=resources,
    )
    trials = [_trial_summary(r, folder) for r in grid]
    trials.sort(key=lambda t: t["trial"])
    finished = [t for t in trials if t["status"] == "finished"]
    if not finished:
        raise UserError(
            f"search of {task}: no trial finished ({len(trials)} stopped or failed); see "
            f"{folder} and the stage logs"
        )
    best = max(finished, key=lambda t: t[METRIC])
    result = {
        "task": task,
        "signature": sig,
        "search": search_name(spec, task),
        "validation_folds": validation_folds(spec)[task],
        "trials": trials,
        "best": {"trial": best["trial"], "values": best["values"], METRIC: best[METRIC]},
        "seconds": round(time.time() - started, 1),
    }
    write_json(folder / "search.json", result)
    return result


def _trial_summary(result: Any, folder: Path) -> dict[str, Any]:
    """A trial as search.json shows it: its record when it finished, else stopped (ASHA) or
    failed, with the epochs and validation accuracy it reached."""
    metrics = result.metrics or {}
    trial = metrics.get("trial_id") or Path(result.path).name.split("_")[1]
    path = folder / "trials" / f"{trial}.json"
    if path.is_file():
        record = json.loads(path.read_text())
        return {k: record[k] for k in ("trial", "values", "status", METRIC, "epochs", "stages")}
    status = "failed" if result.error is not None else "stopped"
    return {
        "trial": trial,
        "values": dict(result.config or {}),
        "status": status,
        METRIC: metrics.get(METRIC),
        "epochs": metrics.get("epoch", 0),
        "stages": {},
        **({"error": str(result.error).strip().splitlines()[-1]} if result.error else {}),
    }


def max_epochs(spec: SweepSpec) -> int:
    row = search_row(spec)
    epochs = (row.train or {}).get("epochs", spec.student_train().epochs)
    dist = spec.search.space.get("epochs")
    if dist:
        epochs = max(next(iter(dist.values())))
    return int(epochs)


def param_space(search: Any) -> dict[str, Any]:
    from ray import tune

    make = {
        "uniform": lambda v: tune.uniform(*v),
        "loguniform": lambda v: tune.loguniform(*v),
        "choice": tune.choice,
        "grid": tune.grid_search,
    }
    return {
        axis: make[name](values) for axis, d in search.space.items() for name, values in d.items()
    }


def search_alg(search: Any) -> Any:
    """Tune's searcher: random and grid sample the space (seeded), optuna is TPE."""
    if search.searcher == "optuna":
        import optuna
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per study and trial
        return ConcurrencyLimiter(OptunaSearch(seed=search.seed), search.max_concurrent)
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(random_state=search.seed)


def scheduler(search: Any, epochs: int) -> Any:
    if search.scheduler == "none" or epochs <= search.grace_epochs:
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="epoch",
        max_t=epochs,
        grace_period=search.grace_epochs,
        reduction_factor=search.reduction_factor,
    )


# ----------------------------------------------------------------------------- the re-run


def final_spec(spec: SweepSpec, results: dict[str, dict]) -> SweepSpec:
    """The sweep with the searched row replaced, per searched task, by its best values (all
    seeds, all fractions of the row); tasks not searched keep the row as written."""
    row = search_row(spec)
    searched = [t for t in search_tasks(spec) if t in results]
    rest = [t for t in (row.tasks or spec.data.tasks) if t not in searched]
    rows = []
    for r in spec.grid.rows:
        if r.name != row.name:
            rows.append(r)
            continue
        if rest:
            rows.append(dataclasses.replace(r, tasks=rest))
        rows += [trial_row(r, t, results[t]["best"]["values"]) for t in searched]
    return dataclasses.replace(spec, grid=dataclasses.replace(spec.grid, rows=rows))


def with_search_results(spec: SweepSpec) -> SweepSpec:
    """The spec as its last run ran it: with the search's chosen values when every task's
    search is finished (for report and status), else as written."""
    if spec.search is None:
        return spec
    results = {t: load_result(spec, t) for t in search_tasks(spec)}
    if any(r is None for r in results.values()):
        return spec
    return final_spec(spec, results)


# ----------------------------------------------------------------------------- the command


def run_method(
    spec: SweepSpec, search_only: bool = False, on_event: OnEvent | None = None, **kw: Any
) -> dict[str, Any]:
    """`clapsweep run`: the sweep, after its search when it has one (`search_only`: stop
    after the search). Other keywords go to run.run_sweep."""
    from clapsweep.recipe.run import ensure_data, make_tracker, ray_backend, run_sweep

    if spec.search is None:
        return run_sweep(spec, on_event=on_event, **kw)
    ensure_data(spec, on_event)
    ray = ray_backend(spec)
    started = time.time()
    try:
        with Store(spec.workdir, spec.store).lock():
            results = run_search(spec, ray, make_tracker(spec), on_event)
    finally:
        ray.close()
    if search_only:
        return {"sweep": spec.name, "search": results, "duration_s": time.time() - started}
    return run_sweep(final_spec(spec, results), on_event=on_event, **kw)
