"""The sweep driver: runs each stage once in dependency order, caches, skips dependents of
failures, resumes after kill -9, refuses a second driver, reports status and the plan.

The stage function here is a stand-in (FakeStages) for clapsweep.pipeline.run_stage: the real
stages train models and land separately, and the driver's behaviour does not depend on what a
stage computes. The stand-in writes real files, checks that its inputs are finished artifacts,
and derives its result from its config and its inputs' results, so wrong wiring shows up.
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import stub_data_root

from clapsweep.cli import sweep as commands
from clapsweep.errors import UserError
from clapsweep.recipe.plan import build_plan
from clapsweep.recipe.run import describe_plan, run_sweep, status
from clapsweep.recipe.spec import load_spec
from clapsweep.store import Store
from clapsweep.sweep.local import LocalBackend
from clapsweep.sweep.state import stage_state

TESTS = Path(__file__).resolve().parent


class FakeStages:
    """Stand-in for clapsweep.pipeline.run_stage (see the module docstring)."""

    def __init__(self, calls_file=None, fail=None, slow=None):
        self.calls: list[dict] = []
        self.calls_file, self.fail, self.slow = calls_file, fail, slow

    def __call__(self, kind, config, inputs, out, report=None):
        name = out.name.removesuffix(".partial")
        for path in inputs.values():
            if not (path / "meta.json").is_file():
                raise AssertionError(f"{name} ran before its input {path.name} finished")
        parts = [
            kind,
            json.dumps({k: v for k, v in config.items() if k != "runtime"}, sort_keys=True),
        ]
        for role in sorted(inputs):
            parts.append(role + "=" + json.loads((inputs[role] / "out.json").read_text())["value"])
        value = hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]
        self._record({"name": name, "kind": kind, "resumed": (out / "checkpoint").exists()})
        if report is not None:
            report({"step": 1, "loss": 0.5})
        if self.fail is not None and self.fail(kind, config):
            raise UserError(f"empty Improvement-Set for {config.get('task')}")
        if kind == self.slow:
            (out / "checkpoint").write_text("half way")
            self._record({"name": name, "kind": kind, "checkpoint": True})
            time.sleep(60)
        (out / "out.json").write_text(json.dumps({"value": value}))
        return {"value": value}

    def _record(self, call: dict) -> None:
        self.calls.append(call)
        if self.calls_file:
            with open(self.calls_file, "a") as f:
                f.write(json.dumps(call) + "\n")


def write_spec(tmp_path: Path, workdir: str = "work", **extra) -> Path:
    data_root = stub_data_root(tmp_path / "data")
    spec = {
        "name": "mini",
        "workdir": str(tmp_path / workdir),
        "data": {"root": str(data_root), "tasks": ["esc50", "us8k"]},
        "grid": {
            "seed": [0],
            "teacher_fraction": [1.0, 0.5],
            "rows": [
                {"name": "DU", "strategy": "du", "sigma": 0.3},
                {"name": "DU+SL", "strategy": "du", "sigma": 0.3, "beta": 0.3},
                {"name": "DS", "strategy": "ds", "sigma_ds": 0.4},
                {"name": "ADS", "strategy": "ads", "sigma_ds": 0.4, "sigma": 0.3},
            ],
        },
        "tracking": {"wandb": {"enabled": False}},
    } | extra
    path = tmp_path / f"{workdir}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


# Per fraction, by hand: teacher 1, embed 1, curate 1 DU + 2 DS + 2 ADS = 5,
# students 2 DU + 2 DS + 2 ADS = 6, evals 1 teacher + 6 = 7: 20 stages; two fractions: 40.
TOTAL = 40


def results(workdir) -> dict:
    store = Store(workdir)
    return {p.name: store.meta(p.name)["result"] for p in store.stages.iterdir() if p.is_dir()}


def test_runs_each_stage_once_in_order_then_nothing(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    fake = FakeStages()
    events = []
    summary = run_sweep(spec, stage_fn=fake, on_event=events.append)
    assert summary["stages_failed"] == 0, summary["failures"]
    assert (summary["stages_total"], summary["stages_executed"], summary["stages_cached"]) == (
        TOTAL,
        TOTAL,
        0,
    )
    names = [c["name"] for c in fake.calls]
    assert len(names) == len(set(names)) == TOTAL
    assert set(names) == set(build_plan(spec).stages)
    assert all(not c["resumed"] for c in fake.calls)
    # Progress reaches on_event; stage events name the stage and who uses it.
    kinds = Counter(e["event"] for e in events)
    assert (kinds["start"], kinds["progress"], kinds["done"]) == (TOTAL, TOTAL, TOTAL)
    marks = [(e["event"], e["name"]) for e in events if e["event"] in ("start", "done")]
    assert marks == [(ev, n) for n in names for ev in ("start", "done")]  # one at a time
    # Records for report/status, and the resolved spec loads back to the same plan.
    workdir = Path(spec.workdir)
    plan_json = json.loads((workdir / "plan.json").read_text())
    assert len(plan_json["stages"]) == TOTAL
    assert set(build_plan(load_spec(workdir / "spec.yaml")).stages) == set(names)

    again = FakeStages()
    summary = run_sweep(spec, stage_fn=again)
    assert (summary["stages_executed"], summary["stages_cached"]) == (0, TOTAL)
    assert again.calls == []


def test_failed_stage_skips_its_dependents_only(tmp_path):
    spec = load_spec(write_spec(tmp_path))

    def us8k_ds(kind, config):
        return kind == "curate" and config["strategy"] == "ds" and config["task"] == "us8k"

    summary = run_sweep(spec, stage_fn=FakeStages(fail=us8k_ds))
    # Two fractions x one failing DS curation of us8k. Each blocks, by hand: the DS student
    # of us8k, the ADS student of us8k (it replays that DS set) and their two evals.
    assert summary["stages_failed"] == 2
    assert summary["stages_skipped"] == 8
    assert summary["stages_executed"] == TOTAL - 10
    for f in summary["failures"]:
        assert f["kind"] == "curate"
        assert f["message"] == "empty Improvement-Set for us8k"
        log = Path(f["log"]).read_text()
        assert "Traceback" in log and "UserError: empty Improvement-Set for us8k" in log
    assert {s["because"] for s in summary["skipped"]} <= {
        f["name"] for f in summary["failures"]
    } | {s["name"] for s in summary["skipped"]}
    st = status(spec)
    assert st["kinds"]["curate"] == dict(total=10, done=8, running=0, failed=2, pending=0) | {
        "bytes": st["kinds"]["curate"]["bytes"]
    }
    assert st["kinds"]["student"]["pending"] == 4 and st["kinds"]["student"]["done"] == 8
    assert st["kinds"]["curate"]["bytes"] > 0  # the finished stages' files
    assert st["totals"]["done"] == TOTAL - 10 and len(st["failures"]) == 2
    assert not st["locked"]

    # The next run retries the failed stages and runs what they blocked; nothing else.
    retry = FakeStages()
    summary = run_sweep(spec, stage_fn=retry)
    assert (summary["stages_executed"], summary["stages_failed"]) == (10, 0)
    assert status(spec)["totals"]["done"] == TOTAL
    assert status(spec)["failures"] == []


def test_unexpected_exception_is_recorded_with_its_type(tmp_path):
    spec = load_spec(write_spec(tmp_path))

    def broken(kind, config, inputs, out, report=None):
        if kind == "embed":
            raise RuntimeError("CUDA out of memory")
        return FakeStages()(kind, config, inputs, out, report)

    summary = run_sweep(spec, stage_fn=broken)
    assert summary["stages_failed"] == 2
    assert summary["failures"][0]["message"] == "RuntimeError: CUDA out of memory"
    # Everything but the two teachers and their evals depends on an embed.
    assert summary["stages_executed"] == 4
    assert summary["stages_skipped"] == TOTAL - 6


def driver_main(spec_path: str, calls_file: str, slow: str) -> None:
    """Entry point of the driver subprocess in the kill test."""
    run_sweep(load_spec(spec_path), stage_fn=FakeStages(calls_file=calls_file, slow=slow))


def test_killed_driver_resumes_with_the_same_results(tmp_path):
    spec_path = write_spec(tmp_path)
    spec = load_spec(spec_path)
    calls_file = tmp_path / "calls.jsonl"
    code = "import sys, test_runner; test_runner.driver_main(*sys.argv[1:])"
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(spec_path), str(calls_file), "student"], env=env
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            lines = calls_file.read_text().splitlines() if calls_file.exists() else []
            if any('"checkpoint": true' in line for line in lines):
                break
            assert proc.poll() is None, "the driver exited early"
            time.sleep(0.05)
        else:
            pytest.fail("the driver never reached a student")
        # While it works: a second driver is refused, status shows the running stage.
        with pytest.raises(UserError, match="another run holds"):
            run_sweep(spec, stage_fn=FakeStages())
        st = status(spec)
        assert st["locked"] and st["kinds"]["student"]["running"] == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    first = [json.loads(line) for line in calls_file.read_text().splitlines()]
    killed = first[-1]["name"]
    store = Store(spec.workdir)
    done_before = {c["name"] for c in first if store.is_done(c["name"])}
    assert killed not in done_before and len(done_before) >= 4
    assert not store.is_done(killed) and store.has_partial(killed)

    resumed = FakeStages()
    summary = run_sweep(spec, stage_fn=resumed)
    assert summary["stages_failed"] == 0
    assert summary["stages_cached"] == len(done_before)
    assert summary["stages_executed"] == TOTAL - len(done_before)
    second = {c["name"]: c for c in resumed.calls}
    assert not done_before & set(second)  # finished stages were not run again
    assert second[killed]["resumed"]  # the interrupted one found its checkpoint

    clean_path = write_spec(tmp_path, workdir="clean")
    run_sweep(load_spec(clean_path), stage_fn=FakeStages())
    assert results(spec.workdir) == results(load_spec(clean_path).workdir)
    assert len(results(spec.workdir)) == TOTAL


def test_dry_run_writes_nothing_and_counts_done_new_shared(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    info = run_sweep(spec, dry_run=True)
    assert not Path(spec.workdir).exists()
    assert info["dry_run"] and info["totals"]["total"] == TOTAL and info["totals"]["done"] == 0
    # Shared by hand, per fraction: teacher, embed, the DU curation (DU, DU+SL) and the two
    # DS curations (DS and ADS rows).
    assert info["kinds"]["teacher"] == {
        "total": 2,
        "done": 0,
        "new": 2,
        "shared": 2,
        "other_sweeps": 0,
    }
    assert info["kinds"]["curate"] == {
        "total": 10,
        "done": 0,
        "new": 10,
        "shared": 6,
        "other_sweeps": 0,
    }
    assert info["kinds"]["eval"]["shared"] == 0
    run_sweep(spec, stage_fn=FakeStages(fail=lambda kind, config: kind == "student"))
    info = describe_plan(spec)
    assert info["kinds"]["student"] == {
        "total": 12,
        "done": 0,
        "new": 12,
        "shared": 0,
        "other_sweeps": 0,
    }
    assert info["kinds"]["curate"]["done"] == 10


def test_missing_data_root_stops_before_any_stage(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    spec.data.root = str(tmp_path / "nowhere")
    fake = FakeStages()
    with pytest.raises(UserError, match="data.root: .*nowhere is missing or empty"):
        run_sweep(spec, stage_fn=fake)
    assert fake.calls == []
    (tmp_path / "data" / "us8k").rmdir()
    spec.data.root = str(tmp_path / "data")
    with pytest.raises(UserError, match="data.root: .*data has no us8k folder"):
        run_sweep(spec, stage_fn=fake)
    assert fake.calls == [] and not Path(spec.workdir).exists()  # nothing half-written


def test_layer_results_from_a_backend_that_loses_a_stage(tmp_path):
    """A backend that returns an error of its own (a dead worker) fails that stage only."""

    class Flaky(LocalBackend):
        def run_layer(self, stages, execute):
            out = super().run_layer([s for s in stages if s.kind != "embed"], execute)
            return out | {
                s.name: ConnectionError("worker died") for s in stages if s.kind == "embed"
            }

    spec = load_spec(write_spec(tmp_path))
    summary = run_sweep(spec, backend=Flaky(), stage_fn=FakeStages())
    assert summary["stages_failed"] == 2
    assert summary["failures"][0]["message"] == "ConnectionError: worker died"
    assert Path(summary["failures"][0]["log"]).is_file()


def test_cli_handlers(tmp_path, capsys):
    spec_path = write_spec(tmp_path)
    parser = argparse.ArgumentParser()
    commands.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["run", str(spec_path), "--dry-run", "--json"])
    assert args.handler(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["totals"]["total"] == TOTAL and info["totals"]["new"] == TOTAL

    args = parser.parse_args(
        ["run", str(spec_path), "--dry-run", "--workdir", str(tmp_path / "w2")]
    )
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "plan of mini" in out and f"workdir: {tmp_path / 'w2'}" in out
    assert ["all", str(TOTAL), "0", str(TOTAL), "10"] in [line.split() for line in out.splitlines()]

    run_sweep(load_spec(spec_path), stage_fn=FakeStages())
    args = parser.parse_args(["status", str(spec_path), "--json"])
    assert args.handler(args) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["totals"] | {"bytes": 0} == {
        "total": TOTAL, "done": TOTAL, "running": 0, "failed": 0, "pending": 0, "bytes": 0
    }  # fmt: skip
    args = parser.parse_args(["status", str(spec_path)])
    assert args.handler(args) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.split()[:6] == ["all", str(TOTAL), str(TOTAL), "0", "0", "0"]


def test_worker_processes_give_the_same_results(tmp_path):
    """backend.workers: stages of a layer run in spawned worker processes (FakeStages is
    pickled by reference into them), with the same results as in the driver."""
    serial = load_spec(write_spec(tmp_path, "serial"))
    run_sweep(serial, stage_fn=FakeStages())
    spec = load_spec(write_spec(tmp_path, "pool", backend={"kind": "local", "workers": 2}))
    calls = tmp_path / "calls.jsonl"
    events = []
    summary = run_sweep(spec, stage_fn=FakeStages(calls_file=calls), on_event=events.append)
    assert summary["stages_executed"] == TOTAL and summary["stages_failed"] == 0
    assert results(spec.workdir) == results(serial.workdir)
    assert len(calls.read_text().splitlines()) == TOTAL
    kinds = Counter(e["event"] for e in events)
    assert (kinds["start"], kinds["done"]) == (TOTAL, TOTAL)


def test_status_shows_the_stored_plan_and_says_how_the_spec_differs(tmp_path, monkeypatch):
    """A shell without the variable the run had: status still shows the sweep that ran (not
    a different, all-pending one) and names what resolves differently."""
    path = write_spec(tmp_path)
    root = load_spec(path).data.root
    text = path.read_text().replace(root, "${MY_DATA:-/nowhere}")
    path.write_text(text)
    monkeypatch.setenv("MY_DATA", root)
    spec = load_spec(path)
    run_sweep(spec, stage_fn=FakeStages())
    assert status(spec)["drift"] == []
    monkeypatch.delenv("MY_DATA")
    st = status(load_spec(path))
    assert st["totals"]["done"] == TOTAL and st["totals"]["pending"] == 0
    assert f"data.root: '{root}' -> '/nowhere'" in st["drift"]


def test_status_counts_the_stage_states_the_report_reads(tmp_path):
    """One model (clapsweep.sweep.state) for status and report: done, failed, running (a run
    holds the lock and the stage has a .partial folder), pending (also damaged, with why)."""
    spec = load_spec(write_spec(tmp_path))
    run_sweep(spec, stage_fn=FakeStages())
    store = Store(spec.workdir)
    plan = build_plan(spec)
    evals = [s.name for s in plan.stages.values() if s.kind == "eval"]
    done, failed, running, damaged = evals[:4]
    for name in (failed, running):
        shutil.rmtree(store.final(name))
    store.fail(failed, "CUDA out of memory", "tb")
    store.partial(running).mkdir()
    (store.final(damaged) / "meta.json").write_text("[]")
    assert stage_state(store, done).state == "done" and stage_state(store, done).meta
    assert stage_state(store, failed).failure["message"] == "CUDA out of memory"
    assert stage_state(store, running, locked=False).state == "pending"
    pending = stage_state(store, damaged)
    assert pending.state == "pending" and "is damaged" in pending.damaged
    with store.lock():
        assert stage_state(store, running).state == "running"
        st = status(spec)
    assert st["kinds"]["eval"] | {"bytes": 0} == {
        "total": len(evals), "done": len(evals) - 3, "running": 1, "failed": 1, "pending": 1,
        "bytes": 0,
    }  # fmt: skip
    assert [f["name"] for f in st["failures"]] == [failed]


def test_damaged_or_stale_stages_are_not_served(tmp_path):
    """A deleted output, a truncated meta.json or an upstream stage whose outputs changed
    make a stage not done: the next run recomputes exactly those (and what reads them)."""
    spec = load_spec(write_spec(tmp_path))
    run_sweep(spec, stage_fn=FakeStages())
    store = Store(spec.workdir)
    plan = build_plan(spec)
    teacher = next(s for s in plan.stages.values() if s.kind == "teacher")
    curate = next(s for s in plan.stages.values() if s.kind == "curate")
    (store.final(curate.name) / "out.json").unlink()
    assert "out.json is missing" in store.problem(curate.name)
    meta = store.final(teacher.name) / "meta.json"
    meta.write_text(meta.read_text()[:40])
    assert "damaged" in store.problem(teacher.name)
    calls = tmp_path / "calls.jsonl"
    summary = run_sweep(spec, stage_fn=FakeStages(calls_file=calls))
    assert summary["stages_failed"] == 0
    rerun = {json.loads(line)["name"] for line in calls.read_text().splitlines()}
    assert teacher.name in rerun and curate.name in rerun
    # The same outputs again: the teacher's users were not stale, so they stayed cached.
    assert all(store.is_done(s) for s in plan.stages)
    assert len(rerun) == 2


def test_users_of_a_changed_upstream_output_are_recomputed(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    run_sweep(spec, stage_fn=FakeStages())
    store = Store(spec.workdir)
    plan = build_plan(spec)
    teacher = next(s for s in plan.stages.values() if s.kind == "teacher")
    embed = next(s for s in plan.stages.values() if s.inputs.get("teacher") == teacher.name)
    shutil.rmtree(store.final(teacher.name))

    class Different(FakeStages):  # the recomputed teacher writes other bytes
        def __call__(self, kind, config, inputs, out, report=None):
            result = super().__call__(kind, config, inputs, out, report)
            if kind == "teacher":
                (out / "extra.bin").write_bytes(b"new")
            return result

    assert "stale" in store.problem(embed.name)  # its input is gone
    calls = tmp_path / "calls.jsonl"
    run_sweep(spec, stage_fn=Different(calls_file=calls))
    rerun = {json.loads(line)["name"] for line in calls.read_text().splitlines()}
    assert teacher.name in rerun and embed.name in rerun
    assert all(store.is_done(s) for s in plan.stages)


def test_a_damaged_input_names_the_stage_to_redo(tmp_path):
    """A same-size corruption the store cannot see fails the users; their message names the
    input stage and `--redo` for it, and redoing it makes the next run recompute and finish."""
    spec = load_spec(write_spec(tmp_path))
    run_sweep(spec, stage_fn=FakeStages())
    store = Store(spec.workdir)
    plan = build_plan(spec)
    teacher = next(s for s in plan.stages.values() if s.kind == "teacher")
    users = [s for s in plan.stages.values() if teacher.name in s.inputs.values()]

    class Reads(FakeStages):
        def __call__(self, kind, config, inputs, out, report=None):
            for path in inputs.values():
                if (path / "out.json").read_text().startswith("{xx"):
                    raise UserError(f"{path / 'out.json'}: not readable")
            return super().__call__(kind, config, inputs, out, report)

    out = store.final(teacher.name) / "out.json"
    text = out.read_text()
    out.write_text("{xx" + text[3:])  # same size: meta.json's sizes still match
    for s in users:
        shutil.rmtree(store.final(s.name))
    summary = run_sweep(spec, stage_fn=Reads())
    messages = [f["message"] for f in summary["failures"]]
    redo = f"input stage {teacher.name} is damaged: rerun with --redo {teacher.name}"
    assert messages and all(redo in m for m in messages)
    assert run_sweep(spec, stage_fn=Reads(), redo=[teacher.name])["stages_failed"] == 0
