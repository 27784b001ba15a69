"""Search with Ray Tune over trials that are small stage DAGs sharing one store.

The engine's half of a search (the recipe's is clapsweep.recipe.search): a Tune experiment
whose trainable runs a trial's stages through a StageExecutor, and the helper it uses to run
them. Trials that need the same stage (the teacher, a curation that two trials' values
share) compute it once: the first trial claims it with an exclusive lock beside its folder,
the others wait for it and then read it from the store. The lock dies with its process, so
a trial killed mid-stage leaves a stage the next trial (or run) takes over and resumes.

Restarts: the experiment lives in `storage/<name>`; a run that finds it restores it
(Tuner.restore), so finished trials are not run again, and trials that were running resume
with their finished stages from the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from clapsweep.store import Store
from clapsweep.sweep.executor import StageExecutor
from clapsweep.sweep.plan import PlannedStage

POLL_S = 0.5


@contextlib.contextmanager
def claim(store: Store, name: str) -> Iterator[bool]:
    """Try to claim stage `name` for this process; yields False when another process holds
    it (it is computing the stage now)."""
    path = store.root / "stages" / f"{name}.claim"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def run_stages(
    stages: list[PlannedStage],
    execute: StageExecutor,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, str]:
    """Run `stages` (inputs first) to completion in the store; returns how each was had:
    "cached" (finished before), "ran" (computed here) or "waited" (another trial computed
    it meanwhile). A stage that fails raises StageFailed."""
    store = execute.open_store()
    how: dict[str, str] = {}
    for stage in stages:
        waited = False
        while not store.is_done(stage.name):
            with claim(store, stage.name) as mine:
                if mine and not store.is_done(stage.name):
                    execute(stage, report)
                    how[stage.name] = "ran"
                    break
            waited = True
            time.sleep(POLL_S)
        how.setdefault(stage.name, "waited" if waited else "cached")
    return how


def tune_search(
    *,
    name: str,
    storage: Path,
    trainable: Any,
    param_space: dict[str, Any],
    metric: str,
    mode: str,
    search_alg: Any,
    scheduler: Any,
    num_samples: int,
    max_concurrent: int,
    resources: dict[str, float],
) -> Any:
    """Run (or, when `storage/name` holds it, restore and finish) one Tune experiment;
    returns its ResultGrid. The caller has connected to Ray."""
    from ray import tune

    trainable = tune.with_resources(trainable, resources)
    path = Path(storage) / name
    if tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(
            str(path), trainable, resume_unfinished=True, resume_errored=True
        )
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=metric,
                mode=mode,
                search_alg=search_alg,
                scheduler=scheduler,
                num_samples=num_samples,
                max_concurrent_trials=max_concurrent,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(Path(storage).resolve()),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )
    # Tune prints its banners with print(); stdout is for our own results (--json).
    with contextlib.redirect_stdout(sys.stderr):
        return tuner.fit()
