"""`clapsweep report`: the paper's tables from hand-made sweep results in the store layout.

Each test writes a real sweep record (spec.yaml, plan.json from the real planner) and finished
or failed stages through the real Store, then checks the aggregated numbers against values
computed by hand, the missing-cell reasons, every output format and the figure.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from clapsweep import report
from clapsweep.cli import main
from clapsweep.errors import UserError
from clapsweep.recipe import strategies, tables
from clapsweep.recipe.plan import build_plan
from clapsweep.recipe.spec import parse_spec
from clapsweep.store import Store, make_meta, write_json

ROWS = [
    {"name": "DU", "strategy": "du", "sigma": 0.7},
    {"name": "DU+SL", "strategy": "du", "sigma": 0.7, "beta": 0.3},
    {"name": "ADS+SL", "strategy": "ads", "sigma_ds": 0.6, "sigma": 0.7, "beta": 0.3},
    {"name": "ADS+SL s65", "strategy": "ads", "sigma_ds": 0.6, "sigma": 0.65, "beta": 0.3},
]


def make_sweep(
    root: Path, name: str, tables=(2,), seeds=(0, 1, 2), fractions=(1.0,), synth=None, **extra
):
    """Write spec.yaml and plan.json as `clapsweep run` does; return (spec, plan, store)."""
    data = {
        "name": name,
        "tables": list(tables),
        "data": {"root": str(root / "data"), "synth": synth},
        "grid": {"rows": ROWS, "seed": list(seeds), "teacher_fraction": list(fractions)},
        "tracking": {"wandb": {"enabled": False}},
        "workdir": str(root / "runs" / name),
        **extra,
    }
    spec = parse_spec(data, cwd=root)
    plan = build_plan(spec)
    store = Store(spec.workdir)
    store.workdir.mkdir(parents=True)
    (store.workdir / "spec.yaml").write_text(yaml.safe_dump(dataclasses.asdict(spec)))
    write_json(store.workdir / "plan.json", plan.to_json())
    return spec, plan, store


def find(plan, kind, row, seed=0, fraction=1.0, task=None, strategy=None):
    for stage in plan.stages.values():
        if stage.kind != kind or (strategy and stage.config.get("strategy") != strategy):
            continue
        for u in stage.users:
            if (u["row"], u["seed"], u["fraction"]) == (row, seed, fraction) and (
                task is None or task in u["tasks"]
            ):
                return stage
    raise AssertionError(f"no {kind} stage for {row} seed {seed} f={fraction} {task}")


def finish(store: Store, stage, result: dict) -> None:
    store.begin(stage.name)
    now = time.time()
    store.commit(
        stage.name, make_meta(stage.kind, stage.key, stage.config, stage.inputs, result, now, now)
    )


def acc(**per_task) -> dict:
    """An eval stage's result: {task: {accuracy, n, per_fold, ...}}."""
    out = {}
    for task, (a, folds) in per_task.items():
        out[task] = {"accuracy": a, "n": 100, "per_fold": folds, "classes": 5, "skipped_clips": 0}
    return out


def finish_eval(store, plan, row, seed, values: dict, fraction=1.0, folds=None):
    """Finish the eval stage(s) of `row` at `seed` with accuracies {task: fraction correct}.

    One eval stage may cover several tasks; the store never replaces a finished stage, so
    each stage is committed once with all of its tasks (added to what it already holds)."""
    by_stage: dict[str, tuple] = {}
    for task, a in values.items():
        stage = find(plan, "eval", row, seed, fraction, task)
        result = by_stage.get(stage.name, (stage, {}))[1]
        result.update(acc(**{task: (a, (folds or {}).get(task, {}))}))
        by_stage[stage.name] = (stage, result)
    for name, (stage, result) in by_stage.items():
        meta = store.meta(name)
        if meta is not None:
            result = {**meta["result"], **result}
            shutil.rmtree(store.final(name))
        finish(store, stage, result)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def table2(tmp_path):
    """Three seeds of the teacher (hand values), one failed ADS+SL eval, the rest not run."""
    spec, plan, store = make_sweep(tmp_path, "t2", tables=(2, 3))
    for seed, (e, u, t) in enumerate([(0.80, 0.70, 0.30), (0.82, 0.72, 0.31), (0.87, 0.75, 0.35)]):
        finish_eval(store, plan, "teacher", seed, {"esc50": e, "us8k": u, "tut17": t})
    finish_eval(store, plan, "DU+SL", 0, {"esc50": 0.845})
    finish_eval(store, plan, "DU+SL", 1, {"esc50": 0.855})
    bad = find(plan, "eval", "ADS+SL", 0, task="esc50")
    store.fail(bad.name, "CUDA out of memory\nTried to allocate 2 GiB", "Traceback ...")
    return spec, plan, store


# ----------------------------------------------------------------------------- aggregation


def test_cells_are_mean_sample_std_and_n_over_seeds(table2):
    spec, _, _ = table2
    t = report.build_table(report.load_sweep(spec.workdir), 2)
    rows = {r.key: r for r in t.rows}
    esc = rows["teacher"].cells["esc50"]
    # 80, 82, 87: mean 83; deviations -3, -1, 4 -> sqrt((9 + 1 + 16) / 2) = sqrt(13)
    assert esc.n == 3 and esc.mean == pytest.approx(83.0)
    assert esc.std == pytest.approx(math.sqrt(13))
    assert esc.paper == 81.9 and esc.diff() == pytest.approx(1.1)
    tut = rows["teacher"].cells["tut17"]  # 30, 31, 35: mean 32, sqrt((4 + 1 + 9) / 2)
    assert tut.mean == pytest.approx(32.0) and tut.std == pytest.approx(math.sqrt(7))
    du = rows["DU+SL"].cells["esc50"]  # 84.5, 85.5 over seeds 0 and 1; seed 2 not run
    assert du.values == pytest.approx([84.5, 85.5]) and du.seeds == [0, 1]
    assert du.std == pytest.approx(math.sqrt(0.5))
    assert du.incomplete.startswith("1 of 3 seeds without a value (seed 2: not run")
    assert report.cell_text(du, "percent") == "85.0 ± 0.7 (n=2)†"


def test_one_seed_has_no_std(tmp_path):
    spec, plan, store = make_sweep(tmp_path, "one", seeds=(0,), synth={"scale": "tiny"})
    finish_eval(store, plan, "teacher", 0, {"esc50": 0.5, "us8k": 0.25, "tut17": 0.125})
    t = report.build_table(report.load_sweep(spec.workdir), 2)
    assert t.synth["scale"] == "tiny" and any("synthworld (scale tiny)" in n for n in t.notes)
    cell = t.rows[1].cells["us8k"]
    assert (cell.n, cell.mean, cell.std) == (1, 25.0, None)
    assert report.cell_text(cell, "percent") == "25.0 (n=1)"


def test_missing_cells_say_why_and_are_never_filled(table2):
    spec, plan, store = table2
    t = report.build_table(report.load_sweep(spec.workdir), 2)
    rows = {r.key: r for r in t.rows}
    ads = rows["ADS+SL"].cells
    assert ads["esc50"].missing == "failed: CUDA out of memory"
    assert ads["esc50"].mean is None and ads["esc50"].paper == 85.1
    assert ads["us8k"].missing == "not run" and ads["us8k"].n == 0
    # The failed stage is named with its log in the notes.
    assert any("CUDA out of memory" in n and "log:" in n for n in t.notes)
    # A failed student makes its eval fail too, saying where.
    student = find(plan, "student", "DU", 0)
    store.fail(student.name, "loss is NaN", "tb")
    t = report.build_table(report.load_sweep(spec.workdir), 2)
    du = next(r for r in t.rows if r.key == "DU").cells["esc50"]
    assert du.missing == "failed: loss is NaN (in student stage)"
    # While a run holds the sweep's lock, what is not finished is pending.
    with store.lock():
        t = report.build_table(report.load_sweep(spec.workdir), 2)
    assert next(r for r in t.rows if r.key == "ADS+SL s65").cells["us8k"].missing == "pending"


def test_paper_rows_and_extra_rows(table2):
    spec, _, _ = table2
    t = report.build_table(report.load_sweep(spec.workdir), 2)
    names = [r.name for r in t.rows]
    assert names[:8] == [p.label for p in tables.get(2).rows]
    msclap = t.rows[0]
    assert msclap.source == "paper only" and msclap.cells["esc50"].missing == "paper only"
    assert [msclap.cells[c].paper for c in ("esc50", "us8k", "tut17")] == [82.6, 73.4, 29.6]
    # DS, DS+SL, ADS are not in this sweep: paper only; "ADS+SL s65" is an extra row.
    by_label = {r.name: r for r in t.rows}
    assert by_label["OC, DS"].source == "paper only"
    assert names[8:] == ["ADS+SL s65"]
    assert all(c.paper is None for c in t.rows[8].cells.values())


def test_msclap_row_comes_from_its_eval_stage(tmp_path):
    (tmp_path / "ms.pth").write_bytes(b"stand-in checkpoint")  # the spec checks that it exists
    spec, plan, store = make_sweep(tmp_path, "ms", seeds=(0,), msclap_checkpoint="ms.pth")
    stage = next(s for s in plan.stages.values() if s.users[0]["row"] == "msclap")
    finish(store, stage, acc(esc50=(0.81, {}), us8k=(0.7, {}), tut17=(0.3, {})))
    t = report.build_table(report.load_sweep(spec.workdir), 2)
    assert t.rows[0].source == "sweep" and t.rows[0].name == "MS-CLAP"
    assert t.rows[0].cells["esc50"].mean == pytest.approx(81.0)
    assert t.rows[0].cells["esc50"].diff() == pytest.approx(81.0 - 82.6)


def test_table3_uses_the_small_teacher_and_notes_a_stand_in(tmp_path):
    spec, plan, store = make_sweep(tmp_path, "t3", tables=(3,), seeds=(0,), fractions=(1.0, 0.2))
    finish_eval(store, plan, "teacher", 0, {"esc50": 0.9}, fraction=1.0)
    finish_eval(store, plan, "teacher", 0, {"esc50": 0.6}, fraction=0.2)
    t = report.build_table(report.load_sweep(spec.workdir), 3)
    assert t.fraction == 0.2 and t.rows[0].name == "CLAP teacher"
    assert t.rows[0].cells["esc50"].mean == pytest.approx(60.0)
    assert t.rows[0].cells["esc50"].paper == 74.2
    assert any("teacher fraction 0.2 stands in for the paper's 0.1" in n for n in t.notes)
    assert [r.name for r in t.rows][:3] == ["CLAP teacher", "DU + SL", "ADS + SL"]
    assert report.build_table(report.load_sweep(spec.workdir), 2).fraction == 1.0


def test_by_pivot_keeps_settings_apart(tmp_path):
    spec, plan, store = make_sweep(tmp_path, "piv", seeds=(0,))
    finish_eval(store, plan, "ADS+SL", 0, {"esc50": 0.5})
    finish_eval(store, plan, "ADS+SL s65", 0, {"esc50": 0.9})
    t = report.build_table(report.load_sweep(spec.workdir), 2, by="sigma")
    ads = [r for r in t.rows if r.key.startswith("ADS+SL")]
    # Groups in order of first appearance: sigma 0.7 (DU, DU+SL, ADS+SL), then 0.65.
    assert [(r.name, r.setting, r.cells["esc50"].values) for r in ads] == [
        ("OC, ADS+SL [sigma=0.7]", {"sigma": 0.7}, [50.0]),
        ("ADS+SL s65 [sigma=0.65]", {"sigma": 0.65}, [90.0]),
    ]
    keys = [r.key for r in t.rows if r.setting]
    assert keys == ["DU", "DU+SL", "ADS+SL", "ADS+SL s65"]
    # Baselines first, rows only the paper has last.
    assert [r.name for r in t.rows[:2]] == ["MS-CLAP", "Our-CLAP (OC)"]
    assert [r.name for r in t.rows[-3:]] == ["OC, DS", "OC, DS+SL", "OC, ADS"]
    # beta comes from `student` / `train` where the row does not set it.
    t = report.build_table(report.load_sweep(spec.workdir), 2, by="beta")
    beta = {r.key: r.setting["beta"] for r in t.rows if r.setting}
    assert beta["DU"] == 0.0 and beta["DU+SL"] == 0.3
    with pytest.raises(UserError, match="--by lr"):
        report.build_table(report.load_sweep(spec.workdir), 2, by="lr")


def test_table1_counts_improvement_sets(tmp_path):
    spec, plan, store = make_sweep(tmp_path, "t1", tables=(1,), seeds=(0, 1))
    for seed, n in ((0, 1000), (1, 1400)):
        finish(
            store, find(plan, "curate", "DU", seed, strategy="du"), {"n_pairs": n, "strategy": "du"}
        )
    stage = find(plan, "curate", "ADS+SL", 0, task="esc50", strategy="ads")
    finish(store, stage, {"n_pairs": 20000, "strategy": "ads", "task": "esc50"})
    t = report.build_table(report.load_sweep(spec.workdir), 1)
    assert t.columns[:3] == ["du", "esc50/ds", "esc50/ads"]
    assert t.rows[0].source == "paper only"
    assert [t.rows[0].cells[c].paper for c in t.columns] == [
        5.0e6,
        15.6e3,
        1.30e6,
        9.7e3,
        1.1e6,
        8.7e3,
        0.3e6,
    ]
    rows = {r.key: r for r in t.rows}
    du = rows["DU, DU+SL"].cells["du"]  # DU and DU+SL read the same curation: one row
    assert (du.mean, du.std, du.n) == (1200.0, pytest.approx(math.sqrt(80000)), 2)
    assert rows["DU, DU+SL"].cells["esc50/ds"].missing == "n/a"
    ads = rows["ADS+SL"].cells["esc50/ads"]
    assert ads.values == [20000.0] and ads.incomplete.startswith("1 of 2 seeds")
    assert rows["ADS+SL"].cells["esc50/ds"].missing == "not run"
    assert report.cell_text(du, "pairs") == "1.2k ± 283 (n=2)"
    assert report.cell_text(ads, "pairs") == "20.0k (n=1)†"


def test_folds_are_averaged_per_fold(tmp_path):
    spec, plan, store = make_sweep(tmp_path, "f", seeds=(0, 1))
    finish_eval(store, plan, "teacher", 0, {"us8k": 0.5}, folds={"us8k": {"1": 0.4, "2": 0.6}})
    finish_eval(store, plan, "teacher", 1, {"us8k": 0.7}, folds={"us8k": {"1": 0.6, "2": 0.8}})
    t = report.build_table(report.load_sweep(spec.workdir), 2, folds=True)
    (ft,) = t.folds
    assert ft.task == "us8k" and ft.columns == ["1", "2"]
    name, cells = ft.rows[0]
    assert name == "Our-CLAP (OC)"
    assert cells["1"].mean == pytest.approx(50.0) and cells["2"].mean == pytest.approx(70.0)
    data = json.loads(report.render(t, "json"))
    assert data["folds"]["us8k"]["rows"][0]["cells"]["2"]["n"] == 2
    assert "Per-fold accuracy, UrbanSound8K" in report.render(t, "text")


# ----------------------------------------------------------------------------- formats


def test_json_format(table2, capsys):
    spec, _, _ = table2
    code, out, err = run(
        ["report", "--table", "2", "--sweep", spec.workdir, "--format", "json"], capsys
    )
    assert code == 0 and "sweep t2" in err
    data = json.loads(out)
    assert (data["table"], data["sweep"], data["workdir"]) == (2, "t2", spec.workdir)
    assert data["columns"] == ["esc50", "us8k", "tut17"]
    teacher = data["rows"][1]
    assert teacher["name"] == "Our-CLAP (OC)"
    cell = teacher["cells"]["esc50"]
    assert set(cell) >= {"mean", "std", "n", "paper", "missing"}
    assert cell["mean"] == pytest.approx(83.0) and cell["n"] == 3 and cell["missing"] is None
    assert data["rows"][0]["cells"]["tut17"] == {
        **data["rows"][0]["cells"]["tut17"],
        "mean": None,
        "paper": 29.6,
        "missing": "paper only",
    }
    assert isinstance(data["notes"], list) and data["notes"]


def test_latex_format_bolds_the_best(table2):
    spec, _, _ = table2
    t = report.build_table(report.load_sweep(spec.workdir), 2)
    tex = report.render(t, "latex")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == 1
    # ESC-50: DU+SL (85.0) beats the teacher (83.0); US8K/TUT17: only the teacher has values.
    assert r"\textbf{85.0}$\pm$0.7$^{n=2}$" in tex
    assert r"\textbf{83.0}" not in tex and r"83.0$\pm$3.6" in tex
    assert r"\textbf{72.3}$\pm$2.5" in tex
    assert tex.count(r"\textbf") == 3
    assert r"\emph{failed}" in tex and "OC, ADS+SL" in tex


def test_md_format(table2):
    spec, _, _ = table2
    md = report.render(report.build_table(report.load_sweep(spec.workdir), 2), "md")
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert (
        lines[0] == "| Model | ESC-50 | paper | Δ | UrbanSound8K | paper | Δ | TUT17 | paper | Δ |"
    )
    assert lines[1].startswith("|:---|---:|")
    assert len(lines) == 2 + 9
    assert "| Our-CLAP (OC) | 83.0 ± 3.6 (n=3) | 81.9 | +1.1 |" in md
    assert "| MS-CLAP | paper only | 82.6 |  |" in md
    assert "**85.0 ± 0.7 (n=2)†**" in md


def test_csv_format(table2):
    spec, _, _ = table2
    text = report.render(report.build_table(report.load_sweep(spec.workdir), 2), "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 9 * 3
    teacher = next(r for r in rows if r["row"] == "Our-CLAP (OC)" and r["column"] == "UrbanSound8K")
    assert (teacher["mean"], teacher["n"], teacher["paper"]) == ("72.3333", "3", "74.8")
    assert float(teacher["std"]) == pytest.approx(
        math.sqrt(((70 - 72.3333) ** 2 + (72 - 72.3333) ** 2 + (75 - 72.3333) ** 2) / 2), abs=1e-3
    )
    failed = next(r for r in rows if r["row"] == "OC, ADS+SL" and r["column"] == "ESC-50")
    assert failed["mean"] == "" and failed["missing"] == "failed: CUDA out of memory"


def test_text_format_plain_when_not_a_terminal(table2):
    spec, _, _ = table2
    out = report.render(report.build_table(report.load_sweep(spec.workdir), 2), "text")
    assert out.startswith("Table 2: full-dataset teacher")
    line = next(ln for ln in out.splitlines() if ln.startswith("Our-CLAP (OC)"))
    assert line.split()[2:8] == ["83.0", "±", "3.6", "(n=3)", "81.9", "+1.1"]
    assert "failed: CUDA out of memory" in out and "\x1b[" not in out


def test_rich_text_on_a_terminal(table2):
    spec, _, _ = table2
    buf = io.StringIO()
    report.render_text(report.build_table(report.load_sweep(spec.workdir), 2), buf, tty=True)
    assert "Our-CLAP (OC)" in buf.getvalue() and "┃" in buf.getvalue()


# ----------------------------------------------------------------------------- plot


def test_plot_is_a_png(table2, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed in this environment")
    spec, _, _ = table2
    png = tmp_path / "fig" / "t2.png"
    code, _, err = run(
        ["report", "--table", "2", "--sweep", spec.workdir, "--plot", str(png)], capsys
    )
    assert code == 0 and f"wrote {png}" in err
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    t1 = tmp_path / "t1.png"
    sweep = report.load_sweep(spec.workdir)
    finish(sweep.store, find(build_plan(spec), "curate", "DU", 0, strategy="du"), {"n_pairs": 7})
    from clapsweep.report.plot import plot_table

    plot_table(report.build_table(report.load_sweep(spec.workdir), 1), t1)
    assert t1.read_bytes()[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------- errors, pick


def test_table_4_is_an_error(table2, capsys):
    spec, _, _ = table2
    code, out, err = run(["report", "--table", "4", "--sweep", spec.workdir], capsys)
    assert code == 2 and out == ""
    assert "--table 4" in err and "1, 2 and 3" in err


def test_a_sweep_without_results_is_an_error(tmp_path, capsys):
    spec, _, _ = make_sweep(tmp_path, "empty")
    code, _, err = run(["report", "--table", "2", "--sweep", spec.workdir], capsys)
    assert code == 2 and "sweep empty has no results" in err and "clapsweep run" in err
    with pytest.raises(UserError, match="no plan.json"):
        report.load_sweep(tmp_path)


def test_auto_pick_takes_the_newest_sweep_declaring_the_table(tmp_path, capsys, monkeypatch):
    old, old_plan, old_store = make_sweep(tmp_path, "old", tables=(2,), seeds=(0,))
    new, new_plan, new_store = make_sweep(tmp_path, "new", tables=(2,), seeds=(0,))
    other, other_plan, other_store = make_sweep(tmp_path, "other", tables=(1,), seeds=(0,))
    for plan, store in ((old_plan, old_store), (new_plan, new_store), (other_plan, other_store)):
        finish_eval(store, plan, "teacher", 0, {"esc50": 0.5})
    now = time.time()
    os.utime(Path(old.workdir) / "plan.json", (now - 100, now - 100))
    os.utime(Path(new.workdir) / "plan.json", (now - 50, now - 50))  # "other" is newest
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["report", "--table", "2", "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["sweep"] == "new"
    assert f"sweep new ({new.workdir})" in err
    code, _, err = run(["report", "--table", "3"], capsys)
    assert code == 2 and "declares table 3" in err


def test_sweep_yaml_reads_its_workdir(table2, tmp_path, capsys):
    spec, _, _ = table2
    sweep_file = tmp_path / "t2.yaml"
    sweep_file.write_text((Path(spec.workdir) / "spec.yaml").read_text())
    code, out, _ = run(
        ["report", "--table", "2", "--sweep", str(sweep_file), "--format", "csv"], capsys
    )
    assert code == 0 and out.startswith("table,row,column,mean,std,n,paper")


def test_log_report_tables_skips_when_tracking_is_off(table2):
    spec, _, _ = table2
    assert report.log_report_tables(spec, {"table2": (["a"], [[1]])}) is False


# ----------------------------------------------------------------------------- read-only, W&B


def test_report_writes_no_wandb_folder_without_the_flag(tmp_path, capsys):
    spec, plan, store = make_sweep(
        tmp_path, "quiet", seeds=(0,), tracking={"wandb": {"enabled": True, "mode": "offline"}}
    )
    finish_eval(store, plan, "teacher", 0, {"esc50": 0.5})
    before = sorted(p.relative_to(store.workdir) for p in store.workdir.rglob("*"))
    for fmt in ("text", "json", "latex"):
        code, out, err = run(
            ["report", "--table", "2", "--sweep", spec.workdir, "--format", fmt], capsys
        )
        assert code == 0 and out and "W&B" not in err
    assert not (store.workdir / "wandb").exists()
    assert sorted(p.relative_to(store.workdir) for p in store.workdir.rglob("*")) == before


def test_wandb_flag_with_tracking_off_is_an_error_before_any_output(table2, capsys):
    spec, _, store = table2  # make_sweep turns tracking off
    code, out, err = run(["report", "--table", "2", "--sweep", spec.workdir, "--wandb"], capsys)
    assert code == 2 and out == ""
    assert "--wandb: W&B tracking is off for sweep t2" in err and "spec.yaml" in err
    assert "Traceback" not in err and not (store.workdir / "wandb").exists()


# ----------------------------------------------------------------------------- damaged records


def test_a_damaged_meta_json_is_a_missing_cell_naming_the_file(table2, capsys):
    spec, plan, store = table2
    truncated = find(plan, "eval", "teacher", 1, task="esc50")
    path = store.final(truncated.name) / "meta.json"
    path.write_bytes(path.read_bytes()[:40])  # a write cut short
    garbage = find(plan, "eval", "DU+SL", 0, task="esc50")
    (store.final(garbage.name) / "meta.json").write_bytes(b"\xff\xfe garbage")
    code, out, err = run(
        ["report", "--table", "2", "--sweep", spec.workdir, "--format", "json"], capsys
    )
    assert code == 0 and "Traceback" not in err
    data = json.loads(out)
    rows = {r["key"]: r for r in data["rows"]}
    teacher = rows["teacher"]["cells"]["esc50"]
    assert teacher["n"] == 2 and teacher["seeds"] == [0, 2]  # never filled in
    assert f"seed 1: damaged: stages/{truncated.name}/meta.json (not JSON)" in teacher["incomplete"]
    du = rows["DU+SL"]["cells"]["esc50"]
    assert du["seeds"] == [1]
    assert f"seed 0: damaged: stages/{garbage.name}/meta.json (not JSON)" in du["incomplete"]
    # The notes name each damaged file in full and say what repairs it.
    for stage in (truncated, garbage):
        full = f"{store.final(stage.name) / 'meta.json'} is damaged (not JSON)"
        assert any(full in n and "`clapsweep run` recomputes it" in n for n in data["notes"])


def test_a_stage_whose_only_result_is_damaged_says_so(tmp_path, capsys):
    spec, plan, store = make_sweep(tmp_path, "dam", seeds=(0,))
    finish_eval(store, plan, "teacher", 0, {"esc50": 0.5, "us8k": 0.25})
    stage = find(plan, "eval", "teacher", 0, task="esc50")
    meta_file = store.final(stage.name) / "meta.json"
    meta_file.write_text("")  # empty: the report must not say "no results yet"
    code, out, err = run(["report", "--table", "2", "--sweep", spec.workdir], capsys)
    assert code == 0 and "Traceback" not in err
    line = next(ln for ln in out.splitlines() if ln.startswith("Our-CLAP (OC)"))
    assert "damaged: stages/eval-" in line
    assert f"note: stage {stage.name} has no usable result: {meta_file} is damaged" in out
    # JSON of the wrong shape (a list, a result that is not a mapping) is damaged too.
    for text in ("[]", json.dumps({"result": "x"}), json.dumps({"files": [1]})):
        meta_file.write_text(text)
        t = report.build_table(report.load_sweep(spec.workdir), 2)
        cell = next(r for r in t.rows if r.key == "teacher").cells["esc50"]
        assert cell.n == 0 and cell.missing.startswith("damaged: "), text
    tex = report.render(t, "latex")
    assert r"\emph{damaged}" in tex


@pytest.mark.parametrize(
    "content, why",
    [
        (b"\xff\xfe garbage", "not UTF-8 text"),
        (b'{"sweep": "t2", "stages": [{"kind": "ev', "not JSON; truncated?"),
        (b"", "empty"),
        (b'{"sweep": "t2", "stages": [{"kind": "eval"}]}', "damaged"),
        (b'{"sweep": "t2", "stages": 7}', "damaged"),
    ],
)
def test_a_damaged_plan_json_is_one_message(table2, capsys, content, why):
    spec, _, store = table2
    plan_file = store.workdir / "plan.json"
    plan_file.write_bytes(content)
    code, out, err = run(["report", "--table", "2", "--sweep", spec.workdir], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith(f"clapsweep: error: {plan_file}: damaged (")
    assert why in err and "run `clapsweep run SWEEP.yaml` to write it anew" in err
    assert len(err.strip().splitlines()) == 1


def test_a_plan_json_with_malformed_stages_is_one_message(table2, capsys):
    spec, plan, store = table2
    data = plan.to_json()
    data["stages"][0]["users"] = [{"seed": 0}]  # no row
    write_json(store.workdir / "plan.json", data)
    code, out, err = run(["report", "--table", "2", "--sweep", spec.workdir], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"plan.json: damaged (stage {data['stages'][0]['name']} is malformed)" in err


@pytest.mark.parametrize(
    "content, why",
    [
        (b"\xff\xfe garbage", "not UTF-8 text"),
        (b"name: t2\ngrid: {rows: [", "not valid YAML"),
        (b"- just\n- a list\n", "not a YAML mapping"),
        (b"name: t2\ngrid: 3\n", "grid is not a mapping"),
        (b"name: t2\ngrid:\n  rows:\n  - strategy: du\n", "grid.rows is not a list of named"),
    ],
)
def test_a_damaged_spec_yaml_is_one_message(table2, capsys, content, why):
    spec, _, store = table2
    spec_file = store.workdir / "spec.yaml"
    spec_file.write_bytes(content)
    code, out, err = run(["report", "--table", "2", "--sweep", spec.workdir], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith(f"clapsweep: error: {spec_file}: damaged ({why}")
    assert "`clapsweep run SWEEP.yaml` to write it anew" in err


def test_a_sweep_file_that_is_not_text_is_one_message(tmp_path, capsys):
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_bytes(b"\xff\xfe garbage")
    code, out, err = run(["report", "--table", "2", "--sweep", str(sweep_file)], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert str(sweep_file) in err and "UTF-8" in err


def test_auto_pick_passes_over_a_damaged_spec_yaml(tmp_path, capsys, monkeypatch):
    good, plan, store = make_sweep(tmp_path, "good", tables=(2,), seeds=(0,))
    finish_eval(store, plan, "teacher", 0, {"esc50": 0.5})
    _, _, bad_store = make_sweep(tmp_path, "bad", tables=(2,), seeds=(0,))
    (bad_store.workdir / "spec.yaml").write_bytes(b"\xff\xfe garbage")
    now = time.time()
    os.utime(Path(good.workdir) / "plan.json", (now - 100, now - 100))  # "bad" is newer
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["report", "--table", "2", "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["sweep"] == "good"
    assert "report: passed over: runs/bad/spec.yaml: damaged (not UTF-8 text)" in err
    (store.workdir / "spec.yaml").write_text("tables: [")
    code, _, err = run(["report", "--table", "2"], capsys)
    assert code == 2 and "2 work directories with a damaged spec.yaml passed over" in err


# ----------------------------------------------------------------------------- what ± is


def test_every_format_lists_the_seeds_and_what_the_spread_is(table2):
    spec, _, _ = table2
    t = report.build_table(report.load_sweep(spec.workdir), 2)
    assert report.table_seeds(t) == [0, 1, 2]
    text, md, tex = (report.render(t, f) for f in ("text", "md", "latex"))
    caption = "mean ± sample std over seeds (n seeds); seeds 0, 1, 2"
    assert caption in text.splitlines()[0]
    assert md.splitlines()[0].startswith("**Table 2") and caption in md.splitlines()[0]
    assert r"mean $\pm$ sample std over seeds (n=3); seeds 0, 1, 2}" in tex
    data = json.loads(report.render(t, "json"))
    assert data["seeds"] == [0, 1, 2] and "sample standard deviation (n - 1)" in data["statistic"]
    rows = list(csv.DictReader(io.StringIO(report.render(t, "csv"))))
    teacher = next(r for r in rows if r["row"] == "Our-CLAP (OC)" and r["column"] == "ESC-50")
    du = next(r for r in rows if r["row"] == "OC, DU+SL" and r["column"] == "ESC-50")
    assert (teacher["seeds"], du["seeds"]) == ("0 1 2", "0 1")


def test_a_table_of_one_seed_says_seed(tmp_path):
    spec, plan, store = make_sweep(tmp_path, "s7", seeds=(7,))
    finish_eval(store, plan, "teacher", 7, {"esc50": 0.5})
    t = report.build_table(report.load_sweep(spec.workdir), 2)
    assert report.render(t, "md").splitlines()[0].endswith("(n seeds); seed 7**")


def test_latex_states_its_preamble_requirement(table2):
    spec, _, _ = table2
    tex = report.render(report.build_table(report.load_sweep(spec.workdir), 2), "latex")
    assert tex.splitlines()[0] == r"% requires \usepackage{booktabs}"
    assert tex.splitlines()[1] == r"\begin{table}[t]"


@pytest.mark.parametrize("name", ["t2.jpgx", "t2", "fig.PNGX"])
def test_plot_with_an_unsupported_extension_is_one_message(table2, tmp_path, capsys, name):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed in this environment")
    spec, _, _ = table2
    target = tmp_path / name
    code, out, err = run(
        ["report", "--table", "2", "--sweep", spec.workdir, "--plot", str(target)], capsys
    )
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith(f"clapsweep: error: --plot {target}: ")
    assert "is not a figure format" in err and ".png" in err and ".pdf" in err and ".svg" in err
    assert not target.exists() and not target.with_suffix(".png").exists()


def test_folds_are_in_natural_order(tmp_path):
    spec, plan, store = make_sweep(tmp_path, "nat", seeds=(0,))
    # meta.json stores the folds sorted as text: "1", "10", "2", ..., "dev", "eval".
    folds = {"us8k": {f: 0.5 for f in ["eval", "dev", "2", "10", "1", *map(str, range(3, 10))]}}
    finish_eval(store, plan, "teacher", 0, {"us8k": 0.5}, folds=folds)
    t = report.build_table(report.load_sweep(spec.workdir), 2, folds=True)
    assert t.folds[0].columns == [*map(str, range(1, 11)), "dev", "eval"]
    header = next(ln for ln in report.render(t, "text").splitlines() if "fold 1 " in ln)
    assert header.split()[2::2] == t.folds[0].columns  # "Model", "fold", "1", "fold", "2", ...
    assert json.loads(report.render(t, "json"))["folds"]["us8k"]["columns"][-3:] == [
        "10", "dev", "eval",
    ]  # fmt: skip


def test_rows_with_fewer_seeds_say_which(table2):
    spec, _, _ = table2
    t = report.build_table(report.load_sweep(spec.workdir), 2)
    note = "OC, DU+SL: seeds 0, 1 only (the table: seeds 0, 1, 2)"
    text, md, tex = (report.render(t, f) for f in ("text", "md", "latex"))
    assert f"note: {note}\n" in text and f"- {note}\n" in md and note + r"\\" in tex
    assert note in json.loads(report.render(t, "json"))["notes"]
    # Rows with every seed of the table get no such line (the caption lists the seeds).
    assert sum("only (the table:" in line for line in text.splitlines()) == 1


def test_plot_in_a_format_matplotlib_cannot_write_here_is_one_message(table2, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed in this environment")
    if shutil.which("xelatex"):
        pytest.skip("xelatex is installed: matplotlib can write .pgf here")
    spec, _, _ = table2
    target = tmp_path / "t2.pgf"
    code, _, err = run(
        ["report", "--table", "2", "--sweep", spec.workdir, "--plot", str(target)], capsys
    )
    assert code == 2 and "Traceback" not in err
    # The table is already printed (only drawing tells); the error is the last line.
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"clapsweep: error: --plot {target}: matplotlib cannot write it here (")
    assert "xelatex" in last and not target.exists()


# ----------------------------------------------------------------------------- registries


def test_a_new_table_is_one_registry_entry(table2, capsys, monkeypatch):
    """Registered here, not in any module: Table 2's rows at fraction 1, no baselines."""
    entry = tables.PaperTable(
        9, "Table 2 at fraction 1 without baselines", tables.ACCURACY, 1.0, "Table 2, students"
    )
    monkeypatch.setitem(tables.TABLES, 9, entry)
    spec, _, _ = table2
    argv = ["report", "--table", "9", "--sweep", spec.workdir]
    code, out, err = run([*argv, "--format", "json"], capsys)
    assert code == 0 and f"report: Table 9 of sweep t2 ({spec.workdir})" in err
    data = json.loads(out)
    assert (data["table"], data["title"]) == (9, "Table 2 at fraction 1 without baselines")
    assert data["teacher_fraction"] == 1.0 and data["columns"] == ["esc50", "us8k", "tut17"]
    # No teacher, no MS-CLAP, no paper rows: the sweep's student rows in the spec's order.
    assert [r["key"] for r in data["rows"]] == ["DU", "DU+SL", "ADS+SL", "ADS+SL s65"]
    assert all(r["source"] == "sweep" and r["paper_row"] is None for r in data["rows"])
    du = data["rows"][1]["cells"]["esc50"]
    assert (du["mean"], du["n"], du["paper"]) == (pytest.approx(85.0), 2, None)
    assert data["rows"][2]["cells"]["esc50"]["missing"] == "failed: CUDA out of memory"
    for fmt in ("text", "md", "latex", "csv"):
        code, out, _ = run([*argv, "--format", fmt], capsys)
        assert code == 0 and "DU+SL" in out and "Our-CLAP" not in out, fmt
        assert fmt == "csv" or "Table 2 at fraction 1 without baselines; sweep t2" in out
    code, _, err = run(["report", "--table", "4", "--sweep", spec.workdir], capsys)
    assert code == 2 and "Tables 1, 2, 3 and 9" in err and "9: Table 2, students" in err


def test_table1_columns_and_plot_colours_come_from_the_strategies(monkeypatch):
    from clapsweep.report.plot import row_color

    assert tables.columns(tables.get(1)) == [
        "du", "esc50/ds", "esc50/ads", "us8k/ds", "us8k/ads", "tut17/ds", "tut17/ads",
    ]  # fmt: skip
    assert row_color("ADS+SL s65") == "#e6550d" and row_color("DU") == "#9ecae1"
    new = dataclasses.replace(strategies.get("ds"), name="xs", label="XS", colors=("#111", "#222"))
    monkeypatch.setitem(strategies.STRATEGIES, "xs", new)
    assert tables.columns(tables.get(1))[-1] == "tut17/xs"
    assert report.Table(1, "s", "w", "t", ["esc50/xs"], "pairs", []).labels() == ["ESC-50 XS"]
    assert [row_color(k) for k in ("XS", "XS+SL", "teacher")] == ["#111", "#222", "#8c8c8c"]
    hidden = dataclasses.replace(new, table1=False)
    monkeypatch.setitem(strategies.STRATEGIES, "xs", hidden)
    assert "tut17/xs" not in tables.columns(tables.get(1))
