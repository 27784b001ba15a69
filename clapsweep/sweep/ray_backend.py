"""The Ray backend: each DAG layer runs as one Ray Tune experiment over its ready stages.

One `ray.tune.Tuner` per layer, a grid search over the layer's stage names, each trial asking
for the resources of its stage kind (backend.resources) and at most backend.max_concurrent
trials at once. A trial runs the stage through the sweep's StageExecutor and passes the
stage's progress on with `ray.tune.report` (numeric metrics only, no Tune checkpoint; at most
one report per PROGRESS_EVERY_S and always the last), which a Tune callback in the driver
turns into the driver's progress events.

The store, not Tune, is the source of truth. A stage checkpoints into its own
`stages/<name>.partial/` folder in the workdir (which must be on a filesystem that every Ray
node sees), finishes by renaming it into place, and records a failure next to it. So a trial
that runs again (a later `clapsweep run` after a crash or a kill) resumes from that folder,
and the driver never needs `Tuner.restore`: it plans again, skips what the store says is
finished and starts a fresh Tuner for the rest. Tune's own folder, <workdir>/ray/layer<N>-<time>,
holds only its experiment state.

Started locally (backend.address null) Ray listens on the loopback interface only; this needs
the environment that `connect` sets before it imports Ray, so nothing should import Ray
earlier in the driver. A failing stage is one errored trial: the layer goes on, and the
stage's StageFailed (message and log path) comes back as its result. The stage function
travels to the workers by reference: it must be importable there (clapsweep's is).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clapsweep.errors import UserError
from clapsweep.store import StageBusy, Store
from clapsweep.sweep.executor import StageFailed
from clapsweep.sweep.local import Backend, Execute, Throttle
from clapsweep.sweep.plan import PlannedStage

LOOPBACK = "127.0.0.1"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours its error text

# Set before Ray is imported or started; never to an empty string.
QUIET_ENV = {
    "RAY_AUTH_MODE": "disabled",  # no token warning on a local cluster
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_CHDIR_TO_TRIAL_DIR": "0",  # keep the working directory (Tune passes this on)
    "RAY_AIR_NEW_OUTPUT": "0",  # with verbose=0: no progress tables
    # No per-trial CSV/JSON/TensorBoard result files: the store and W&B keep the results,
    # and Tune starts layers faster without them.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
}
# On Linux Ray replaces a loopback node address by the machine's external one unless
# this is off; with it off a local Ray binds every server to 127.0.0.1.
LOCAL_ONLY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


# What a trial of a stage kind without backend.resources asks for (Tune's own default).
DEFAULT_RESOURCES = {"cpu": 1.0, "gpu": 0.0}


def ray_environment(local: bool = True) -> None:
    """Set what Ray reads when it is imported (quiet output; a local Ray on loopback only).
    Call it before the first `import ray` of the process: connect does."""
    for key, value in (QUIET_ENV | (LOCAL_ONLY_ENV if local else {})).items():
        os.environ.setdefault(key, value)


class RayBackend(Backend):
    """Runs each layer as a Ray Tune experiment; see the module docstring. `workdir`: where
    Tune's folders go when execute does not name one; `address`: a Ray cluster to join (None
    starts a local one); `max_concurrent`: trials at once (0: no limit); `resources`: per
    stage kind {"cpu": N, "gpu": N} (backend.resources; a kind not there asks for
    DEFAULT_RESOURCES)."""

    name = "ray"

    def __init__(
        self,
        workdir: str | Path,
        address: str | None = None,
        max_concurrent: int = 0,
        resources: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.address = address
        self.max_concurrent = max_concurrent or None  # 0: no limit
        self.resources = {k: DEFAULT_RESOURCES | v for k, v in (resources or {}).items()}
        self.started = False  # True when this backend started Ray (close() stops it)
        self.init_s: float | None = None  # seconds ray.init took (for timing reports)

    @property
    def checks_owners(self) -> bool:
        """A local Ray's trials run on this host, where a live owner can be told from a dead
        one (Store.live_owner); a cluster's run on other hosts."""
        return self.address is None

    # ------------------------------------------------------------------ Ray runtime

    def connect(self) -> None:
        """Start a local Ray (loopback only) or join backend.address, once."""
        local = self.address is None
        ray_environment(local)
        import ray

        # Tune logs every errored trial with its traceback; the store's log has it already.
        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
        if not ray.is_initialized():
            self._init(ray, local)
        if local:
            self._check_resources(ray.cluster_resources())

    def _init(self, ray: Any, local: bool) -> None:
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,  # stage output stays in the workers' Ray logs
            "logging_level": logging.WARNING,
        }
        if local:
            kwargs["_node_ip_address"] = LOOPBACK
        else:
            kwargs["address"] = self.address
        start = time.time()
        try:
            ray.init(**kwargs)
        except ConnectionError as e:
            raise UserError(
                f"backend.address: cannot reach the Ray cluster at {self.address} ({e}); "
                "start it (ray start --head) or set backend.address: null for a local Ray"
            ) from None
        self.init_s = time.time() - start
        self.started = True

    def _check_resources(self, total: dict[str, float]) -> None:
        """A local Ray never grows: a stage asking for more than it has would wait forever."""
        for kind, want in self.resources.items():
            for name, key in (("cpu", "CPU"), ("gpu", "GPU")):
                have = total.get(key, 0.0)
                if want[name] > have:
                    raise UserError(
                        f"backend.resources.{kind}.{name}: asks for {want[name]:g} but "
                        f"this machine's Ray has {have:g}; lower it, or set backend.address "
                        "to a Ray cluster that has them"
                    )

    def close(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False

    # ------------------------------------------------------------------ one layer

    def run_layer(
        self, stages: list[PlannedStage], execute: Execute
    ) -> dict[str, dict[str, Any] | BaseException]:
        self.connect()
        from ray import tune

        # The store execute writes to (the sweep's workdir) holds the results and Tune's logs.
        workdir = Path(getattr(execute, "workdir", self.workdir)).resolve()
        by_name = {s.name: s for s in stages}
        on_event = getattr(execute, "on_event", None)
        if dataclasses.is_dataclass(execute):
            # The driver's event callback (it may hold a terminal) stays here: the Tune
            # callback below passes the trials' progress on to it.
            execute = dataclasses.replace(execute, on_event=None, reported=set())
        kinds = {s.name: s.kind for s in stages}
        resources = {k: dict(self.resources.get(k, DEFAULT_RESOURCES)) for k in set(kinds.values())}
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, stages=by_name, execute=execute),
            lambda config: resources[kinds[config["stage"]]],
        )
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        layer = f"layer{stages[0].layer}-{stamp}"
        tuner = tune.Tuner(
            trainable,
            param_space={"stage": tune.grid_search(list(by_name))},
            # reuse_actors: the next stage of the same resources runs in the same worker
            # process, which spares a Python start per stage.
            tune_config=tune.TuneConfig(
                max_concurrent_trials=self.max_concurrent, reuse_actors=True
            ),
            run_config=tune.RunConfig(
                name=layer,
                storage_path=str(workdir / "ray"),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=0),  # the next run retries
                callbacks=[progress_callback(by_name, on_event)] if on_event else None,
            ),
        )
        # Tune prints its banners with print(); stdout is for our own results (--json).
        with contextlib.redirect_stdout(sys.stderr):
            grid = tuner.fit()
        store = execute.open_store() if hasattr(execute, "open_store") else Store(workdir)
        return _outcomes(store, stages, grid)


