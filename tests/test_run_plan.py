"""The engine's runner without a sweep spec: a hand-made Plan run in a real Store by the real
LocalBackend and StageExecutor (the stage function is a stand-in that writes a file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from clapsweep.store import Store
from clapsweep.sweep.executor import StageExecutor
from clapsweep.sweep.local import LocalBackend
from clapsweep.sweep.plan import Plan, PlannedStage
from clapsweep.sweep.runner import run_plan

TESTS = Path(__file__).resolve().parent


def stage_fn(kind: str, config: dict[str, Any], inputs: dict[str, Path], out: Path, report=None):
    """Writes its key; fails when its config says so (on every run)."""
    if config.get("fail"):
        raise RuntimeError(f"{kind} told to fail")
    (out / "key.txt").write_text(config["runtime"]["key"])
    return {"inputs": sorted(inputs)}


def small_plan() -> Plan:
    """a -> b (fails) -> c, and d on its own: c is skipped, a and d run."""
    a = PlannedStage("teacher", "00000000000000a1", {}, {})
    b = PlannedStage("embed", "00000000000000b2", {"fail": True}, {"teacher": a.name}, layer=1)
    c = PlannedStage("curate", "00000000000000c3", {}, {"embed": b.name}, layer=2)
    d = PlannedStage("teacher", "00000000000000d4", {}, {})
    return Plan("hand", {s.name: s for s in (a, d, b, c)})


def run_once(workdir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    executor = StageExecutor(str(workdir), "hand", stage_fn, on_event=events.append)
    summary, stop = run_plan(small_plan(), Store(workdir), LocalBackend(), executor, events.append)
    assert stop is None
    return summary, events


def test_run_plan_runs_skips_and_caches(tmp_path):
    summary, events = run_once(tmp_path)
    assert events[0] == {"event": "plan", "stages_total": 4, "stages_cached": 0}
    counts = {k: v for k, v in summary.items() if k.startswith("stages_")}
    assert counts == {
        "stages_total": 4, "stages_executed": 2, "stages_cached": 0, "stages_failed": 1,
        "stages_skipped": 1, "stages_elsewhere": 0, "stages_not_run": 0,
    }  # fmt: skip
    assert [f["name"] for f in summary["failures"]] == ["embed-00000000000000b2"]
    assert "told to fail" in summary["failures"][0]["message"]
    assert summary["skipped"][0]["because"] == "embed-00000000000000b2"
    store = Store(tmp_path)
    assert (store.final("teacher-00000000000000a1") / "key.txt").read_text() == "00000000000000a1"
    again, events = run_once(tmp_path)  # finished stages are cached, the failed one retried
    assert events[0]["stages_cached"] == 2
    assert (again["stages_cached"], again["stages_failed"], again["stages_skipped"]) == (2, 1, 1)


def test_runner_loads_no_recipe(tmp_path):
    """Importing and running the engine's runner loads no clapsweep.recipe module (lazy
    imports included: a fresh interpreter, so other tests' imports do not count)."""
    code = (
        "import sys, json, pathlib, test_run_plan; test_run_plan.run_once(pathlib.Path(sys.argv[1]));"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('clapsweep.recipe'))))"
    )
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == []
