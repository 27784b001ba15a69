"""The whole method end to end on the tiny synthworld through the real pipeline stages:
teacher -> embed -> DU/DS/ADS curation -> students with soft labels and replay -> eval,
then Tables 1-3 from the results, a rerun that does nothing, and the CLI's exit codes."""

import json
import shutil
from pathlib import Path

import pytest

from clapsweep.cli import main
from clapsweep.curate import ImprovementSet
from clapsweep.recipe.run import run_sweep
from clapsweep.recipe.spec import load_spec

SMOKE = Path(__file__).parents[1] / "sweeps" / "smoke.yaml"
TASKS = ("esc50", "us8k", "tut17")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    spec_path = root / "smoke.yaml"
    text = SMOKE.read_text().replace("${CLAPSWEEP_DATA:-data/synthworld-tiny}", str(root / "data"))
    spec_path.write_text(text + f"workdir: {root / 'work'}\n")
    spec = load_spec(spec_path)
    spec.tracking.wandb.enabled = False
    summary = run_sweep(spec)
    return spec_path, spec, summary


@pytest.mark.slow
def test_every_stage_runs_once_and_succeeds(smoke):
    _, spec, summary = smoke
    assert summary["stages_failed"] == 0, summary["failures"]
    assert summary["stages_executed"] == summary["stages_total"] > 0
    again = run_sweep(spec)
    assert again["stages_executed"] == 0
    assert again["stages_cached"] == summary["stages_total"]


@pytest.mark.slow
def test_improvement_sets_hold_no_task_audio(smoke):
    _, spec, _ = smoke
    sets = list(Path(spec.workdir, "stages").glob("curate-*/improvement"))
    assert sets
    for folder in sets:
        imp = ImprovementSet.load(folder)
        assert not any(c.split("/")[0] in TASKS for c in imp.clips)


@pytest.mark.slow
def test_students_evaluate_on_their_tasks(smoke):
    _, spec, _ = smoke
    plan = json.loads(Path(spec.workdir, "plan.json").read_text())
    evals = [s for s in plan["stages"] if s["kind"] == "eval"]
    for stage in evals:
        meta = json.loads(
            Path(spec.workdir, "stages", f"eval-{stage['key']}", "meta.json").read_text()
        )
        for task in stage["config"]["data"]["tasks"]:
            acc = meta["result"][task]["accuracy"]
            assert 0.0 <= acc <= 1.0


@pytest.mark.slow
def test_report_tables_and_cli_exit_codes(smoke, tmp_path, capsys):
    spec_path, spec, _ = smoke
    for table in ("1", "2", "3"):
        assert (
            main(["report", "--table", table, "--sweep", str(spec_path), "--format", "json"]) == 0
        )
        out = json.loads(capsys.readouterr().out)
        assert out["table"] == int(table) and out["rows"]
    assert main(["report", "--table", "4", "--sweep", str(spec_path)]) == 2
    assert "table" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    shutil.copy(spec_path, bad)
    bad.write_text(bad.read_text().replace("sigma: 0.1", "sigma: 1.5", 1))
    assert main(["run", str(bad)]) == 2
    assert "sigma" in capsys.readouterr().err


@pytest.mark.slow
def test_dry_run_shows_pair_counts_and_equal_student_steps(smoke, capsys):
    spec_path, spec, _ = smoke
    assert main(["run", str(spec_path), "--dry-run", "--json"]) == 0
    schedule = json.loads(capsys.readouterr().out)["schedule"]
    counts = schedule["teacher_pairs"]
    assert set(counts) == {"clotho", "audiocaps", "fsd50k", "macs"} and all(counts.values())
    steps = {s["fraction"]: set() for s in schedule["students"]}
    for s in schedule["students"]:
        steps[s["fraction"]].add(s["steps"])
    assert all(len(v) == 1 and None not in v for v in steps.values())  # the same per fraction
    assert steps[1.0] != steps[0.5]  # a smaller teacher set, a shorter epoch


@pytest.mark.slow
def test_missing_checkpoint_stops_dry_run_and_run(smoke, tmp_path, capsys):
    spec_path, _, _ = smoke
    bad = tmp_path / "ckpt.yaml"
    text = spec_path.read_text().replace(
        "  audio: small_cnn\n", "  audio: small_cnn\n  audio_checkpoint: /no/cnn14.pth\n"
    )
    bad.write_text(
        text.replace(f"workdir: {spec_path.parent / 'work'}", f"workdir: {tmp_path / 'w'}")
    )
    for args in (["--dry-run"], []):
        assert main(["run", str(bad), *args]) == 2
        assert "model.audio_checkpoint: /no/cnn14.pth not found" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_eval_accepts_a_stage_folder_and_leaves_it_alone(smoke, capsys):
    _, spec, _ = smoke
    stage = next(Path(spec.workdir, "stages").glob("student-*"))
    before = {p.name: p.stat().st_size for p in stage.iterdir()}
    assert main(["eval", "--checkpoint", str(stage), "--tasks", "esc50"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["esc50"]["accuracy"] <= 1.0
    assert {p.name: p.stat().st_size for p in stage.iterdir()} == before
