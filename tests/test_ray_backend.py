"""The Ray backend, for real: a local Ray (loopback only), one Tune experiment per DAG layer.

The sweep has the shape of sweeps/smoke.yaml (same grid and rows), but its stage function is
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

from clapsweep.errors import UserError
from clapsweep.store import Store
from clapsweep.sweep.plan import build_plan
from clapsweep.sweep.runner import make_backend, run_sweep
from clapsweep.sweep.spec import load_spec

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


def smoke_spec(tmp_path: Path):
    """sweeps/smoke.yaml with the ray backend, a workdir in tmp_path, no data generation."""
    spec = load_spec(ROOT / "sweeps" / "smoke.yaml")
    spec.workdir = str(tmp_path / "work")
    spec.data.root = str(tmp_path / "data")
    spec.data.synth = None
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "README").write_text("the stand-in stages read no data")
    spec.backend.kind = "ray"
    spec.tracking.wandb.enabled = False
    return spec


def test_smoke_shape_through_ray_once_failure_rerun(tmp_path, backend):
    spec = smoke_spec(tmp_path)
    plan = build_plan(spec)
    # By hand, per teacher fraction: teacher, its eval, embed; curation DU (shared by DU and
    # DU+SL), DS x3 tasks (shared by DS+SL and ADS+SL), ADS x3; students 2 + 3 + 3 and their
    # evals 8: 3 + 7 + 8 + 8 = 26; two fractions: 52.
    assert len(plan.stages) == 52
    log = tmp_path / "calls.jsonl"
    events = []
    summary = run_sweep(
        spec,
        backend=backend,
        stage_fn=RecordingStages(log, fail_task="us8k"),
        on_event=events.append,
    )
    # The DS curation for us8k fails (two fractions): its student, that student's eval, and
    # the ADS+SL student and eval for us8k (ADS replays the DS set) are skipped: 2 x 4.
    assert summary["backend"] == "ray"
    assert summary["stages_failed"] == 2
    assert summary["stages_skipped"] == 8
    assert summary["stages_executed"] == 52 - 2 - 8
    for failure in summary["failures"]:
        assert failure["message"] == "empty Improvement-Set for us8k"
        assert failure["kind"] == "curate"
        assert "empty Improvement-Set for us8k" in Path(failure["log"]).read_text()
    first = calls(log)
    ran = Counter(c["name"] for c in first)
    assert set(ran.values()) == {1}, "a stage ran twice"
    assert len(ran) == 52 - 8
    # Trials ran in Ray workers, in the driver's working directory (RAY_CHDIR_TO_TRIAL_DIR=0).
    assert os.getpid() not in {c["pid"] for c in first}
    assert {c["cwd"] for c in first} == {os.getcwd()}
    store = Store(spec.workdir)
    for name, stage in plan.stages.items():
        if ran[name] and store.is_done(name):
            assert store.meta(name)["result"] == {"stage": name, "inputs": sorted(stage.inputs)}
            assert (store.final(name) / "out.txt").read_text() == name
    # Progress came back from the workers through ray.tune.report: numbers only.
    progress = [e for e in events if e["event"] == "progress"]
    assert {e["name"] for e in progress} == set(ran)
    assert all(e["metrics"] == {"step": 1, "loss": 0.5} for e in progress)
    assert Counter(e["event"] for e in events)["start"] == len(ran)
    assert list((Path(spec.workdir) / "ray").glob("layer0-*"))

    # Fixed: the next run executes the failed stages and the ones that waited for them.
    done = {name for name in plan.stages if store.is_done(name)}
    assert len(done) == 42
    summary = run_sweep(spec, backend=backend, stage_fn=RecordingStages(log))
    assert (summary["stages_executed"], summary["stages_cached"]) == (10, 42)
    assert summary["stages_failed"] == summary["stages_skipped"] == 0
    second = calls(log)[len(first) :]
    assert sorted(c["name"] for c in second) == sorted(set(plan.stages) - done)

    # Everything is in the store: a third run executes nothing.
    summary = run_sweep(spec, backend=backend, stage_fn=RecordingStages(log))
    assert (summary["stages_executed"], summary["stages_cached"]) == (0, 52)
    assert len(calls(log)) == len(first) + len(second)


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
