"""The SLURM backend against the real loopback cluster (fixture `slurm_cluster`).

Everything SLURM does here is real: sbatch job arrays, sacct states, USR2 preemption and
requeue, scancel. The stage function is a stand-in (`fake_stage`, `train_like`, `flaky`) for
clapsweep.pipeline.run_stage, because real training stages are far too slow for this file's
time budget; only the stage is replaced. One test runs a real pipeline stage (eval on the tiny
synthworld) through SLURM. The jobs import this module by name: PYTHONPATH (exported to the
jobs by sbatch) holds the tests folder. Skipped, with start.sh's reason, where the cluster
cannot start.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import stub_data_root

from clapsweep.cli import sweep as commands
from clapsweep.errors import ConfigError, UserError
from clapsweep.recipe.plan import build_plan
from clapsweep.recipe.run import make_backend, run_sweep, slurm_profile
from clapsweep.recipe.spec import load_spec
from clapsweep.store import Store
from clapsweep.sweep import slurm_backend
from clapsweep.sweep.executor import StageExecutor, StageFailed
from clapsweep.sweep.local import LocalBackend
from clapsweep.sweep.plan import PlannedStage
from clapsweep.sweep.slurm_backend import (
    SlurmBackend,
    cluster_max_array_size,
    describe_requests,
    job_states,
    load_profile,
    read_jobs,
    sbatch_flags,
)

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


# ----------------------------------------------------------------------------- stand-ins


def fake_stage(kind, config, inputs, out, report=None) -> dict:
    """Stand-in stage: checks its inputs are finished, derives a value from its config and its
    inputs' values (so wrong wiring shows), sleeps FAKE_SLEEP[kind] seconds, and says which
    SLURM job ran it."""
    for path in inputs.values():
        if not (path / "meta.json").is_file():
            raise AssertionError(f"{out.name} ran before its input {path.name} finished")
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = (
        f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array else os.environ.get("SLURM_JOB_ID")
    )
    if os.environ.get("FAKE_CALLS"):
        with open(os.environ["FAKE_CALLS"], "a") as f:
            f.write(f"{out.name.removesuffix('.partial')} {job}\n")
    time.sleep(json.loads(os.environ.get("FAKE_SLEEP", "{}")).get(kind, 0))
    # Like the real stages, the value does not depend on knobs of speed or resumption.
    kept = {k: v for k, v in config.items() if k != "runtime"}
    parts = [kind, json.dumps(kept, sort_keys=True)]
    parts += [json.loads((inputs[r] / "out.json").read_text())["value"] for r in sorted(inputs)]
    value = hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]
    (out / "out.json").write_text(json.dumps({"value": value}))
    every = config.get("runtime", {}).get("checkpoint_every")
    return {"value": value, "job": job, "checkpoint_every": every}


def train_like(kind, config, inputs, out, report=None) -> dict:
    """A training loop in miniature: `steps` steps of `step_s` seconds, a checkpoint in its
    .partial folder every `checkpoint_every` steps (given by the backend), resumed from it.
    Each step executed is one line in config["log"]."""
    every = config["runtime"]["checkpoint_every"]
    ckpt = out / "checkpoint.json"
    step = json.loads(ckpt.read_text())["step"] if ckpt.exists() else 0
    with open(config["log"], "a") as log:
        log.write(f"start {step}\n")
        log.flush()
        while step < config["steps"]:
            time.sleep(config["step_s"])
            step += 1
            log.write(f"step {step}\n")
            log.flush()
            if step % every == 0:
                tmp = out / "checkpoint.tmp"
                tmp.write_text(json.dumps({"step": step}))
                tmp.replace(ckpt)
    return {"steps": step}


def flaky(kind, config, inputs, out, report=None) -> dict:
    """die_once: the job is SIGKILLed the first time (no result: a lost job); raise: a stage
    error."""
    marker = Path(config["marker"])
    with open(marker, "a") as f:
        f.write("attempt\n")
    if config["mode"] == "die_once" and marker.read_text().count("attempt") == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    if config["mode"] == "raise":
        raise UserError("the improvement set is empty")
    return {"attempts": marker.read_text().count("attempt")}


def driver_main(spec_path: str, summary_path: str) -> None:
    """The driver subprocess of the restart test."""
    summary = run_sweep(load_spec(spec_path), stage_fn=fake_stage)
    Path(summary_path).write_text(json.dumps(summary))


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def cluster(slurm_cluster, monkeypatch):
    """The cluster, with the jobs able to import this module (sbatch exports PYTHONPATH)."""
    path = os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path.rstrip(os.pathsep))
    monkeypatch.delenv("FAKE_SLEEP", raising=False)
    monkeypatch.delenv("FAKE_CALLS", raising=False)
    return slurm_cluster


def write_spec(tmp_path: Path, name: str, backend: dict | None = None, **grid) -> Path:
    data_root = stub_data_root(tmp_path / "data")
    spec = {
        # Unique: job names carry the sweep name, and the cluster keeps earlier tests' jobs.
        "name": f"{name}-{uuid.uuid4().hex[:8]}",
        "workdir": str(tmp_path / f"work-{name}"),
        "data": {"root": str(data_root), "tasks": ["esc50"]},
        "grid": {"rows": [{"name": "DU", "strategy": "du", "sigma": 0.3}]} | grid,
        "tracking": {"wandb": {"enabled": False}},
        "backend": backend or {"kind": "slurm", "profile": "local-test"},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def sacct_jobs(job_name: str) -> list[tuple[str, str]]:
    """(job id, state) of every job SLURM accounted under this name, steps left out."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-o", "JobID,State", "--name", job_name, "-S", "now-1hour"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [tuple(line.split("|")) for line in out.splitlines() if line]


