"""The recipe registries: a strategy added by one registry entry, here in the test itself,
runs through plan, curate, student, eval and report with no other module touched."""

import json
from pathlib import Path

import pytest

from clapsweep import curate
from clapsweep.cli import main
from clapsweep.recipe import strategies
from clapsweep.recipe.plan import build_plan
from clapsweep.recipe.run import run_sweep
from clapsweep.recipe.spec import load_spec

SMOKE = Path(__file__).parents[1] / "sweeps" / "smoke.yaml"


def _du_top1(emb, config, opts):
    """DU with one caption per wild clip: its most similar one above sigma."""
    wild_ids, wild_emb = emb.wild()
    return curate.build_du(
        emb.caption_emb, wild_emb, config["sigma"], [c["id"] for c in emb.captions], wild_ids,
        top_k=1, **opts,
    )  # fmt: skip


@pytest.fixture
def du_top1(monkeypatch):
    entry = strategies.Strategy("du-top1", "DU-top1", ("sigma",), per_task=False, build=_du_top1)
    monkeypatch.setitem(strategies.STRATEGIES, entry.name, entry)
    return entry


def _spec(tmp_path: Path, rows: str) -> Path:
    data = tmp_path / "data"
    text = SMOKE.read_text().replace("${CLAPSWEEP_DATA:-data/synthworld-tiny}", str(data))
    text = text.split("grid:")[0] + "grid:\n  seed: [0]\n  teacher_fraction: [1.0]\n  rows:\n"
    text = text.replace("tasks: [esc50, us8k, tut17]", "tasks: [esc50]")
    path = tmp_path / "sweep.yaml"
    path.write_text(text + rows + f"workdir: {tmp_path / 'work'}\ntracking: {{}}\n")
    return path


def test_an_unregistered_strategy_is_refused_by_name(tmp_path, capsys):
    path = _spec(tmp_path, '    - {name: "X", strategy: du-top1, sigma: 0.1}\n')
    assert main(["run", str(path), "--dry-run"]) == 2
    assert "grid.rows[0].strategy: expected one of 'du', 'ds', 'ads'" in capsys.readouterr().err


def test_a_registered_strategy_plans_like_the_paper_ones(tmp_path, du_top1):
    rows = (
        '    - {name: "DU", strategy: du, sigma: 0.1}\n'
        '    - {name: "DU-top1", strategy: du-top1, sigma: 0.1}\n'
    )
    names = ["clotho", "audiocaps", "fsd50k", "macs", "audioset", "esc50"]
    plan = build_plan(load_spec(_spec(tmp_path, rows)), prints=dict.fromkeys(names, "x"))
    curations = [s for s in plan.stages.values() if s.kind == "curate"]
    assert sorted(s.config["strategy"] for s in curations) == ["du", "du-top1"]
    ours = next(s for s in curations if s.config["strategy"] == "du-top1")
    assert "task" not in ours.config and ours.config["sigma"] == 0.1  # task-independent


@pytest.mark.slow
def test_a_strategy_added_by_one_entry_runs_to_the_report(tmp_path, du_top1, capsys):
    rows = '    - {name: "DU-top1", strategy: du-top1, sigma: 0.1, replay: 0.5}\n'
    path = _spec(tmp_path, rows)
    spec = load_spec(path)
    spec.tracking.wandb.enabled = False
    summary = run_sweep(spec)
    assert summary["stages_failed"] == 0, summary["failures"]
    (folder,) = Path(spec.workdir, "stages").glob("curate-*")
    imp = curate.ImprovementSet.load(folder / "improvement")
    clips = [imp.clips[i] for i in imp.clip_idx]
    assert len(imp) > 0 and len(clips) == len(set(clips))  # one caption per clip
    assert json.loads((folder / "meta.json").read_text())["result"]["strategy"] == "du-top1"
    capsys.readouterr()
    code = main(["report", "--table", "2", "--sweep", str(path), "--format", "json"])
    assert code == 0, capsys.readouterr().err
    table = json.loads(capsys.readouterr().out)
    (row,) = [r for r in table["rows"] if r["name"].endswith("DU-top1")]
    assert row["cells"]["esc50"]["n"] == 1