def _outcomes(store: Store, stages: list[PlannedStage], grid: Any) -> dict[str, Any]:
    """Per stage: its result from the store, or a StageFailed for its trial's error."""
    errors = {r.config["stage"]: r.error for r in grid if r.error is not None}
    out: dict[str, Any] = {}
    for stage in stages:
        meta = store.meta(stage.name)
        if meta is not None:
            out[stage.name] = meta["result"]
        else:
            out[stage.name] = _stage_failure(store, stage, errors.get(stage.name))
    return out


def _stage_failure(store: Store, stage: PlannedStage, error: BaseException | None) -> Exception:
    """The stage's StageFailed. Ray wraps the one raised in the trial (RayTaskError is also a
    StageFailed then); any other error (a worker that died, an import error in the worker)
    is recorded in the store here, with Ray's full text in the log and its last line as the
    message."""
    if isinstance(error, StageFailed):
        return StageFailed(stage.name, error.message, error.log)
    if isinstance(error, StageBusy):  # another run's stage: left alone, nothing recorded
        return StageBusy(error.name, error.owner)
    if error is None:
        message, text = "the Ray trial ended without finishing the stage", ""
    else:
        text = _ANSI.sub("", str(error))
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        message = "Ray trial failed: " + (lines[-1] if lines else type(error).__name__)
    record = store.fail(stage.name, message, text)
    return StageFailed(stage.name, message, record["log"])


# ----------------------------------------------------------------------------- the trial


def run_trial(config: dict[str, Any], stages: dict[str, PlannedStage], execute: Execute) -> None:
    """One Tune trial: run one stage to completion in the store (in a Ray worker).

    The stage's progress goes to the driver as Tune results (progress_callback), throttled:
    each tune.report waits for Tune's driver loop to take the result, and the tracker logs
    every report here anyway. A StageFailed propagates, so Tune marks the trial as errored
    and hands the exception (message, log path) back to the driver in the ResultGrid."""
    from ray import tune

    report = Throttle(lambda metrics: tune.report({"metrics": _numbers(metrics)}))
    try:
        execute(stages[config["stage"]], report)
    except Exception:
        report.flush()  # the last progress before the failure
        raise
    report.flush()


def _numbers(metrics: dict[str, Any]) -> dict[str, float | int]:
    """Tune's results hold numbers; the tracker gets the full metrics anyway."""
    return {
        k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }


def progress_callback(stages: dict[str, PlannedStage], on_event: Callable) -> Any:
    """A Tune callback (it runs in the driver) that turns trial starts and reports into the
    driver's start / progress events; the driver announces done and failed itself."""
    from ray import tune  # here, so that importing this module does not import Ray

    class ProgressForwarder(tune.Callback):
        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            emit({"event": "start"}, trial)

        def on_trial_result(
            self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
        ) -> None:
            if result.get("metrics"):
                emit({"event": "progress", "metrics": result["metrics"]}, trial)

    def emit(event: dict[str, Any], trial: Any) -> None:
        stage = stages[trial.config["stage"]]
        fields = stage.event_fields()
        on_event(event | fields)

    return ProgressForwarder()