def accounted(job_name: str, expected: list[str]) -> list[tuple[str, str]]:
    """sacct's (job id, state) under this job name, once every expected job is COMPLETED
    there: sacct lags behind the result files that the driver acts on."""
    wait_for(
        lambda: {i for i, s in sacct_jobs(job_name) if s == "COMPLETED"} >= set(expected),
        30,
        f"sacct to show {expected} COMPLETED",
    )
    return sorted(sacct_jobs(job_name))


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


def results(workdir: str) -> dict[str, dict]:
    store = Store(workdir)
    return {p.name: store.meta(p.name)["result"] for p in store.stages.iterdir() if p.is_dir()}


# ----------------------------------------------------------------------------- profiles


def test_profiles_validate_strictly(tmp_path) -> None:
    gpu = load_profile("example-gpu")
    assert gpu.resources("teacher").gpus == 1 and gpu.resources("teacher").time_min == 1440
    assert gpu.resources("curate").mem_gb == 128 and gpu.resources("curate").gpus == 1
    # Overrides merge into one stage kind's entry without replacing the others.
    local = load_profile("local-test", {"stages": {"teacher": {"cpus": 2}}, "poll_s": 2})
    assert (local.resources("teacher").cpus, local.resources("teacher").mem_gb) == (2, 1.0)
    assert local.resources("eval").cpus == 1 and local.poll_s == 2

    bad = tmp_path / "bad.yaml"
    bad.write_text("partition: gpu\nstages:\n  teacher: {gpu: 1}\n")
    where = re.escape(str(bad))
    with pytest.raises(ConfigError, match=rf"^{where}: stages\.teacher\.gpu: unknown key"):
        load_profile(str(bad))
    bad.write_text("partition: gpu\nstages:\n  trainer: {gpus: 1}\n")
    with pytest.raises(ConfigError, match=rf"^{where}: stages\.trainer: unknown stage kind"):
        load_profile(str(bad))
    bad.write_text("partition: gpu\nmax_retry: 2\n")
    with pytest.raises(ConfigError, match=rf"^{where}: max_retry: unknown key"):
        load_profile(str(bad))
    with pytest.raises(ConfigError, match=r"^backend\.slurm\.array_parallelism: expected"):
        load_profile("local-test", {"array_parallelism": 0})
    with pytest.raises(ConfigError, match="no SLURM profile named 'nope'.*local-test"):
        load_profile("nope")
    # The sweep file names the spec file and the profile key at load time.
    spec = write_spec(tmp_path, "usesbad", {"kind": "slurm", "profile": str(bad)})
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(spec))}: {where}: max_retry: unkn"):
        load_spec(spec)


