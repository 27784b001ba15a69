"""The SLURM backend: each DAG layer goes out as submitit job arrays, the driver waits for it.

    backend: {kind: slurm, profile: NAME, slurm: {KEY: VALUE}}   # in the sweep file
    clapsweep run SWEEP --backend slurm --profile NAME          # or on the command line

A profile (slurm/profiles/NAME.yaml, see SlurmProfile) holds what is specific to a cluster:
partition, account, qos, resources per stage kind, extra sbatch options, setup lines, array
parallelism, retries. `backend.slurm` overrides its keys for one sweep.

How a layer runs:
- The layer's stages are grouped by kind (a job array has one set of resources) and each group
  is ONE job array (`executor.map_array`), at most `array_parallelism` tasks at a time. Logs go
  to <workdir>/slurm/<job id>/, on the shared filesystem like the store.
- sbatch refuses an array of more than MaxArraySize tasks (1001 by default: indices 0..1000),
  so a larger group goes out as several arrays of at most that many (the profile's
  `max_array_size`, else the cluster's from `scontrol show config`, else 1001). They share
  `array_parallelism` in proportion to their sizes (at least 1 each), so the layer still runs
  about that many tasks at once.
- The driver waits for the whole layer, then plans the next. Why not SLURM dependencies
  (--dependency=afterok) for the whole DAG at once: the store is the only record of what is
  finished, a failed stage must skip its dependents (afterok would leave them pending forever),
  and the next layer's stage list depends on what is cached; waiting keeps all of this in one
  place, the same as the local and Ray backends. The cost is one barrier per layer: the sweep
  has 5 layers, each hours of training, so one scheduling round per layer is noise.
- Every submitted job id is recorded per stage in <workdir>/slurm/jobs.json before the driver
  waits. A driver that is restarted (killed, logged out) re-attaches to the stages whose job is
  still pending or running (sacct, squeue) instead of submitting them twice.
- The submitted callable, SlurmStage, is checkpointable in submitit's way: on preemption or
  time-out SLURM sends USR2, submitit calls `checkpoint()` and requeues the job. Training
  stages save a checkpoint in their .partial folder every `checkpoint_every` steps and resume
  from it, so a requeued stage loses at most that many steps.
- A stage that raised is reported with its job id and log and not resubmitted (the next
  `clapsweep run` retries it); a job that died without a result (killed for memory, node
  failure, time limit after the requeues) is resubmitted up to `max_retries` times; a
  cancelled job is not.

`cancel_sweep(workdir)` cancels the sweep's pending and running jobs (`clapsweep cancel`);
`slurm_jobs(workdir)` lists them with their live state (`clapsweep status`).
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clapsweep.errors import UserError
from clapsweep.recipe.stages import STAGE_KINDS
from clapsweep.store import Store, write_json
from clapsweep.sweep.executor import StageExecutor, StageFailed
from clapsweep.sweep.local import Backend, Execute
from clapsweep.sweep.plan import PlannedStage
from clapsweep.sweep.slurm_profile import (  # noqa: F401 - load_profile re-exported
    SlurmProfile,
    job_parameters,
    load_profile,
)

# Job states after which a job never runs again (sacct's first word: "CANCELLED by 0").
TERMINAL = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "REVOKED",
    "TIMEOUT",
}
UNKNOWN = "UNKNOWN"  # neither sacct nor squeue knows the job (yet)
DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's default MaxArraySize
_REQUESTED = ("partition", "account", "qos", "time", "cpus_per_task", "mem", "gpus_per_node")


def describe_requests(profile: SlurmProfile, sweep: str) -> dict[str, dict[str, Any]]:
    """Per stage kind, what sbatch is asked for each job of `sweep`, as sbatch option ->
    value, from the profile (with backend.slurm applied): {"teacher": {"partition": "gpu",
    "time": 1440, "cpus-per-task": 16, "mem": "65536M", "gpus-per-node": 1, "constraint":
    "h100"}, ...}. `time` is minutes (how sbatch reads a bare number); options left to the
    site's default (no GPUs, mem_gb 0, no partition) are absent. `clapsweep run --dry-run`
    shows it."""
    out = {}
    for kind in STAGE_KINDS:
        params = job_parameters(profile, kind, sweep)
        asked = {k: params[k] for k in _REQUESTED if k in params}
        asked |= params["additional_parameters"]
        # As submitit writes them into #SBATCH lines: _ becomes -.
        out[kind] = {k.replace("_", "-"): v for k, v in asked.items()}
    return out


def sbatch_flags(request: dict[str, Any]) -> str:
    """'--partition=gpu --time=1440 ... --exclusive': one describe_requests entry as flags."""
    return " ".join(f"--{k}" if v is True else f"--{k}={v}" for k, v in request.items())


def cluster_max_array_size() -> int:
    """MaxArraySize from `scontrol show config`: an array may hold that many tasks (indices
    0..MaxArraySize-1). SLURM's default, 1001, when scontrol does not say."""
    try:
        text = _query(["scontrol", "show", "config"])
    except UserError:  # no scontrol here; sbatch will say what is wrong
        text = ""
    match = re.search(r"^\s*MaxArraySize\s*=\s*(\d+)", text, re.MULTILINE)
    return max(1, int(match.group(1))) if match else DEFAULT_MAX_ARRAY_SIZE


# ----------------------------------------------------------------------------- in the job


@dataclass
class CheckpointEvery:
    """Wraps a stage function: every stage gets `runtime.checkpoint_every` (steps; a stage
    that does not train ignores it). It goes into the stage's private copy of its config, in
    `runtime`, so the planned config, meta.json and the stage key stay as they are."""

    stage_fn: Callable[..., dict[str, Any]]
    steps: int

    def __call__(self, kind, config, inputs, out, report=None) -> dict[str, Any]:
        if self.steps:
            config.setdefault("runtime", {}).setdefault("checkpoint_every", self.steps)
        return self.stage_fn(kind, config, inputs, out, report)


@dataclass
class SlurmStage:
    """The callable each array task runs: one stage, through the driver's executor.

    `checkpoint` makes it requeueable the submitit way: on USR2 (preemption, time limit)
    submitit pickles what it returns and requeues the job; the requeued job calls this object
    again, and the stage resumes from the checkpoint in its .partial folder."""

    execute: Execute
    checkpoint_every: int = 0

    def __call__(self, stage: PlannedStage) -> dict[str, Any]:
        execute = self.execute
        if self.checkpoint_every and isinstance(execute, StageExecutor):
            fn = CheckpointEvery(execute.stage_fn, self.checkpoint_every)
            execute = dataclasses.replace(execute, stage_fn=fn)
        return execute(stage)

    def checkpoint(self, stage: PlannedStage) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, stage)


# ----------------------------------------------------------------------------- job states


def job_states(job_ids: list[str]) -> dict[str, str]:
    """The state of each job id ("123" or "123_4"): squeue for the jobs still in the queue
    (the controller's live state; sacct lags behind it), sacct for those that left it,
    UNKNOWN when neither knows it."""
    if not job_ids:
        return {}
    # The whole queue, unfiltered: squeue -j fails outright when one id has left it.
    states = _parse_states("JobID|State\n" + _query(["squeue", "-h", "-o", "%i|%T"]))
    gone = sorted({j.split("_")[0] for j in job_ids if j not in states})
    if gone:
        text = _query(["sacct", "-o", "JobID,State", "--parsable2", "-j", ",".join(gone)])
        states = _parse_states(text) | states
    return {j: states.get(j, UNKNOWN) for j in job_ids}


def _query(command: list[str]) -> str:
    """A command's stdout, or "" when it fails (squeue exits 1 for ids it no longer has)."""
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise UserError(
            f"{command[0]} not found: the slurm backend runs where the SLURM client commands "
            "work (a login node)"
        ) from None
    except subprocess.TimeoutExpired:
        return ""
    return proc.stdout if proc.returncode == 0 else ""


def _parse_states(text: str) -> dict[str, str]:
    from submitit.slurm.slurm import SlurmInfoWatcher

    # submitit's parser expands pending array ranges ("123_[2-5%2]") into single ids.
    info = SlurmInfoWatcher().read_info(text)
    return {jid: (row.get("State") or UNKNOWN).split()[0] for jid, row in info.items()}


def is_active(state: str) -> bool:
    """Pending, running, requeued, suspended...: the job will still run."""
    return state not in TERMINAL and state != UNKNOWN


# ----------------------------------------------------------------------------- jobs.json


def jobs_path(workdir: str | Path) -> Path:
    return Path(workdir) / "slurm" / "jobs.json"


def read_jobs(workdir: str | Path) -> dict[str, dict[str, Any]]:
    """stage name -> {job_id, state, kind, log, submitted, jobs: [every job id, in order]}."""
    path = jobs_path(workdir)
    return json.loads(path.read_text()) if path.is_file() else {}


def slurm_jobs(workdir: str | Path, active_only: bool = True) -> list[dict[str, Any]]:
    """The sweep's jobs from jobs.json with their live state (one sacct call)."""
    book = read_jobs(workdir)
    live = job_states([r["job_id"] for r in book.values()])
    rows = [{"stage": name} | rec | {"state": live[rec["job_id"]]} for name, rec in book.items()]
    if active_only:
        # UNKNOWN too: accounting lost or not caught up, the job may well still run.
        rows = [r for r in rows if r["state"] not in TERMINAL]
    return sorted(rows, key=lambda r: r["stage"])


def cancel_sweep(workdir: str | Path) -> list[dict[str, Any]]:
    """scancel every pending or running job of the sweep; returns what was cancelled."""
    rows = slurm_jobs(workdir)
    if rows:
        ids = [r["job_id"] for r in rows]
        proc = subprocess.run(["scancel", *ids], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise UserError(f"scancel {' '.join(ids)} failed: {proc.stderr.strip()}")
    return rows


# ----------------------------------------------------------------------------- the backend


@dataclass
class _Job:
    stage: PlannedStage
    job: Any  # submitit.SlurmJob
    terminal_polls: int = 0  # polls that saw a terminal state without a result file
    running: bool = False


class SlurmBackend(Backend):
    """Runs each layer as submitit job arrays on SLURM and waits for them (see the module
    docstring). `profile`: the cluster profile, loaded and validated (load_profile, with
    backend.slurm applied); `sweep`: the sweep's name (in job names); `store`: the sweep's
    store. Job logs and jobs.json go to <workdir>/slurm/, where `clapsweep cancel` and
    `status` read them (jobs_path)."""

    name = "slurm"

    def __init__(self, profile: SlurmProfile, sweep: str, store: Store) -> None:
        self.profile = profile
        self.sweep = sweep
        self.store = store
        self.folder = jobs_path(store.workdir).parent
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        self._max_array = 0  # tasks per job array, once known

    # ------------------------------------------------------------------ one layer

    def run_layer(
        self, stages: list[PlannedStage], execute: Execute
    ) -> dict[str, dict[str, Any] | BaseException]:
        self.on_event = getattr(execute, "on_event", None)
        if isinstance(execute, StageExecutor):
            # Jobs cannot call back into this process; the driver reports what they did.
            execute = dataclasses.replace(execute, on_event=None, reported=set())
        task = SlurmStage(execute, self.profile.checkpoint_every)
        book = read_jobs(self.store.workdir)
        waiting = self._reattach(stages, book)
        waiting |= self._submit([s for s in stages if s.name not in waiting], task, book)
        retries = dict.fromkeys((s.name for s in stages), 0)
        results: dict[str, dict[str, Any] | BaseException] = {}
        try:
            self._wait(waiting, results, retries, book, task)
        except KeyboardInterrupt:
            self._say(
                "interrupted: the submitted jobs keep running; `clapsweep run` re-attaches "
                "to them, `clapsweep cancel` stops them"
            )
            raise
        return results

    def _wait(
        self,
        waiting: dict[str, _Job],
        results: dict[str, dict[str, Any] | BaseException],
        retries: dict[str, int],
        book: dict,
        task: SlurmStage,
    ) -> None:
        """Poll until every waiting job has a result, failed for good, or was resubmitted."""
        while waiting:
            time.sleep(self.profile.poll_s)
            states = job_states([w.job.job_id for w in waiting.values()])
            again = []
            for name, w in list(waiting.items()):
                state = states[w.job.job_id]
                book[name]["state"] = state
                if state == "RUNNING" and not w.running:
                    w.running = True
                    self._emit({"event": "start"} | w.stage.event_fields())
                if w.job.paths.result_pickle.exists():
                    results[name] = self._outcome(w)
                elif state in TERMINAL:
                    # The result file may lag behind the state on a network filesystem.
                    w.terminal_polls += 1
                    if w.terminal_polls < 2:
                        continue
                    if state != "CANCELLED" and retries[name] < self.profile.max_retries:
                        retries[name] += 1
                        self._say(f"{name}: job {w.job.job_id} ended {state}; resubmitting")
                        again.append(w.stage)
                    else:
                        results[name] = self._lost(w, state)
                else:
                    continue
                del waiting[name]
            self._save(book)
            if again:
                waiting |= self._submit(again, task, book)

    def _reattach(self, stages: list[PlannedStage], book: dict) -> dict[str, _Job]:
        """Stages whose recorded job is still pending or running: wait for that job."""
        from submitit import SlurmJob

        recorded = {s.name: book[s.name]["job_id"] for s in stages if s.name in book}
        states = job_states(list(recorded.values()))
        out = {}
        for stage in stages:
            job_id = recorded.get(stage.name)
            if job_id is not None and is_active(states[job_id]):
                job = SlurmJob(folder=self.folder / "%j", job_id=job_id)
                out[stage.name] = _Job(stage, job)
                self._say(f"{stage.name}: re-attached to job {job_id} ({states[job_id]})")
        return out

    def _submit(self, stages: list[PlannedStage], task: SlurmStage, book: dict) -> dict:
        """Per stage kind (an array has one set of resources), job arrays of at most
        _array_size() tasks sharing array_parallelism."""
        out = {}
        size, parallelism = self._array_size(), self.profile.array_parallelism
        for kind in dict.fromkeys(s.kind for s in stages):
            group = [s for s in stages if s.kind == kind]
            chunks = [group[i : i + size] for i in range(0, len(group), size)]
            if len(chunks) > 1:
                self._say(
                    f"{len(group)} {kind} stages: {len(chunks)} job arrays, as SLURM takes at "
                    f"most {size} tasks per array (MaxArraySize)"
                )
            for chunk in chunks:
                share = max(1, parallelism * len(chunk) // len(group))
                out |= self._submit_array(kind, chunk, task, book, share)
        return out

    def _submit_array(
        self, kind: str, group: list[PlannedStage], task: SlurmStage, book: dict, parallelism: int
    ) -> dict:
        try:
            jobs = self._executor(kind, parallelism).map_array(task, group)
        except RuntimeError as e:  # submitit's FailedJobError: sbatch refused the job
            if "sbatch" not in str(e):
                raise
            raise UserError(
                f"SLURM refused the {kind} job array of {len(group)} task(s): "
                f"{str(e).strip()}; check the cluster profile (partition, account, qos, "
                "resources, max_array_size)"
            ) from None
        now = datetime.now(UTC).isoformat(timespec="seconds")
        out = {}
        for stage, job in zip(group, jobs, strict=True):
            old = book.get(stage.name, {}).get("jobs", [])
            book[stage.name] = {
                "job_id": job.job_id,
                "state": "PENDING",
                "kind": kind,
                "log": str(job.paths.stderr),
                "submitted": now,
                "jobs": [*old, job.job_id],
            }
            out[stage.name] = _Job(stage, job)
        # Recorded at once: a driver killed from here on re-attaches instead of resubmitting.
        self._save(book)
        array = jobs[0].job_id.split("_")[0]
        self._say(f"submitted {len(group)} {kind} stage(s) as SLURM job {array}")
        return out

    def _executor(self, kind: str, parallelism: int) -> Any:
        import submitit

        p = self.profile
        try:
            ex = submitit.SlurmExecutor(
                folder=self.folder / "%j", max_num_timeout=p.max_requeues, python=p.python
            )
        except RuntimeError as e:  # no srun on PATH
            raise UserError(f"backend slurm: {e} (run clapsweep on a SLURM login node)") from None
        params = job_parameters(p, kind, self.sweep)
        ex.update_parameters(**params | {"array_parallelism": parallelism})
        return ex

    def _array_size(self) -> int:
        """Tasks per job array: the profile's max_array_size, else the cluster's (asked once)."""
        if not self._max_array:
            self._max_array = self.profile.max_array_size or cluster_max_array_size()
        return self._max_array

    # ------------------------------------------------------------------ outcomes

    def _outcome(self, w: _Job) -> dict[str, Any] | BaseException:
        name, job_id = w.stage.name, w.job.job_id
        try:
            return w.job.result()
        except Exception as e:  # the stage raised in the job (its traceback is in the store)
            record = self.store.failure(name)
            where = f"SLURM job {job_id}, log {w.job.paths.stderr}"
            if record is None:
                record = self.store.fail(name, f"{type(e).__name__} in {where}", str(e))
                return StageFailed(name, record["message"], record["log"])
            return StageFailed(name, f"{record['message']} ({where})", record["log"])

    def _lost(self, w: _Job, state: str) -> StageFailed:
        """A job that ended without a result: record it in the store like a failed stage."""
        job_id, log = w.job.job_id, w.job.paths.stderr
        what = "was cancelled" if state == "CANCELLED" else f"ended {state} without a result"
        message = f"SLURM job {job_id} {what}; log: {log}"
        tail = _tail(log) or _tail(w.job.paths.stdout)
        record = self.store.fail(w.stage.name, message, tail)
        return StageFailed(w.stage.name, message, record["log"])

    # ------------------------------------------------------------------ records and events

    def _save(self, book: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json(jobs_path(self.store.workdir), book)

    def _emit(self, event: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _say(self, message: str) -> None:
        self._emit({"event": "slurm", "message": message})


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
