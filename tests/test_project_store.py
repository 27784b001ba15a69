"""One project store shared by sweeps: a sigma-sweep beside another reuses its teachers,
embeddings and common stages, and gc removes only what no sweep plans."""

import json
import shutil

import yaml
from test_runner import FakeStages, write_spec

from clapsweep.recipe.plan import build_plan
from clapsweep.recipe.run import describe_plan, run_sweep
from clapsweep.recipe.spec import load_spec
from clapsweep.store import Store
from clapsweep.sweep.gc import collect

ONE = {"seed": [0, 1], "teacher_fraction": [1.0], "rows": [
    {"name": "DU", "strategy": "du", "sigma": [0.3, 0.4]}]}  # fmt: skip


def two_sweeps(tmp_path):
    store = str(tmp_path / "store")
    first = write_spec(tmp_path, "first", grid=ONE, store=store)
    wider = ONE | {"rows": [ONE["rows"][0] | {"sigma": [0.3, 0.4, 0.5]}]}
    second = write_spec(tmp_path, "second", grid=wider, store=store)
    return load_spec(first), load_spec(second)


def test_a_second_sweep_runs_only_its_new_stages_and_gc_keeps_what_is_planned(tmp_path):
    first, second = two_sweeps(tmp_path)
    a = run_sweep(first, stage_fn=FakeStages())
    assert a["stages_executed"] == a["stages_total"] == 18  # per seed: T, eval, E, 2x(C, S, ev)
    planned = describe_plan(second)["totals"]
    assert (planned["done"], planned["new"], planned["other_sweeps"]) == (18, 6, 18)
    b = run_sweep(second, stage_fn=FakeStages())
    # Only sigma=0.5's curation, student and eval (per seed) are new.
    assert (b["stages_executed"], b["stages_cached"]) == (6, 18)
    new = set(build_plan(second).stages) - set(build_plan(first).stages)
    assert len(new) == 6
    assert not (tmp_path / "first" / "stages").exists()  # stages live in the store
    root = tmp_path / "store"
    assert (root / "stages").is_dir() and len(list((root / "stages").iterdir())) == 24

    dry = collect(root)
    assert dry["unreferenced"] == [] and dry["kept"] == 24 and not dry["deleted"]
    shutil.rmtree(tmp_path / "second")  # that sweep is gone: its own stages are garbage
    dry = collect(root)
    assert set(dry["unreferenced"]) == new and dry["bytes"] > 0
    assert len(list((root / "stages").iterdir())) == 24  # a dry run removes nothing
    done = collect(root, delete=True)
    assert set(done["unreferenced"]) == new and done["deleted"]
    assert {p.name for p in (root / "stages").iterdir()} == set(build_plan(first).stages)
    again = run_sweep(first, stage_fn=FakeStages())
    assert again["stages_executed"] == 0 and again["stages_cached"] == 18


def test_report_and_status_read_the_project_store(tmp_path, capsys):
    from clapsweep.cli import main

    first, _ = two_sweeps(tmp_path)
    run_sweep(first, stage_fn=FakeStages())
    spec_file = tmp_path / "first.yaml"
    assert main(["status", str(spec_file), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["totals"]["done"] == 18, status
    record = yaml.safe_load((tmp_path / "first" / "spec.yaml").read_text())
    assert record["store"] == str(tmp_path / "store")
    assert Store(first.workdir, first.store).is_done(next(iter(build_plan(first).stages)))


def test_gc_command_lists_then_deletes(tmp_path, capsys):
    from clapsweep.cli import main

    first, second = two_sweeps(tmp_path)
    run_sweep(first, stage_fn=FakeStages())
    run_sweep(second, stage_fn=FakeStages())
    shutil.rmtree(tmp_path / "second")
    store = str(tmp_path / "store")
    assert main(["gc", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "6 stage folder(s)" in out and "rerun with --delete" in out
    assert len(list((tmp_path / "store" / "stages").iterdir())) == 24
    assert main(["gc", "--store", store, "--delete"]) == 0
    assert len(list((tmp_path / "store" / "stages").iterdir())) == 18


def test_gc_refuses_a_folder_that_is_no_store_and_a_store_in_use(tmp_path, capsys):
    import pytest

    from clapsweep.cli import main
    from clapsweep.errors import UserError

    assert main(["gc", "--store", str(tmp_path / "nothing")]) == 2
    assert "holds no stages/ folder; is it a clapsweep store?" in capsys.readouterr().err
    first, _ = two_sweeps(tmp_path)
    run_sweep(first, stage_fn=FakeStages())
    with Store(first.workdir, first.store).lock():
        with pytest.raises(UserError, match="sweep mini is running .*; run gc when it is done"):
            collect(first.store)
