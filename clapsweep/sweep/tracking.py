"""W&B tracking: one run per stage execution, and one summary run per sweep.

Each stage execution is a run with group = sweep name, job_type = stage kind, name = stage
name and a deterministic id (sweep and stage name), so an interrupted stage that runs again
continues its run (resume="allow") instead of starting a second one. Its config is the stage
config, its identity, the trials that use the stage (`users`, in full) and, as flat scalar
keys, the swept values every one of those trials shares: a trial's row, fraction, seed, task
and whatever the recipe attached to it (`swept`, opaque here). A value the trials do not
share (a teacher serves every row; a curation serves rows that differ in what the student
does with it) is not a property of the stage and has no flat key, so grouping and parallel
coordinates by that key see only the runs it describes. Training progress is logged step by
step, and the final result dict becomes the run's summary. Per-task values are keyed metric
first, then task (`accuracy/esc50`, `per_fold/us8k/1`, ...), so W&B shows one `accuracy`
section with a chart per task: an event {"task": t, "accuracy": a} is logged as
{"accuracy/<t>": a}, and a result {task: {...}} is flattened the same way. Nothing is logged
under a bare per-task name, so a chart never mixes one task's values with another's.

The sweep's summary run (id `<sweep>-summary`) holds the driver's counts (`close`) and the
report's tables (`log_tables`, `clapsweep report --wandb`). Each write replays the latest of
both, kept in <workdir>/wandb/summary.json, into the run. Online, resume="allow" with the fixed
id updates the one run. Offline, wandb cannot resume a run and writes a new folder on every
init, so the earlier offline folders of the summary id are removed once the new one is
finished: a sweep has one summary folder, holding the latest tables and counts, however often
it runs and reports.

Offline by default: runs are written under <workdir>/wandb/wandb/offline-run-* and
`clapsweep sync` uploads them. The environment (WANDB_MODE, WANDB_DIR, WANDB_CACHE_DIR,
WANDB_CONFIG_DIR, WANDB_SILENT) is set in the process that runs the stage, never to an empty
string. No API key is read or written here; online mode uses the key wandb finds itself
(WANDB_API_KEY or `wandb login`).
"""

from __future__ import annotations

import json
import netrc
import os
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from clapsweep.errors import UserError
from clapsweep.recipe.spec import SweepSpec
from clapsweep.store import write_json
from clapsweep.sweep.executor import Tracker, TrackerRun
from clapsweep.sweep.plan import PlannedStage

SUMMARY_STATE = "summary.json"  # in the tracker's wandb folder: what the summary run holds


class WandbTracker(Tracker):
    """Tracker for W&B; plain data only, so it pickles into Ray workers."""

    def __init__(self, spec: SweepSpec) -> None:
        w = spec.tracking.wandb
        self.project, self.entity, self.mode = w.project, w.entity, w.mode
        self.sweep = spec.name
        self.workdir = str(spec.workdir)
        if self.mode == "online" and not has_api_key():
            raise UserError(
                "tracking.wandb.mode: online needs a W&B API key (run `wandb login` or set "
                "WANDB_API_KEY); or use mode: offline and upload later with `clapsweep sync`"
            )

    @property
    def wandb_dir(self) -> Path:
        return Path(self.workdir) / "wandb"

    def environment(self) -> dict[str, str]:
        d = self.wandb_dir
        return {
            "WANDB_MODE": self.mode,
            "WANDB_DIR": str(d),
            "WANDB_CACHE_DIR": str(d / "cache"),
            "WANDB_CONFIG_DIR": str(d / "config"),
            "WANDB_SILENT": "true",
        }

    def _init(self, **kwargs: Any) -> Any:
        """wandb.init in this sweep's folder; the environment is set first."""
        os.environ.update(self.environment())
        self.wandb_dir.mkdir(parents=True, exist_ok=True)
        import wandb

        return wandb.init(
            project=self.project,
            entity=self.entity,
            group=self.sweep,
            dir=str(self.wandb_dir),
            resume="allow",
            **kwargs,
        )

    # ------------------------------------------------------------------ stage runs

    def start(self, stage: PlannedStage, sweep: str) -> TrackerRun:
        if self.mode == "disabled":
            return TrackerRun()
        run = self._init(
            id=run_id(sweep, stage.name),
            name=stage.name,
            job_type=stage.kind,
            config=self.run_config(stage),
        )
        return WandbRun(run, stage_tasks(stage))

    def run_config(self, stage: PlannedStage) -> dict[str, Any]:
        """The stage config, its identity, its trials and the swept values they share. The
        stage config's own keys win over a swept value of the same name: they say what this
        stage computed (the DS curation that an ADS row reads is a "ds" curation)."""
        config = dict(stage.config)
        shared = shared_values([self.swept_values(user) for user in stage.users])
        config.update({name: v for name, v in shared.items() if name not in config})
        config["stage"] = {
            "kind": stage.kind,
            "key": stage.key,
            "name": stage.name,
            "inputs": stage.inputs,
        }
        config["users"] = stage.users
        return config

    def swept_values(self, user: dict[str, Any]) -> dict[str, Any]:
        """One trial's swept values: its row, the values the plan attached to it (`swept`,
        opaque here), fraction, seed, and task ('all' for a trial over every task)."""
        tasks = user.get("tasks") or []
        values = {"row": user["row"], **(user.get("swept") or {})}
        values |= {"fraction": user.get("fraction"), "seed": user.get("seed")}
        return values | {"task": tasks[0] if len(tasks) == 1 else "all"}

    # ------------------------------------------------------------------ the sweep run

    def close(self, summary: dict[str, Any]) -> None:
        """Log the sweep summary to the '<sweep>-summary' run; skipped when this run of the
        driver executed nothing (all cached), so reruns add no empty runs."""
        if self.mode == "disabled" or not (summary["stages_executed"] or summary["stages_failed"]):
            return
        counts = {k: v for k, v in summary.items() if k not in ("failures", "skipped")}
        failures = [{"name": f["name"], "message": f["message"]} for f in summary["failures"]]
        self.write_summary(summary=counts | {"failures": failures})

    def log_tables(self, tables: dict[str, tuple[list[str], list[list[Any]]]]) -> None:
        """Log aggregated tables, {name: (columns, rows)}, as wandb.Tables to the summary run."""
        if self.mode == "disabled" or not tables:
            return
        self.write_summary(
            tables={name: {"columns": list(c), "data": rows} for name, (c, rows) in tables.items()}
        )

    @property
    def summary_state_path(self) -> Path:
        return self.wandb_dir / SUMMARY_STATE

    def summary_state(self) -> dict[str, Any]:
        """What the summary run holds: {"summary": {...}, "tables": {name: {columns, data}}};
        empty when there is none yet or the file is damaged (the next write replaces it)."""
        try:
            state = json.loads(self.summary_state_path.read_text())
        except (OSError, ValueError):
            state = None
        if not isinstance(state, dict):
            state = {}
        return {
            "summary": state.get("summary") if isinstance(state.get("summary"), dict) else {},
            "tables": state.get("tables") if isinstance(state.get("tables"), dict) else {},
        }

    def write_summary(
        self, summary: dict[str, Any] | None = None, tables: dict[str, Any] | None = None
    ) -> Path | None:
        """Update the summary run with `summary` values and `tables` ({name: {columns,
        data}}); returns its offline folder (None online). Offline, the run is written anew
        with every value and table it holds (summary.json) and the older folders of its id
        are removed afterwards; online, only the new ones are sent to the resumed run."""
        state = self.summary_state()
        state["summary"].update(summary or {})
        state["tables"].update(tables or {})
        self.wandb_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.summary_state_path, state)
        offline = self.mode == "offline"
        import wandb

        run = self._summary_run()
        shown = state["tables"] if offline else (tables or {})
        if shown:
            run.log(
                {
                    name: wandb.Table(columns=list(t["columns"]), data=t["data"])
                    for name, t in shown.items()
                }
            )
        values = state["summary"] if offline else (summary or {})
        if values:
            run.summary.update(values)
        folder = Path(run.dir).parent
        run.finish()
        if not offline:
            return None
        for old in offline_run_folders(self.wandb_dir, run_id(self.sweep, "summary")):
            if old.resolve() != folder.resolve():
                shutil.rmtree(old, ignore_errors=True)
        return folder

    def _summary_run(self) -> Any:
        return self._init(
            id=run_id(self.sweep, "summary"),
            name=f"{self.sweep}-summary",
            job_type="summary",
            config={"sweep": self.sweep, "workdir": self.workdir},
        )


