"""Search (clapsweep.recipe.search): the `search:` section, and a real Ray Tune search with
ASHA on the tiny synthworld: no test fold read while searching, trials that share a curation
compute it once, a kill -9 mid-search and a restart repeat no finished trial, and the final
re-run's report."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clapsweep.config import load_yaml
from clapsweep.data.cache import AudioCache
from clapsweep.data.datasets import load_dataset
from clapsweep.errors import ConfigError
from clapsweep.recipe.spec import parse_spec

SMOKE = Path(__file__).parents[1] / "sweeps" / "smoke.yaml"

SEARCH = """
search:
  row: DS+SL
  tasks: [esc50]
  space:
    sigma_ds: {grid: [0.2, 0.3]}
    beta: {grid: [0.0, 0.3, 0.6]}
  searcher: grid
  scheduler: asha
  max_concurrent: 2
"""


def _spec_text(root: Path) -> str:
    text = SMOKE.read_text().replace("${CLAPSWEEP_DATA:-data/synthworld-tiny}", str(root / "data"))
    text = text.replace("name: smoke", "name: searchtest")
    head, _, _ = text.partition("grid:")
    return (
        head
        + "grid:\n  seed: [0, 1]\n  teacher_fraction: [1.0]\n  rows:\n"
        + '    - {name: "DS+SL", strategy: ds, sigma_ds: 0.3, beta: 0.3, replay: 0.5, tasks: [esc50]}\n'
        + "student: {epochs: 3}\n"
        + "backend: {kind: local}\n"
        + "tracking: {wandb: {enabled: false}}\n"
        + f"workdir: {root / 'work'}\nstore: {root / 'store'}\n"
        + SEARCH
    )


def _parse(extra: dict):
    data = load_yaml(SMOKE)
    data["grid"]["rows"] = [{"name": "DS", "strategy": "ds", "sigma_ds": 0.3}]
    data["search"] = {"row": "DS", "space": {"sigma_ds": {"uniform": [0.2, 0.4]}}} | extra
    return parse_spec(data)


def test_a_search_section_is_checked_like_the_rest():
    spec = _parse({})
    assert spec.search.row == "DS" and spec.search.scheduler == "asha"
    bad = [
        ({"row": "nope"}, "search.row: no grid row named 'nope'"),
        ({"space": {"sigma": {"uniform": [0.1, 0.2]}}}, "takes no sigma"),
        ({"space": {"gamma": {"choice": [1]}}}, "search.space.gamma: not a searchable axis"),
        ({"space": {"beta": {"uniform": [0.5, 0.2]}}}, "lo < hi"),
        ({"space": {"beta": {"normal": [0, 1]}}}, "expected one of {uniform"),
        ({"space": {"beta": {"choice": [0.1, 2.0]}}}, "values lie in [0, 1]"),
        ({"space": {"epochs": {"uniform": [1, 3]}}}, "epochs are integers"),
        ({"space": {"beta": {"grid": [0.1]}}}, "need searcher: grid"),
        ({"searcher": "grid"}, "grid needs every axis"),
        ({"tasks": ["esc"]}, "search.tasks[0]: 'esc' is not in data.tasks"),
        ({"validation": {"esc50": []}}, "search.validation.esc50: expected at least one fold"),
        ({"scheduler": "hyperband"}, "search.scheduler: expected one of"),
    ]
    for extra, message in bad:
        with pytest.raises(ConfigError, match=None) as e:
            _parse(extra)
        assert message in str(e.value), (extra, str(e.value))


def test_a_row_restricted_to_tasks_plans_only_those():
    from collections import defaultdict

    from clapsweep.recipe.plan import build_plan

    data = load_yaml(SMOKE)
    data["grid"]["rows"] = [{"name": "DS", "strategy": "ds", "sigma_ds": 0.3, "tasks": ["us8k"]}]
    plan = build_plan(parse_spec(data), prints=defaultdict(lambda: "fp"))
    students = [s for s in plan.stages.values() if s.kind == "student"]
    assert {tuple(u["tasks"]) for s in students for u in s.users} == {("us8k",)}
    data["grid"]["rows"][0]["tasks"] = ["esc"]
    with pytest.raises(ConfigError, match=r"grid.rows\[0\].tasks\[0\]: unknown task 'esc'"):
        parse_spec(data)


def _run(spec: Path, *args: str, **kw) -> subprocess.Popen:
    env = os.environ | {"WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "clapsweep", "run", str(spec), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kw,
    )


def _starts(store: Path) -> dict[str, int]:
    """How often each stage began (its log's 'start in' lines): a stage run twice, or
    resumed, shows two."""
    out = {}
    for log in (store / "logs").glob("*.log"):
        out[log.stem] = sum("start in" in line for line in log.read_text().splitlines())
    return out


@pytest.mark.slow
def test_a_search_killed_and_restarted_then_rerun_on_the_test_folds(tmp_path):
    spec = tmp_path / "search.yaml"
    spec.write_text(_spec_text(tmp_path))
    trials = tmp_path / "work" / "search" / "esc50" / "trials"

    # 1. Start the search, kill -9 its whole process group once two trials finished.
    proc = _run(spec, "--search-only")
    deadline = time.time() + 600
    while len(list(trials.glob("*.json"))) < 2:
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "no two trials finished in 10 minutes"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in trials.glob("*.json")}
    starts = _starts(tmp_path / "store")
    done_stages = set()
    for p in trials.glob("*.json"):
        done_stages |= set(json.loads(p.read_text())["stages"])

    # 2. Restart: it completes, and no finished trial or stage of one ran again.
    again = _run(spec, "--search-only")
    out, _ = again.communicate(timeout=900)
    assert again.returncode == 0, out
    for name, mtime in finished.items():
        assert (trials / name).stat().st_mtime_ns == mtime, f"finished trial {name} ran again"
    after = _starts(tmp_path / "store")
    for name in done_stages:
        assert after[name] == starts[name], f"{name} began again after the restart"

    result = json.loads((trials.parent / "search.json").read_text())
    assert len(result["trials"]) == 6
    statuses = {t["status"] for t in result["trials"]}
    assert statuses <= {"finished", "stopped"} and "finished" in statuses, result["trials"]

    # 3. Trials sharing a curation (same sigma_ds) computed it once: 2 curations, each begun
    # once, though six trials read them.
    curates = {n for n in after if n.startswith("curate-")}
    assert len(curates) == 2 and all(after[n] == 1 for n in curates), after
    teachers = [n for n in after if n.startswith("teacher-")]
    assert len(teachers) == 1 and after[teachers[0]] == 1

    # 4. No test fold was read: the audio cache holds esc50's validation fold 1 and no clip
    # of any other fold or task.
    data = tmp_path / "data"
    cache = AudioCache(tmp_path / "store" / "cache", 16000)
    esc = load_dataset("esc50", str(data)).records
    read = {r.fold for r in esc if cache.entry_path(r.path).is_file()}
    assert read == {"1"}, read
    for task in ("us8k", "tut17"):
        records = load_dataset(task, str(data)).records
        assert not any(cache.entry_path(r.path).is_file() for r in records), task

    # 5. The re-run with every seed on the test folds, and its report.
    final = _run(spec)
    out, _ = final.communicate(timeout=900)
    assert final.returncode == 0, out
    report = subprocess.run(
        [sys.executable, "-m", "clapsweep", "report", "--sweep", str(spec), "--search"]
        + ["--plot", str(tmp_path / "search.png")],
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr
    text = report.stdout
    assert "chosen: " in text and "test (folds other than 1): " in text, text
    assert "n=2" in text and "6 trials" in text, text
    assert (tmp_path / "search.png").stat().st_size > 0
    status = subprocess.run(
        [sys.executable, "-m", "clapsweep", "status", str(spec)], capture_output=True, text=True
    )
    assert status.returncode == 0 and "resolves differently" not in status.stderr, status.stderr
    evals = [
        json.loads(m.read_text()) for m in (tmp_path / "store" / "stages").glob("eval-*/meta.json")
    ]
    test_evals = [m for m in evals if "exclude_folds" in m["config"]]
    assert test_evals and all(
        set(m["result"]["folds_evaluated"]["esc50"]) == {"2", "3", "4", "5"} for m in test_evals
    )


def test_the_chosen_values_replace_the_row_for_their_task_only():
    from clapsweep.recipe.search import final_spec, trial_row

    data = load_yaml(SMOKE)
    data["grid"]["rows"] = [
        {"name": "DU", "strategy": "du", "sigma": 0.1},
        {"name": "DS", "strategy": "ds", "sigma_ds": 0.3, "beta": 0.3},
    ]
    data["search"] = {
        "row": "DS",
        "tasks": ["esc50"],
        "space": {"sigma_ds": {"uniform": [0.2, 0.4]}, "epochs": {"choice": [1, 2]}},
    }
    spec = parse_spec(data)
    chosen = {"esc50": {"best": {"values": {"sigma_ds": 0.25, "epochs": 2}}}}
    rows = final_spec(spec, chosen).grid.rows
    assert [(r.name, r.tasks) for r in rows] == [
        ("DU", None),
        ("DS", ["us8k", "tut17"]),  # not searched: as written
        ("DS", ["esc50"]),
    ]
    assert rows[1].sigma_ds == 0.3 and rows[2].sigma_ds == 0.25 and rows[2].beta == 0.3
    assert rows[2].train == {"epochs": 2} and isinstance(rows[2].train["epochs"], int)
    assert trial_row(rows[1], "esc50", {"beta": 0.6}).beta == 0.6


def test_searchers_and_scheduler_follow_the_section():
    from clapsweep.sweep.ray_backend import ray_environment

    ray_environment()  # before Ray's first import here, as RayBackend.connect does
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from clapsweep.recipe.search import max_epochs, param_space, scheduler, search_alg

    spec = _parse({"searcher": "optuna", "max_concurrent": 3})
    alg = search_alg(spec.search)
    assert isinstance(alg, ConcurrencyLimiter) and alg.max_concurrent == 3
    assert isinstance(search_alg(_parse({}).search), BasicVariantGenerator)
    space = param_space(spec.search)
    assert 0.2 <= space["sigma_ds"].sample() <= 0.4
    epochs = max_epochs(spec)
    assert epochs == spec.student_train().epochs
    assert isinstance(scheduler(spec.search, 3), ASHAScheduler)
    assert scheduler(spec.search, 1) is None  # nothing to stop before the last epoch
    assert scheduler(_parse({"scheduler": "none"}).search, 3) is None


def test_search_evals_read_only_validation_folds_and_test_evals_leave_them_out():
    from collections import defaultdict

    from clapsweep.recipe.plan import build_plan

    spec = _parse({"validation": {"tut17": ["evaluation"]}})
    prints = defaultdict(lambda: "fp")
    for split, key in (("validation", "folds"), ("test", "exclude_folds")):
        evals = [s for s in build_plan(spec, prints, split).stages.values() if s.kind == "eval"]
        assert evals
        for stage in evals:
            folds = stage.config[key]
            assert folds == {t: VALID[t] for t in stage.config["data"]["tasks"]}, folds
            # A search compares zero-shot only: no held-out captions for retrieval.
            assert (stage.config["data"]["teacher"] == []) == (split == "validation")
    data = load_yaml(SMOKE)  # without search: no fold keys, so keys stay as they were
    plain = build_plan(parse_spec(data), prints)
    assert not any(
        "folds" in s.config or "exclude_folds" in s.config for s in plain.stages.values()
    )


VALID = {"esc50": ["1"], "us8k": ["1"], "tut17": ["evaluation"]}


def test_report_search_mistakes_are_one_message_each(tmp_path, capsys):
    from clapsweep.cli import main

    work = tmp_path / "w"
    work.mkdir()
    (work / "plan.json").write_text('{"sweep": "x", "schema_version": 2, "stages": []}')
    (work / "spec.yaml").write_text("name: x\n")
    cases = [
        ([], "sweep x: has no search section; --search reports searches"),
        (["--format", "md"], "--search --format md: expected text or json"),
    ]
    for extra, message in cases:
        assert main(["report", "--sweep", str(work), "--search", *extra]) == 2
        assert message in capsys.readouterr().err
    (work / "spec.yaml").write_text("name: x\nsearch: {row: DS}\n")
    assert main(["report", "--sweep", str(work), "--search"]) == 2
    assert f"no finished search in {work / 'search'}" in capsys.readouterr().err
    (work / "search" / "esc50").mkdir(parents=True)
    (work / "search" / "esc50" / "search.json").write_text('{"task": "esc50"}')
    assert main(["report", "--sweep", str(work), "--search"]) == 2
    assert "search.json: damaged; delete it and rerun" in capsys.readouterr().err