def test_describe_requests_is_what_sbatch_is_asked(tmp_path) -> None:
    spec = load_spec(write_spec(tmp_path, "asks", {"kind": "slurm", "profile": "example-gpu"}))
    asked = describe_requests(slurm_profile(spec), spec.name)
    assert list(asked) == ["teacher", "embed", "curate", "student", "eval"]
    assert asked["teacher"] == {
        "partition": "gpu",
        "account": "my-project",
        "qos": "normal",
        "time": 1440,  # minutes
        "cpus-per-task": 16,
        "mem": "65536M",
        "gpus-per-node": 1,
        "constraint": "h100",  # additional_parameters
    }
    assert (asked["curate"]["cpus-per-task"], asked["curate"]["mem"]) == (8, "131072M")
    assert sbatch_flags(asked["eval"]) == (
        "--partition=gpu --account=my-project --qos=normal --time=60 --cpus-per-task=16 "
        "--mem=32768M --gpus-per-node=1 --constraint=h100"
    )
    # backend.slurm overrides count; what is left to the site's default is not asked for.
    spec.backend.slurm = {"qos": None, "stages": {"eval": {"gpus": 0, "mem_gb": 0}},
                          "additional_parameters": {"exclusive": True}}  # fmt: skip
    ev = describe_requests(slurm_profile(spec), spec.name)["eval"]
    assert not {"qos", "gpus-per-node", "mem"} & set(ev) and ev["exclusive"] is True
    assert sbatch_flags(ev).endswith("--cpus-per-task=16 --constraint=h100 --exclusive")


def test_max_array_size_comes_from_scontrol_else_1001(monkeypatch) -> None:
    config = "Configuration data as of ...\nMaxArraySize            = 40\nMaxJobCount = 10000\n"
    monkeypatch.setattr(slurm_backend, "_query", lambda command: config)
    assert cluster_max_array_size() == 40
    monkeypatch.setattr(slurm_backend, "_query", lambda command: "")  # scontrol failed
    assert cluster_max_array_size() == 1001

    def missing(command):
        raise UserError("scontrol not found")

    monkeypatch.setattr(slurm_backend, "_query", missing)
    assert cluster_max_array_size() == 1001


class _FakeJob:
    """What the backend reads of a submitit job; the stage ran in-process at submission."""

    def __init__(self, job_id: str, folder: Path, value) -> None:
        self.job_id, self.value = job_id, value
        (folder / job_id).mkdir(parents=True)
        self.paths = argparse.Namespace(
            result_pickle=folder / job_id / "result.pkl",
            stderr=folder / job_id / "log.err",
            stdout=folder / job_id / "log.out",
        )
        self.paths.result_pickle.write_bytes(b"")

    def result(self):
        return self.value


def test_a_layer_larger_than_max_array_size_goes_in_several_arrays(tmp_path, monkeypatch):
    spec = load_spec(write_spec(tmp_path, "split"))
    # The profile's max_array_size wins over the cluster's (scontrol is never asked here).
    profile = load_profile("local-test", {"max_array_size": 3, "array_parallelism": 7})
    backend = SlurmBackend(profile, spec.name, Store(spec.workdir))
    monkeypatch.setattr(slurm_backend, "cluster_max_array_size", lambda: pytest.fail("asked"))
    arrays: list[tuple[int, int]] = []  # (tasks, array_parallelism) per map_array

    def executor(kind, parallelism):
        def map_array(task, group):
            arrays.append((len(group), parallelism))
            array = 100 + len(arrays)
            return [
                _FakeJob(f"{array}_{i}", tmp_path / "jobs", task(s)) for i, s in enumerate(group)
            ]

        return argparse.Namespace(map_array=map_array)

    monkeypatch.setattr(backend, "_executor", executor)
    monkeypatch.setattr(slurm_backend, "job_states", lambda ids: dict.fromkeys(ids, "COMPLETED"))
    stages = [PlannedStage("eval", f"{i:016x}", {"i": i}, {}) for i in range(7)]
    got = backend.run_layer(stages, StageExecutor(spec.workdir, spec.name, fake_stage))
    # 3 + 3 + 1 tasks; array_parallelism 7 shared in proportion: 3 + 3 + 1 at once.
    assert arrays == [(3, 3), (3, 3), (1, 1)]
    assert set(got) == {s.name for s in stages}
    jobs = read_jobs(spec.workdir)
    assert [jobs[s.name]["job_id"] for s in stages] == [
        "101_0", "101_1", "101_2", "102_0", "102_1", "102_2", "103_0",
    ]  # fmt: skip
    assert all(Store(spec.workdir).is_done(s.name) for s in stages)
    assert {n: r["value"] for n, r in got.items()} == {
        n: r["value"] for n, r in results(spec.workdir).items()
    }


# ----------------------------------------------------------------------------- sweeps


def test_smoke_sweep_through_slurm_then_rerun_runs_nothing(cluster, tmp_path, monkeypatch):
    rows = [
        {"name": "DU", "strategy": "du", "sigma": 0.3},
        {"name": "DS", "strategy": "ds", "sigma_ds": 0.4},
    ]
    spec = load_spec(write_spec(tmp_path, "smoke", rows=rows))
    events = []
    t0 = time.monotonic()
    summary = run_sweep(spec, stage_fn=fake_stage, on_event=events.append)
    slurm_s = time.monotonic() - t0
    # teacher, its eval, embed, 2 curations, 2 students, 2 evals; 5 layers.
    assert (summary["backend"], summary["stages_executed"], summary["stages_failed"]) == (
        "slurm",
        9,
        0,
    )
    plan = build_plan(spec)
    jobs = read_jobs(spec.workdir)
    got = results(spec.workdir)
    assert set(got) == set(plan.stages) == set(jobs)
    for name, result in got.items():
        # Each stage ran in the SLURM job recorded for it, submitted once.
        assert result["job"] == jobs[name]["job_id"] and jobs[name]["jobs"] == [result["job"]]
        assert result["checkpoint_every"] == 50  # the profile's, in runtime
        # ... given to the stage only: the recorded config and the key are the planned ones.
        assert Store(spec.workdir).meta(name)["config"] == plan.stages[name].config
    # One array per (layer, kind): the two curations are tasks 0 and 1 of one job.
    curate = sorted(jobs[n]["job_id"] for n in jobs if n.startswith("curate"))
    assert [c.split("_")[1] for c in curate] == ["0", "1"]
    assert len({c.split("_")[0] for c in curate}) == 1
    assert all(Path(r["log"]).is_file() for r in jobs.values())
    assert {"slurm", "start", "done"} <= {e["event"] for e in events}

    again = run_sweep(spec, stage_fn=fake_stage)
    assert (again["stages_executed"], again["stages_cached"]) == (0, 9)
    assert read_jobs(spec.workdir) == jobs  # nothing submitted
    evals = sorted(r["job_id"] for r in jobs.values() if r["kind"] == "eval")
    assert accounted(f"clapsweep-{spec.name}-eval", evals) == [(i, "COMPLETED") for i in evals]

    # The same stand-in on the local backend: identical values; timings for the report.
    local = load_spec(write_spec(tmp_path, "local", {"kind": "local"}, rows=rows))
    t0 = time.monotonic()
    run_sweep(local, stage_fn=fake_stage, backend=LocalBackend())
    local_s = time.monotonic() - t0
    values = {n: r["value"] for n, r in results(local.workdir).items()}
    assert values == {n: r["value"] for n, r in got.items()}
    print(f"\n9-stage sweep: slurm {slurm_s:.1f} s, local {local_s:.2f} s")