class WandbRun(TrackerRun):
    def __init__(self, run: Any, tasks: Any = ()) -> None:
        self.run = run
        self.tasks = set(tasks)  # result keys that are tasks: flattened to "<metric>/<task>"

    def log(self, metrics: dict[str, Any]) -> None:
        # wandb numbers the steps itself: a resumed stage may report a step it reported
        # before its interruption, which W&B would refuse as a step going backwards.
        self.run.log(task_metrics(metrics))

    def finish(self, result: dict[str, Any]) -> None:
        self.run.summary.update(flatten_tasks(result, self.tasks))
        self.run.finish()

    def fail(self, message: str) -> None:
        self.run.summary["error"] = message
        self.run.finish(exit_code=1)


def run_id(sweep: str, name: str) -> str:
    """A deterministic W&B run id: letters, digits, '-' and '_' only."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{sweep}-{name}")[:128]


def offline_run_folders(wandb_dir: str | Path, rid: str) -> list[Path]:
    """The offline folders of run `rid` under a wandb dir, oldest first. wandb names them
    offline-run-<YYYYMMDD_HHMMSS>-<id>, adding -<n> when that name is taken (two inits in
    one second), and writes run-<id>.wandb inside."""
    pattern = re.compile(r"offline-run-\d{8}_\d{6}-" + re.escape(rid) + r"(-\d+)?")
    out = []
    for path in Path(wandb_dir).glob("**/offline-run-*"):
        if not path.is_dir() or path.is_symlink():
            continue
        match = pattern.fullmatch(path.name)
        if match is None:
            continue
        logs = list(path.glob("run-*.wandb"))
        if match.group(1) and logs and not (path / f"run-{rid}.wandb").is_file():
            continue  # the suffix was part of another run's id
        out.append(path)
    return sorted(out, key=lambda p: p.name)


def shared_values(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The values every trial has, and has equal: {name: value}. A name missing from one
    trial, or None there, is not shared (the teacher row sets no threshold, so a teacher
    shared with a DU row gets no sigma)."""
    if not trials:
        return {}
    first, rest = trials[0], trials[1:]
    return {
        name: value
        for name, value in first.items()
        if value is not None and all(name in t and t[name] == value for t in rest)
    }


def stage_tasks(stage: PlannedStage) -> set[str]:
    """The tasks a stage's results may be keyed by: its trials' (a stage serves only the
    tasks of the trials that use it)."""
    return {t for user in stage.users for t in user.get("tasks") or []}


def task_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """A progress event as W&B keys: {"task": "esc50", "accuracy": 0.8} is logged as
    {"accuracy/esc50": 0.8}; events without a task are logged as they are."""
    task = metrics.get("task")
    if not isinstance(task, str):
        return dict(metrics)
    return {f"{k}/{task}": v for k, v in metrics.items() if k != "task"}


def flatten_tasks(result: dict[str, Any], tasks: Any) -> dict[str, Any]:
    """A result with per-task entries as W&B summary keys, metric first: {"esc50":
    {"accuracy": 0.8, "per_fold": {"1": 0.7}}} -> {"accuracy/esc50": 0.8,
    "per_fold/esc50/1": 0.7}. Other entries are kept as they are."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        if key not in tasks or not isinstance(value, dict):
            out[key] = value
            continue
        for metric, item in value.items():
            out.update(_flatten(item, f"{metric}/{key}"))
    return out


def _flatten(item: Any, name: str) -> dict[str, Any]:
    """{name: item}, or one key per leaf of a non-empty mapping: name/key/..."""
    if not (isinstance(item, dict) and item):
        return {name: item}
    out: dict[str, Any] = {}
    for key, sub in item.items():
        out.update(_flatten(sub, f"{name}/{key}"))
    return out


def has_api_key() -> bool:
    """Whether wandb would find credentials (environment or ~/.netrc); never reads them out."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        return netrc.netrc(path).authenticators(host or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False
