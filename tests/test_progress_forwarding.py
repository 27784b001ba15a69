"""Stage progress from local worker processes reaches the driver's on_event, throttled.

Everything is real: spawned worker processes, the pipe they answer on, the store. One test
runs a real tiny training stage (two teachers of sweeps/smoke.yaml on the tiny synthworld,
tracked offline by W&B inside the workers); the others use stand-in stage functions
(`chatty`) that report many times in a tight loop, to pin the throttle down exactly. The
Ray backend's forwarding is tested in test_ray_backend.py (it needs that file's Ray).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from clapsweep.config import load_yaml
from clapsweep.errors import UserError
from clapsweep.recipe.plan import build_plan
from clapsweep.recipe.run import ensure_data
from clapsweep.recipe.spec import parse_spec
from clapsweep.sweep.executor import StageExecutor, StageFailed
from clapsweep.sweep.local import LocalBackend, Throttle
from clapsweep.sweep.plan import PlannedStage

ROOT = Path(__file__).resolve().parent.parent


def chatty(kind, config, inputs, out, report=None) -> dict:
    """Stand-in stage: `reports` progress reports in a tight loop (far under a second), then
    fails when config["fail"], else returns."""
    for step in range(1, config["reports"] + 1):
        report({"step": step, "loss": 1.0 / step, "phase": "train"})
    if config.get("fail"):
        raise UserError("no pairs left")
    (out / "out.txt").write_text("ok")
    return {"steps": config["reports"]}


def progress_of(events: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in events:
        if e["event"] == "progress":
            out.setdefault(e["name"], []).append(e)
    return out


def test_throttle_passes_the_first_holds_the_rest_and_flushes_the_last() -> None:
    sent: list[int] = []
    throttle = Throttle(lambda m: sent.append(m["step"]), every=3600)
    for step in range(1, 6):
        throttle({"step": step})
    assert sent == [1]
    throttle.flush()
    throttle.flush()  # nothing held any more
    assert sent == [1, 5]
    fast = Throttle(lambda m: sent.append(m["step"]), every=0)
    fast({"step": 6})
    fast({"step": 7})
    assert sent == [1, 5, 6, 7]


def test_worker_progress_reaches_the_driver_throttled_with_the_last_report(tmp_path) -> None:
    """200 reports in well under a second: the driver hears the first and the last, with
    the stage's name and kind; a stage that fails still passes its last report on."""
    stages = [
        PlannedStage("teacher", "00000000000000a1", {"reports": 200}, {}),
        PlannedStage("eval", "00000000000000b2", {"reports": 50, "fail": True}, {}),
    ]
    events: list[dict] = []
    execute = StageExecutor(str(tmp_path), "chat", chatty, on_event=events.append)
    backend = LocalBackend(workers=2)
    try:
        results = backend.run_layer(stages, execute)
    finally:
        backend.close()
    ok, bad = stages
    assert results[ok.name] == {"steps": 200}
    assert isinstance(results[bad.name], StageFailed)
    progress = progress_of(events)
    assert [e["metrics"]["step"] for e in progress[ok.name]] == [1, 200]
    assert [e["metrics"]["step"] for e in progress[bad.name]] == [1, 50]
    first = progress[ok.name][0]
    assert first["kind"] == "teacher" and first["key"] == ok.key
    assert first["metrics"] == {"step": 1, "loss": 1.0, "phase": "train"}
    # Each stage's progress comes after its start.
    names = [(e["event"], e.get("name")) for e in events]
    for stage in stages:
        assert names.index(("start", stage.name)) < names.index(("progress", stage.name))


def test_no_progress_is_sent_to_a_driver_without_on_event(tmp_path) -> None:
    """Without on_event the driver drains and drops the progress; the stage runs as before."""
    stage = PlannedStage("teacher", "00000000000000c3", {"reports": 20}, {})
    backend = LocalBackend(workers=1)
    try:
        results = backend.run_layer([stage], StageExecutor(str(tmp_path), "quiet", chatty))
    finally:
        backend.close()
    assert results[stage.name] == {"steps": 20}


@pytest.mark.slow
def test_real_training_stages_in_two_workers_report_their_steps(tmp_path) -> None:
    """Two real tiny teachers (smoke.yaml's two fractions) in two worker processes: the
    driver gets each one's progress (step, loss, samples/s) throttled to about 2 a second,
    ending with the last step; W&B, inside the workers, still logs every step once."""
    from test_tracking import all_runs

    from clapsweep.sweep.tracking import WandbTracker

    data = load_yaml(ROOT / "sweeps" / "smoke.yaml")
    data["grid"]["rows"] = data["grid"]["rows"][:1]
    spec = parse_spec(data)
    spec.workdir = str(tmp_path / "work")
    spec.data.root = str(tmp_path / "data")
    spec.train.log_every, spec.train.batch_size = 1, 4  # 2 epochs: 26 steps
    ensure_data(spec)
    plan = build_plan(spec)
    teachers = [s for s in plan.stages.values() if s.kind == "teacher"]
    assert len(teachers) == 2
    events: list[dict] = []
    tracker = WandbTracker(spec)
    execute = StageExecutor(spec.workdir, spec.name, tracker=tracker, on_event=events.append)
    backend = LocalBackend(workers=2)
    started = time.monotonic()
    try:
        results = backend.run_layer(teachers, execute)
    finally:
        backend.close()
    elapsed = time.monotonic() - started  # each stage ran within it
    progress = progress_of(events)
    for teacher in teachers:
        result = results[teacher.name]
        assert isinstance(result, dict), result
        steps = [e["metrics"]["step"] for e in progress[teacher.name] if "step" in e["metrics"]]
        assert steps == sorted(set(steps)) and steps[0] == 1
        assert steps[-1] == result["steps"] == progress[teacher.name][-1]["metrics"]["total_steps"]
        # At most one every 0.5 s of wall time, plus the first and the last held back
        # (train_seconds is too tight: it leaves out checkpoints and the stage's start).
        assert len(progress[teacher.name]) <= elapsed / 0.5 + 2
        last = progress[teacher.name][-1]
        assert last["kind"] == "teacher"
        assert {"loss", "samples_per_s", "total_steps"} <= set(last["metrics"])
    runs = {r["name"]: r for r in all_runs(spec.workdir)}
    for teacher in teachers:
        history = [row["step"] for row in runs[teacher.name]["history"] if "loss" in row]
        assert history == list(range(1, results[teacher.name]["steps"] + 1))
    shutil.rmtree(tmp_path)  # the synthworld and two checkpoints