def test_preempted_training_stage_requeues_and_resumes(cluster, tmp_path) -> None:
    spec = load_spec(
        write_spec(tmp_path, "preempt", {"kind": "slurm", "profile": "local-test",
                                         "slurm": {"checkpoint_every": 5}})
    )  # fmt: skip
    log = tmp_path / "steps.log"
    config = {"steps": 40, "step_s": 0.25, "log": str(log)}
    stage = PlannedStage("teacher", "00000000000000aa", config, {})
    backend = make_backend(spec)
    execute = StageExecutor(spec.workdir, spec.name, train_like)
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(backend.run_layer([stage], execute)))
    thread.start()

    def executed() -> list[str]:
        return [x for x in log.read_text().splitlines() if x.startswith("step")]

    wait_for(lambda: log.exists() and len(executed()) >= 12, 60, "12 training steps")
    job_id = read_jobs(spec.workdir)[stage.name]["job_id"]
    before = len(executed())
    # What SLURM sends before preempting (or at the time limit): submitit calls checkpoint()
    # and requeues the same job.
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert out[stage.name] == {"steps": 40}
    lines = log.read_text().splitlines()
    starts = [i for i, x in enumerate(lines) if x.startswith("start")]
    assert len(starts) == 2 and lines[0] == "start 0"
    first_run = starts[1] - 1  # steps the first job executed before it was requeued
    resumed_at = int(lines[starts[1]].split()[1])
    # Resumed from its last checkpoint (every 5 steps), not from zero: the steps executed in
    # all are those of the first job plus the rest, fewer than a restart's first_run + 40.
    assert first_run >= before and first_run - 5 <= resumed_at <= first_run
    assert resumed_at >= 10 and resumed_at % 5 == 0
    assert len(executed()) == first_run + 40 - resumed_at < first_run + 40
    assert read_jobs(spec.workdir)[stage.name]["jobs"] == [job_id]  # requeued, not resubmitted
    accounted(f"clapsweep-{spec.name}-teacher", [job_id])
    history = subprocess.run(
        ["sacct", "-X", "-n", "-P", "--duplicates", "-o", "State", "-j", job_id],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert history == ["REQUEUED", "COMPLETED"]  # one job, run twice


def test_restarted_driver_reattaches_instead_of_resubmitting(cluster, tmp_path, monkeypatch):
    spec_path = write_spec(tmp_path, "restart", seed=[0, 1])
    spec = load_spec(spec_path)
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    monkeypatch.setenv("FAKE_SLEEP", json.dumps({"teacher": 6}))
    code = "import sys, test_slurm_backend as t; t.driver_main(*sys.argv[1:])"
    driver = subprocess.Popen([sys.executable, "-c", code, str(spec_path), str(tmp_path / "s")])
    teachers = [s.name for s in build_plan(spec).stages.values() if s.kind == "teacher"]
    try:
        # Both teachers (one array of two) are running when the driver is killed.
        wait_for(lambda: calls.exists() and len(calls.read_text().splitlines()) == 2, 60, "jobs")
        assert driver.poll() is None
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    first = read_jobs(spec.workdir)
    assert set(first) == set(teachers)
    ids = [first[t]["job_id"] for t in teachers]
    assert set(job_states(ids).values()) == {"RUNNING"}

    summary = run_sweep(spec, stage_fn=fake_stage)
    assert (summary["stages_executed"], summary["stages_failed"]) == (12, 0)
    jobs = read_jobs(spec.workdir)
    assert [jobs[t]["jobs"] for t in teachers] == [[i] for i in ids]  # re-attached
    assert all(len(r["jobs"]) == 1 for r in jobs.values())
    ran = [line.split()[0] for line in calls.read_text().splitlines()]
    assert sorted(ran) == sorted(build_plan(spec).stages)  # every stage exactly once
    # SLURM's own record: one array of two teacher jobs was ever submitted.
    teacher_jobs = accounted(f"clapsweep-{spec.name}-teacher", ids)
    assert teacher_jobs == [(i, "COMPLETED") for i in sorted(ids)]


def test_cancel_stops_the_jobs_and_the_failure_names_job_and_log(
    cluster, tmp_path, monkeypatch, capsys
) -> None:
    spec_path = write_spec(tmp_path, "cancel")
    spec = load_spec(spec_path)
    monkeypatch.setenv("FAKE_SLEEP", json.dumps({"teacher": 300}))
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(run_sweep(spec, stage_fn=fake_stage)))
    thread.start()
    (teacher,) = [s.name for s in build_plan(spec).stages.values() if s.kind == "teacher"]

    def running() -> bool:
        jobs = read_jobs(spec.workdir)
        return teacher in jobs and job_states([jobs[teacher]["job_id"]]) == {
            jobs[teacher]["job_id"]: "RUNNING"
        }

    wait_for(running, 60, "the teacher's job to run")
    job_id = read_jobs(spec.workdir)[teacher]["job_id"]
    args = argparse.Namespace(sweep=str(spec_path), json=True, workdir=None)
    assert commands.cmd_status(args) == 0
    shown = json.loads(capsys.readouterr().out)["slurm_jobs"]
    assert [(j["stage"], j["job_id"], j["state"]) for j in shown] == [(teacher, job_id, "RUNNING")]

    t0 = time.monotonic()
    assert commands.cmd_cancel(argparse.Namespace(sweep=str(spec_path), workdir=None)) == 0
    said = capsys.readouterr().out
    assert f"cancelled SLURM job {job_id} (RUNNING): {teacher}" in said
    assert "1 SLURM job(s) cancelled" in said
    thread.join(timeout=60)
    assert not thread.is_alive()
    with capsys.disabled():
        print(f"\ncancel -> driver done in {time.monotonic() - t0:.1f} s")
    summary = out
    assert (summary["stages_failed"], summary["stages_skipped"]) == (1, 5)
    (failure,) = summary["failures"]
    log = Path(read_jobs(spec.workdir)[teacher]["log"])
    assert failure["message"] == f"SLURM job {job_id} was cancelled; log: {log}"
    assert log.is_file()
    assert read_jobs(spec.workdir)[teacher]["jobs"] == [job_id]  # a cancel is not retried
    assert Store(spec.workdir).failure(teacher)["message"] == failure["message"]
    assert job_states([job_id]) == {job_id: "CANCELLED"}
    assert commands.cmd_cancel(argparse.Namespace(sweep=str(spec_path), workdir=None)) == 0
    assert "0 SLURM job(s) cancelled" in capsys.readouterr().out


def test_lost_job_is_retried_and_stage_error_is_reported(cluster, tmp_path) -> None:
    spec = load_spec(write_spec(tmp_path, "flaky"))
    die = PlannedStage("embed", "00000000000000d1", {"mode": "die_once",
                       "marker": str(tmp_path / "die")}, {})  # fmt: skip
    bad = PlannedStage("embed", "00000000000000e2", {"mode": "raise",
                       "marker": str(tmp_path / "bad")}, {})  # fmt: skip
    backend = make_backend(spec)
    got = backend.run_layer([die, bad], StageExecutor(spec.workdir, spec.name, flaky))
    jobs = read_jobs(spec.workdir)
    # The job killed without a result was resubmitted once (max_retries 1) and succeeded.
    assert got[die.name] == {"attempts": 2} and len(jobs[die.name]["jobs"]) == 2
    assert Store(spec.workdir).is_done(die.name)
    # The stage that raised is reported with its job and log, and not resubmitted.
    error = got[bad.name]
    assert isinstance(error, StageFailed) and len(jobs[bad.name]["jobs"]) == 1
    job_id = jobs[bad.name]["job_id"]
    assert error.message == (
        f"the improvement set is empty (SLURM job {job_id}, log {jobs[bad.name]['log']})"
    )
    assert "UserError: the improvement set is empty" in Path(error.log).read_text()
    assert (tmp_path / "bad").read_text().count("attempt") == 1


def test_trivial_stage_latency(cluster, tmp_path) -> None:
    """Submit -> result of one trivial stage, for the record (and a bound that catches a
    backend that polls far too slowly)."""
    spec = load_spec(write_spec(tmp_path, "latency"))
    backend = make_backend(spec)
    execute = StageExecutor(spec.workdir, spec.name, fake_stage)
    times = []
    for i in range(2):
        stage = PlannedStage("eval", f"{i:016x}", {"i": i}, {})
        t0 = time.monotonic()
        result = backend.run_layer([stage], execute)[stage.name]
        times.append(time.monotonic() - t0)
        assert result["job"] == read_jobs(spec.workdir)[stage.name]["job_id"]
    print(f"\ntrivial stage submit -> result: {', '.join(f'{t:.2f}' for t in times)} s")
    assert min(times) < 20


