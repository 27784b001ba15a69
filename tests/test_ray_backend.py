"""The Ray backend, for real: a local Ray (loopback only), one Tune experiment per DAG layer.

The sweep has the shape of sweeps/smoke.yaml (its rows), but its stage function is
a stand-in (RecordingStages) for clapsweep.pipeline.run_stage: the real stages train models
and take minutes on CPU, which the smoke-sweep test covers. Everything else is real: Ray
starts, Tune schedules one trial per stage in worker processes, and the stages write into
the store. The stand-in appends one line per call to a file, since it runs in other processes.
"""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import owner_of, stub_data_root

from clapsweep.config import load_yaml
from clapsweep.errors import UserError
from clapsweep.recipe.plan import build_plan
from clapsweep.recipe.run import ensure_data, make_backend, run_sweep
from clapsweep.recipe.spec import ResourceSpec, load_spec, parse_spec
from clapsweep.store import Store
from clapsweep.sweep.executor import StageExecutor
from clapsweep.sweep.tracking import WandbTracker

ROOT = Path(__file__).resolve().parent.parent


class RecordingStages:
    """Stand-in for run_stage (see the module docstring): records each call with its pid,
    reports one training step, fails the DS curation for `fail_task`, else writes its output."""

    def __init__(self, calls_file: Path, fail_task: str | None = None) -> None:
        self.calls_file, self.fail_task = str(calls_file), fail_task

    def __call__(self, kind, config, inputs, out, report=None):
        name = out.name.removesuffix(".partial")
        for role, path in inputs.items():
            assert (path / "meta.json").is_file(), f"{name}: input {role} is not finished"
        with open(self.calls_file, "a") as f:
            f.write(json.dumps({"name": name, "pid": os.getpid(), "cwd": os.getcwd()}) + "\n")
        report({"step": 1, "loss": 0.5, "phase": "train"})
        if kind == "curate" and config["strategy"] == "ds" and config["task"] == self.fail_task:
            raise UserError(f"empty Improvement-Set for {self.fail_task}")
        (out / "out.txt").write_text(name)
        return {"stage": name, "inputs": sorted(inputs)}


def chatty(kind, config, inputs, out, report=None):
    """Stand-in stage: `reports` progress reports in a tight loop (far under a second), then
    fails when config["fail"], else returns."""
    for step in range(1, config["reports"] + 1):
        report({"step": step, "loss": 1.0 / step})
    if config.get("fail"):
        raise UserError("no pairs left")
    (out / "out.txt").write_text("ok")
    return {"steps": config["reports"]}


def calls(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    """One local Ray for the whole file (starting it costs seconds)."""
    spec = load_spec(ROOT / "sweeps" / "smoke.yaml")
    spec.workdir = str(tmp_path_factory.mktemp("ray-owner"))
    spec.backend.kind = "ray"
    spec.backend.max_concurrent = 2
    b = make_backend(spec)
    b.connect()
    from ray import cloudpickle  # imported after connect(), which sets Ray's environment

    # Workers cannot import this test module: ship the stand-in by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield b
    b.close()


# sweeps/smoke.yaml's four rows at one seed and one teacher fraction, on two tasks (Ray
# starts every layer's trials in fresh worker processes: the full grid would take minutes).
SMOKE_ROWS = [
    {"name": "DU", "strategy": "du", "sigma": 0.1, "replay": 0.5},
    {"name": "DU+SL", "strategy": "du", "sigma": 0.1, "beta": 0.3, "replay": 0.5},
    {"name": "DS+SL", "strategy": "ds", "sigma_ds": 0.3, "beta": 0.3, "replay": 0.5},
    {
        "name": "ADS+SL",
        "strategy": "ads",
        "sigma_ds": 0.3,
        "sigma": 0.1,
        "beta": 0.3,
        "replay": 0.5,
    },
]


def smoke_spec(tmp_path: Path, synth: bool = False):
    """sweeps/smoke.yaml with the grid above, the ray backend, a workdir in tmp_path and,
    unless synth, no data generation."""
    data = load_yaml(ROOT / "sweeps" / "smoke.yaml")
    data["grid"] = {"seed": [0], "teacher_fraction": [1.0], "rows": SMOKE_ROWS}
    data["data"]["tasks"] = ["esc50", "us8k"]
    spec = parse_spec(data)
    spec.workdir = str(tmp_path / "work")
    spec.data.root = str(tmp_path / "data")
    if not synth:
        spec.data.synth = None
        stub_data_root(tmp_path / "data")
    spec.backend.kind = "ray"
    spec.tracking.wandb.enabled = False
    return spec


@pytest.mark.slow
def test_smoke_shape_through_ray_once_failure_rerun(tmp_path, backend, capsys):
    spec = smoke_spec(tmp_path)
    plan = build_plan(spec)
    # By hand: teacher, its eval, embed (3); curation DU (shared by DU and DU+SL), DS x2 tasks
    # (shared by DS+SL and ADS+SL), ADS x2 (5); students 2 + 2 + 2 (6) and their evals (6).
    assert len(plan.stages) == 20
    assert len(plan.layers()) == 5
    log = tmp_path / "calls.jsonl"
    events = []
    summary = run_sweep(
        spec,
        backend=backend,
        stage_fn=RecordingStages(log, fail_task="us8k"),
        on_event=events.append,
    )
    # The DS curation for us8k fails: its student and eval, and the ADS+SL student and eval
    # for us8k (ADS replays the DS set) are skipped.
    assert summary["backend"] == "ray"
    assert summary["stages_failed"] == 1
    assert summary["stages_skipped"] == 4
    assert summary["stages_executed"] == 20 - 1 - 4
    (failure,) = summary["failures"]
    assert failure["message"] == "empty Improvement-Set for us8k"
    assert failure["kind"] == "curate"
    assert "empty Improvement-Set for us8k" in Path(failure["log"]).read_text()
    first = calls(log)
    ran = Counter(c["name"] for c in first)
    assert set(ran.values()) == {1}, "a stage ran twice"
    assert len(ran) == 20 - 4
    # Trials ran in Ray workers, in the driver's working directory (RAY_CHDIR_TO_TRIAL_DIR=0).
    assert os.getpid() not in {c["pid"] for c in first}
    assert {c["cwd"] for c in first} == {os.getcwd()}
    store = Store(spec.workdir)
    done = {name for name in plan.stages if store.is_done(name)}
    assert len(done) == 15
    for name in done:
        assert store.meta(name)["result"] == {
            "stage": name,
            "inputs": sorted(plan.stages[name].inputs),
        }
        assert (store.final(name) / "out.txt").read_text() == name
    # Progress came back from the workers through ray.tune.report: numbers only.
    progress = [e for e in events if e["event"] == "progress"]
    assert {e["name"] for e in progress} == set(ran)
    assert all(e["metrics"] == {"step": 1, "loss": 0.5} for e in progress)
    assert Counter(e["event"] for e in events)["start"] == len(ran)
    assert len(list((Path(spec.workdir) / "ray").glob("layer*-*"))) == 5
    assert capsys.readouterr().out == ""  # Tune's banners stay off stdout (--json)

    # Fixed: the next run executes the failed stage and the ones that waited for it.
    summary = run_sweep(spec, backend=backend, stage_fn=RecordingStages(log))
    assert (summary["stages_executed"], summary["stages_cached"]) == (5, 15)
    assert summary["stages_failed"] == summary["stages_skipped"] == 0
    second = calls(log)[len(first) :]
    assert sorted(c["name"] for c in second) == sorted(set(plan.stages) - done)

    # Everything is in the store: a third run executes nothing.
    summary = run_sweep(spec, backend=backend, stage_fn=RecordingStages(log))
    assert (summary["stages_executed"], summary["stages_cached"]) == (0, 20)
    assert len(calls(log)) == len(first) + len(second)


@pytest.mark.slow
def test_one_real_teacher_stage_through_ray(tmp_path, backend):
    """The real stage function (clapsweep.pipeline) in a Ray worker, two training steps,
    tracked offline by W&B from inside the worker."""
    from test_tracking import all_runs

    spec = smoke_spec(tmp_path, synth=True)
    spec.train.max_steps = 2
    spec.train.log_every = 1
    spec.train.batch_size = 4
    plan = build_plan(spec)
    ensure_data(spec)
    (teacher,) = [s for s in plan.stages.values() if s.kind == "teacher"]
    events = []
    execute = StageExecutor(
        spec.workdir, spec.name, tracker=WandbTracker(spec), on_event=events.append
    )
    results = backend.run_layer([teacher], execute)
    result = results[teacher.name]
    assert isinstance(result, dict), result
    # The trainer's progress reached the driver, ending with the last step.
    progress = [e["metrics"] for e in events if e["event"] == "progress"]
    assert progress[-1]["step"] == 2 and {"loss", "samples_per_s"} <= set(progress[-1])
    store = Store(spec.workdir)
    assert store.meta(teacher.name)["result"] == result
    assert result["steps"] == 2
    assert not store.has_partial(teacher.name)
    (run,) = all_runs(spec.workdir)
    assert (run["id"], run["job_type"], run["group"]) == (
        f"smoke-{teacher.name}",
        "teacher",
        "smoke",
    )
    assert [row["step"] for row in run["history"] if "loss" in row] == [1, 2]
    assert run["summary"]["steps"] == 2


def test_progress_reaches_the_driver_throttled_with_the_last_report(tmp_path, backend):
    """Hundreds of reports in well under a second: the driver's on_event hears each stage's
    first and last (numbers only), also of a stage that fails."""
    from clapsweep.sweep.plan import PlannedStage

    ok = PlannedStage("teacher", "00000000000000a1", {"reports": 200}, {})
    bad = PlannedStage("eval", "00000000000000b2", {"reports": 50, "fail": True}, {})
    events = []
    execute = StageExecutor(str(tmp_path / "work"), "chat", chatty, on_event=events.append)
    results = backend.run_layer([ok, bad], execute)
    assert results[ok.name] == {"steps": 200}
    assert results[bad.name].message == "no pairs left"
    progress = {ok.name: [], bad.name: []}
    for e in events:
        if e["event"] == "progress":
            progress[e["name"]].append(e["metrics"])
    assert progress[ok.name] == [{"step": 1, "loss": 1.0}, {"step": 200, "loss": 1 / 200}]
    assert [m["step"] for m in progress[bad.name]] == [1, 50]


def test_a_ray_level_error_is_recorded_as_the_stage_failure(tmp_path):
    from clapsweep.sweep.plan import PlannedStage
    from clapsweep.sweep.ray_backend import _stage_failure

    store = Store(tmp_path)
    stage = PlannedStage("eval", "0123456789abcdef", {}, {})
    error = RuntimeError(
        "\x1b[36mray::ImplicitFunc.train()\x1b[39m\n  File x\nOSError: disk full\n"
    )
    failed = _stage_failure(store, stage, error)
    assert failed.message == "Ray trial failed: OSError: disk full"
    assert store.failure(stage.name)["message"] == failed.message
    assert "ImplicitFunc.train()\n  File x" in Path(failed.log).read_text()


def test_local_ray_listens_on_loopback_only(backend):
    import ray

    assert ray.util.get_node_ip_address() == "127.0.0.1"
    if shutil.which("ss") is None:
        pytest.skip("ss is not installed")
    lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
    ray_lines = [line for line in lines if "raylet" in line or "gcs_server" in line]
    assert ray_lines, lines
    for line in ray_lines:
        local = line.split()[3]
        assert local.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")), line


def test_close_leaves_a_ray_it_did_not_start(tmp_path, backend):
    import ray

    spec = smoke_spec(tmp_path)
    other = make_backend(spec)
    other.connect()  # Ray is up already (the fixture's)
    other.close()
    assert ray.is_initialized()
    assert backend.started


def test_resources_beyond_the_local_ray_are_refused(tmp_path, backend):
    spec = smoke_spec(tmp_path)
    spec.backend.resources = {"student": ResourceSpec(cpu=1, gpu=1000)}
    with pytest.raises(UserError, match=r"backend.resources.student.gpu: asks for 1000 but"):
        make_backend(spec).connect()
    spec.backend.resources = {"teacher": ResourceSpec(cpu=1)}
    make_backend(spec).connect()  # one CPU is always there


@pytest.mark.slow
def test_a_stage_a_live_process_owns_is_left_alone_on_a_local_ray(tmp_path, backend):
    """The local Ray runs on this host, so it checks owners as the local backend does: a
    teacher whose .partial a live process owns is neither run nor failed, what needs it is
    skipped, and a trial that meets a busy stage (a race the check cannot see) reports it
    busy too, not failed."""
    from clapsweep.store import StageBusy

    spec = smoke_spec(tmp_path)
    plan = build_plan(spec)
    store = Store(spec.workdir)
    (teacher,) = [n for n, s in plan.stages.items() if s.kind == "teacher"]
    child = subprocess.Popen(["sleep", "60"])
    try:
        store.partial(teacher).mkdir(parents=True)
        store.owner_path(teacher).write_text(json.dumps(owner_of(child.pid)))
        log = tmp_path / "calls.jsonl"
        summary = run_sweep(spec, backend=backend, stage_fn=RecordingStages(log))
        assert backend.checks_owners
        assert summary["stages_elsewhere"] == 1 and summary["elsewhere"][0]["name"] == teacher
        assert summary["stages_failed"] == 0 and summary["stages_executed"] == 0
        assert store.failure(teacher) is None and not calls(log)

        from clapsweep.sweep.plan import PlannedStage
        from clapsweep.sweep.ray_backend import _stage_failure

        busy = _stage_failure(store, PlannedStage("teacher", "k", {}, {}), StageBusy("x", "o"))
        assert isinstance(busy, StageBusy) and store.failure("teacher-k") is None
    finally:
        child.kill()
        child.wait()