def test_layer_split_into_arrays_on_the_cluster(cluster, tmp_path) -> None:
    # The loopback cluster keeps SLURM's default; 1002 trivial jobs would take minutes here,
    # so the profile forces arrays of 2: 5 stages go out as arrays of 2, 2 and 1.
    assert cluster_max_array_size() == 1001
    spec = load_spec(write_spec(tmp_path, "arrays", {"kind": "slurm", "profile": "local-test",
                                                     "slurm": {"max_array_size": 2}}))  # fmt: skip
    stages = [PlannedStage("eval", f"{i:016x}", {"i": i}, {}) for i in range(5)]
    events: list[dict] = []
    execute = StageExecutor(spec.workdir, spec.name, fake_stage, on_event=events.append)
    got = make_backend(spec).run_layer(stages, execute)
    jobs = read_jobs(spec.workdir)
    for stage in stages:  # every stage ran as the array task recorded for it
        assert got[stage.name]["job"] == jobs[stage.name]["job_id"]
    ids = [jobs[s.name]["job_id"].partition("_") for s in stages]
    assert len({a for a, _, _ in ids}) == 3
    # submitit sends a lone task as a plain job, not as an array of one.
    assert [t for _, _, t in ids] == ["0", "1", "0", "1", ""]
    said = [e["message"] for e in events if e["event"] == "slurm"]
    assert "5 eval stages: 3 job arrays, as SLURM takes at most 2 tasks per array" in said[0]
    accounted(f"clapsweep-{spec.name}-eval", [jobs[s.name]["job_id"] for s in stages])


def test_cli_rejects_slurm_without_profile(tmp_path) -> None:
    spec_path = write_spec(tmp_path, "noprof", {"kind": "local"})
    args = argparse.Namespace(sweep=str(spec_path), backend="slurm", profile=None, workdir=None)
    # Refused on loading, before the driver plans or generates anything.
    with pytest.raises(ConfigError, match=r"backend\.profile: the slurm backend needs"):
        commands.load_with_overrides(args)
    args.profile = "local-test"
    spec = commands.load_with_overrides(args)
    assert (spec.backend.kind, spec.backend.profile) == ("slurm", "local-test")


# ----------------------------------------------------------------------------- a real stage


@pytest.mark.slow
def test_real_eval_stage_through_slurm(cluster, tmp_path, monkeypatch) -> None:
    """One real pipeline stage (zero-shot eval of a small random model on the tiny
    synthworld) as a SLURM job: the real stage function, imports and files on the node."""
    from clapsweep.data import synthworld

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = tmp_path / "synth"
    synthworld.generate(root, scale="tiny")
    spec = load_spec(write_spec(tmp_path, "real"))
    config = {
        "data": {"root": str(root), "teacher": [], "tasks": ["esc50"]},
        "frontend": {"sample_rate": 16000, "clip_seconds": 1.0, "n_fft": 512,
                     "win_length": 512, "hop_length": 160, "n_mels": 32, "f_max": 8000.0},
        "model": {"audio": "small_cnn", "audio_width": 8, "text": "minilm",
                  "text_pooling": "mean", "dim": 32},
        "runtime": {"cache_dir": None},
    }  # fmt: skip
    stage = PlannedStage("eval", "0000000000000e7a", config, {})
    t0 = time.monotonic()
    got = make_backend(spec).run_layer([stage], StageExecutor(spec.workdir, spec.name))
    print(f"\nreal eval stage through SLURM: {time.monotonic() - t0:.1f} s")
    result = got[stage.name]
    assert not isinstance(result, BaseException), result
    assert result["esc50"]["n"] == 15 and 0.0 <= result["esc50"]["accuracy"] <= 1.0
    metrics = json.loads((Store(spec.workdir).final(stage.name) / "metrics.json").read_text())
    assert metrics["esc50"]["n"] == 15


def test_dry_run_shows_what_sbatch_is_asked(tmp_path, capsys) -> None:
    from clapsweep import cli

    ray = {"kind": "ray", "resources": {"eval": {"cpu": 8, "gpu": 1}}}
    spec = str(write_spec(tmp_path, "dry", ray))
    argv = ["run", spec, "--dry-run", "--backend", "slurm", "--profile", "example-gpu"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert (
        "  eval jobs ask sbatch for --partition=gpu --account=my-project --qos=normal "
        "--time=60 --cpus-per-task=16 --mem=32768M --gpus-per-node=1 --constraint=h100\n"
    ) in out
    assert "8 cpu" not in out  # the Ray resources are not what SLURM is asked
    assert cli.main(argv + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["slurm_requests"]["eval"]["time"] == 60
