"""`clapsweep report` for sweeps a researcher writes: --no-paper, --by AXIS (any swept key,
without --table), --metric TASK, --paired, and the t statistics behind them.

Hand-made stores as tests/test_report.py builds them (real planner, real Store); every
number is checked against one computed by hand. The CLI parser is elsewhere, so these call
`report_command` with the keyword arguments the new flags map to.
"""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from test_report import find, finish, finish_eval, make_sweep

from clapsweep import report
from clapsweep.errors import UserError
from clapsweep.report import stats

T975_2 = 4.302652729749464  # t_{0.975} with 2 degrees of freedom
SEEDS3 = {"seed": [0, 1, 2], "teacher_fraction": [1.0]}


def command(**kwargs) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    assert report.report_command(out=out, err=err, **kwargs) == 0
    return out.getvalue(), err.getvalue()


def sigma_sweep(tmp_path, name="sig", **extra):
    """DU over sigma 0.6 / 0.65 / 0.7 and the teacher, three seeds; ESC-50 by hand:
    teacher 80, 82, 87; DU sigma=0.6 81, 84, 90 (Δ 1, 2, 3); sigma=0.65 seeds 0, 1 only."""
    rows = [{"name": "DU", "strategy": "du", "sigma": [0.6, 0.65, 0.7]}]
    spec, plan, store = make_sweep(tmp_path, name, grid={"rows": rows, **SEEDS3}, **extra)
    for seed, e in enumerate([0.80, 0.82, 0.87]):
        finish_eval(store, plan, "teacher", seed, {"esc50": e, "us8k": 0.5})
    for seed, e in enumerate([0.81, 0.84, 0.90]):
        finish_eval(store, plan, "DU sigma=0.6", seed, {"esc50": e, "us8k": 0.6})
    for seed, e in enumerate([0.70, 0.74]):
        finish_eval(store, plan, "DU sigma=0.65", seed, {"esc50": e})
    return spec, plan, store


# ----------------------------------------------------------------------------- statistics


def test_t_distribution_matches_closed_forms():
    # df = 1 and df = 2 have closed forms: P(|T| >= t) = 1 - 2/pi atan(t), 1 - t/sqrt(t^2 + 2).
    for t in (0.3, 1.0, 2.5, 12.7):
        assert stats.t_two_sided(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), abs=1e-12)
        assert stats.t_two_sided(t, 2) == pytest.approx(1 - t / math.sqrt(t * t + 2), abs=1e-12)
    assert stats.t_quantile(0.975, 1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-10)
    assert stats.t_quantile(0.975, 2) == pytest.approx(T975_2, rel=1e-10)
    assert stats.t_quantile(0.975, 10) == pytest.approx(2.228138851986273, rel=1e-10)
    assert stats.t_quantile(0.025, 10) == pytest.approx(-2.228138851986273, rel=1e-10)
    assert stats.t_cdf(0.0, 5) == pytest.approx(0.5)


def test_t_distribution_agrees_with_scipy_where_it_is_installed():
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 7, 30, 200):
        assert stats.t_quantile(0.975, df) == pytest.approx(scipy_stats.t.ppf(0.975, df), rel=1e-9)
        for t in (0.1, 1.7, 4.0):
            assert stats.t_cdf(-t, df) == pytest.approx(scipy_stats.t.cdf(-t, df), rel=1e-9)


def test_paired_test_of_hand_made_differences():
    test = stats.paired_test([1.0, 2.0, 3.0])  # mean 2, s = 1, t = 2 sqrt(3), df 2
    assert (test.n, test.mean) == (3, pytest.approx(2.0))
    assert test.half_width == pytest.approx(T975_2 / math.sqrt(3))
    assert (test.low, test.high) == (
        pytest.approx(2 - 2.48414, abs=1e-5),
        pytest.approx(2 + 2.48414, abs=1e-5),
    )
    assert test.t == pytest.approx(2 * math.sqrt(3))
    assert (
        test.p == pytest.approx(1 - 2 * math.sqrt(3) / math.sqrt(14)) and round(test.p, 4) == 0.0742
    )
    one = stats.paired_test([4.0])
    assert (one.mean, one.half_width, one.p) == (4.0, None, None)
    assert stats.paired_test([]) is None
    assert stats.paired_test([1.0, 1.0]).p == 0.0 and stats.paired_test([0.0, 0.0]).p is None


# ----------------------------------------------------------------------------- --no-paper


def test_no_paper_hides_paper_rows_and_columns_in_every_format(tmp_path):
    spec, plan, store = make_sweep(tmp_path, "np", seeds=(0, 1), synth={"scale": "tiny"})
    for seed, e in enumerate([0.80, 0.82]):
        finish_eval(store, plan, "teacher", seed, {"esc50": e, "us8k": 0.5, "tut17": 0.3})
    finish_eval(store, plan, "DU+SL", 0, {"esc50": 0.9})
    out, _ = command(number=2, sweep=spec.workdir, no_paper=True)
    lines = out.splitlines()
    assert lines[0].startswith("Table 2: full-dataset teacher") and "seeds 0, 1" in lines[0]
    assert lines[1].split() == ["Model", "ESC-50", "UrbanSound8K", "TUT17"]
    names = [
        r.name for r in report.build_table(report.load_sweep(spec.workdir), 2, paper=False).rows
    ]
    # MS-CLAP, OC DS, OC DS+SL, OC ADS: only the paper has them.
    assert names == ["Our-CLAP (OC)", "OC, DU", "OC, DU+SL", "OC, ADS+SL", "ADS+SL s65"]
    assert "MS-CLAP" not in out and "81.9" not in out and "+1.1" not in out
    assert "note: data: synthworld (scale tiny), generated offline\n" in out
    md, _ = command(number=2, sweep=spec.workdir, no_paper=True, fmt="md")
    assert "| Model | ESC-50 | UrbanSound8K | TUT17 |" in md and "paper" not in md
    tex, _ = command(number=2, sweep=spec.workdir, no_paper=True, fmt="latex")
    assert r"\begin{tabular}{l r r r}" in tex and "Paper" not in tex and "multicolumn" not in tex
    assert r"Our-CLAP (OC) & 81.0$\pm$1.4 & \textbf{50.0}$\pm$0.0 & \textbf{30.0}$\pm$0.0 \\" in tex
    text, _ = command(number=2, sweep=spec.workdir, no_paper=True, fmt="csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["table", "row", "column", "mean", "std", "n", "missing",
                             "incomplete", "seeds"]  # fmt: skip
    assert {r["row"] for r in rows} == set(names)
    data = json.loads(command(number=2, sweep=spec.workdir, no_paper=True, fmt="json")[0])
    assert [r["name"] for r in data["rows"]] == names
    assert all(
        "paper" not in c and "diff" not in c for r in data["rows"] for c in r["cells"].values()
    )
    # Table 1: the paper's row of sizes goes too.
    finish(store, find(plan, "curate", "DU", 0, strategy="du"), {"n_pairs": 1000})
    t1 = report.build_table(report.load_sweep(spec.workdir), 1, paper=False)
    assert all(r.source == "sweep" for r in t1.rows)
    assert "paper" not in report.render(t1, "text").splitlines()[1]
    # Without the flag, the paper is there (the contract of tests/test_report.py).
    out, _ = command(number=2, sweep=spec.workdir)
    assert out.splitlines()[1].split()[:4] == ["Model", "ESC-50", "paper", "Δ"]
    assert "the paper's numbers come from the real datasets" in out


def test_no_paper_plot_has_no_paper_ticks(tmp_path):
    pytest.importorskip("matplotlib")
    spec, plan, store = make_sweep(tmp_path, "npp", seeds=(0,))
    finish_eval(store, plan, "teacher", 0, {"esc50": 0.5})
    png = tmp_path / "t2.png"
    command(number=2, sweep=spec.workdir, no_paper=True, plot=str(png))
    assert png.read_bytes()[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------- --by AXIS


def test_by_sigma_is_accuracy_against_the_axis_with_t_intervals(tmp_path):
    spec, _, _ = sigma_sweep(tmp_path)
    t = report.axis_table(report.load_sweep(spec.workdir), "sigma")
    assert (t.axis, t.columns, t.paired) == ("sigma", ["0.6", "0.65", "0.7"], False)
    esc = t.sections[0]
    assert esc.task == "esc50" and [line.name for line in esc.lines] == ["DU"]
    du = esc.lines[0]
    assert du.rows == {"0.6": "DU sigma=0.6", "0.65": "DU sigma=0.65", "0.7": "DU sigma=0.7"}
    cell = du.cells["0.6"]  # 81, 84, 90: mean 85, s = sqrt(21)
    assert cell.values == pytest.approx([81.0, 84.0, 90.0]) and cell.mean == pytest.approx(85.0)
    assert cell.ci95 == pytest.approx(T975_2 * math.sqrt(21) / math.sqrt(3))  # 11.38
    two = du.cells["0.65"]  # 70, 74: t_{0.975, 1} * s / sqrt(2) = 12.706 * 2
    assert two.ci95 == pytest.approx(stats.t_quantile(0.975, 1) * 2.0)
    assert du.cells["0.7"].missing == "not run"
    (teacher,) = esc.reference  # 80, 82, 87: mean 83, s = sqrt(13)
    assert teacher.cells[""].ci95 == pytest.approx(T975_2 * math.sqrt(13) / math.sqrt(3))
    out, err = command(sweep=spec.workdir, by="sigma", metric="esc50")
    assert "report: accuracy by sigma of sweep sig" in err
    lines = out.splitlines()
    assert lines[0] == (
        "ESC-50: zero-shot accuracy (%) by sigma; sweep sig; mean ± half width of the 95% CI "
        "over seeds (t-interval, n - 1 df; n seeds); seeds 0, 1, 2"
    )
    assert lines[1].split() == ["Model", "sigma=0.6", "sigma=0.65", "sigma=0.7"]
    assert lines[2].split() == ["DU", "85.0", "±", "11.4", "(n=3)", "72.0", "±", "25.4",
                                "(n=2)†", "not", "run"]  # fmt: skip
    assert "teacher (does not vary with sigma): 83.0 ± 9.0 (n=3)" in out
    assert "UrbanSound8K" not in out  # --metric esc50


def test_by_any_swept_key_train_keys_and_the_fraction(tmp_path):
    rows = [
        {"name": "DU", "strategy": "du", "sigma": 0.7, "train": {"lr": [1e-4, 3e-4]}},
        {"name": "DS", "strategy": "ds", "sigma_ds": 0.6},
    ]
    grid = {"rows": rows, "seed": [0], "teacher_fraction": [0.5, 1.0]}
    spec, plan, store = make_sweep(tmp_path, "lr", grid=grid)
    for fraction, base in ((0.5, 0.6), (1.0, 0.8)):
        finish_eval(store, plan, "teacher", 0, {"esc50": base}, fraction=fraction)
        finish_eval(store, plan, "DU lr=0.0001", 0, {"esc50": base + 0.01}, fraction=fraction)
        finish_eval(store, plan, "DU lr=0.0003", 0, {"esc50": base + 0.03}, fraction=fraction)
    sweep = report.load_sweep(spec.workdir)
    for axis in ("lr", "train.lr"):
        t = report.axis_table(sweep, axis, "esc50")
        assert t.axis == "lr" and t.columns == ["0.0001", "0.0003"]
        # Two teacher fractions: one line per fraction, never pooled.
        lines = {line.name: line for line in t.sections[0].lines}
        assert list(lines) == ["DU (fraction 0.5)", "DU (fraction 1)"]
        assert lines["DU (fraction 1)"].cells["0.0003"].values == pytest.approx([83.0])
        assert [r.name for r in t.sections[0].reference] == [
            "teacher (fraction 0.5)", "teacher (fraction 1)",
        ]  # fmt: skip
        assert "not shown (they do not set lr): DS" in t.notes
    t = report.axis_table(sweep, "fraction", "esc50")
    assert t.columns == ["0.5", "1"]
    lines = {line.name: line for line in t.sections[0].lines}
    assert list(lines) == ["teacher", "DU lr=0.0001", "DU lr=0.0003", "DS"]
    assert [lines["teacher"].cells[c].mean for c in t.columns] == pytest.approx([60.0, 80.0])
    assert lines["DS"].cells["1"].missing == "not run"
    # The paper tables' --by takes the same axes; an unknown one names those there are.
    t2 = report.build_table(sweep, 2, by="lr")
    assert "DU lr=0.0003 [lr=0.0003]" in [r.name for r in t2.rows]
    with pytest.raises(UserError, match=r"--by nope: no trial of sweep lr sets nope; its trials "
                       r"set beta, fraction, lr, replay, sigma, sigma_ds, strategy"):  # fmt: skip
        report.axis_table(sweep, "nope")


def test_by_never_pools_two_rows_of_one_family_with_the_same_value(tmp_path):
    rows = [
        {"name": "DU", "strategy": "du", "sigma": 0.7},
        {"name": "DU", "strategy": "du", "sigma": [0.6, 0.7], "beta": 0.3},
    ]  # "DU" (beta 0) and "DU sigma=0.7" (beta 0.3) are both family DU at sigma 0.7
    spec, plan, store = make_sweep(tmp_path, "clash", grid={"rows": rows, "seed": [0]})
    finish_eval(store, plan, "DU", 0, {"esc50": 0.5})
    finish_eval(store, plan, "DU sigma=0.7", 0, {"esc50": 0.9})
    t = report.axis_table(report.load_sweep(spec.workdir), "sigma", "esc50")
    lines = {line.name: line for line in t.sections[0].lines}
    assert lines["DU"].cells["0.7"].values == [50.0]
    assert lines["DU sigma=0.7"].cells["0.7"].values == [90.0]
    assert any("shown under their own names, not pooled" in n for n in t.notes)


# ----------------------------------------------------------------------------- --paired


def test_paired_is_each_student_against_its_own_seeds_teacher(tmp_path):
    spec, plan, store = sigma_sweep(tmp_path)
    # Seed 2's teacher of US8K fails: its student value is not paired, never filled in.
    out, err = command(sweep=spec.workdir, paired=True, metric="esc50")
    assert "report: Δ against the teachers of sweep sig" in err
    t = report.paired_table(report.load_sweep(spec.workdir), "esc50")
    (esc,) = t.sections
    du = {line.name: line.cells[""] for line in esc.lines}
    cell = du["DU sigma=0.6"]  # student 81, 84, 90 - teacher 80, 82, 87 = 1, 2, 3
    assert cell.values == pytest.approx([1.0, 2.0, 3.0]) and cell.seeds == [0, 1, 2]
    assert cell.teacher == pytest.approx([80.0, 82.0, 87.0])
    test = cell.test
    assert test.mean == pytest.approx(2.0) and test.half_width == pytest.approx(
        T975_2 / math.sqrt(3)
    )
    assert test.p == pytest.approx(0.07418, abs=1e-5)
    assert du["DU sigma=0.7"].missing == "not run"
    line = next(ln for ln in out.splitlines() if ln.startswith("DU sigma=0.6 "))
    assert line.split() == ["DU", "sigma=0.6", "83.0", "85.0", "+2.0", "[-0.5,", "+4.5]",
                            "0.074", "3"]  # fmt: skip
    header = out.splitlines()[1].split()
    assert header == ["Model", "teacher", "student", "Δ", "95%", "CI", "p", "n"]
    assert "two-sided paired t-test p over seeds" in out.splitlines()[0]
    assert out.splitlines()[0].endswith("; seeds 0, 1, 2")
    data = json.loads(command(sweep=spec.workdir, paired=True, metric="esc50", fmt="json")[0])
    first = data["sections"][0]["lines"][0]["cells"][""]
    assert first["p"] == pytest.approx(0.07418, abs=1e-5)
    assert first["ci95"] == pytest.approx([2 - T975_2 / math.sqrt(3), 2 + T975_2 / math.sqrt(3)])


def test_paired_leaves_out_seeds_whose_teacher_has_no_value(tmp_path):
    spec, plan, store = sigma_sweep(tmp_path)
    finish_eval(store, plan, "DU sigma=0.7", 0, {"us8k": 0.7})
    finish_eval(store, plan, "DU sigma=0.7", 1, {"us8k": 0.8})
    t = report.paired_table(report.load_sweep(spec.workdir), "us8k")
    cell = {line.name: line.cells[""] for line in t.sections[0].lines}["DU sigma=0.7"]
    assert cell.values == pytest.approx([20.0, 30.0]) and cell.seeds == [0, 1]
    assert cell.incomplete.startswith("1 of 3 seeds without a pair (seed 2: not run")
    # Seed 0's teacher failing takes seed 0 out: the student is never compared with nothing.
    teacher = find(plan, "eval", "teacher", 0, task="us8k")
    import shutil

    shutil.rmtree(store.final(teacher.name))
    store.fail(teacher.name, "disk full", "tb")
    cell = {
        line.name: line.cells[""]
        for line in report.paired_table(report.load_sweep(spec.workdir), "us8k").sections[0].lines
    }["DU sigma=0.7"]
    assert (
        cell.values == pytest.approx([30.0])
        and "seed 0: teacher failed: disk full" in cell.incomplete
    )


def test_paired_by_sigma_is_the_difference_against_the_axis(tmp_path):
    spec, _, _ = sigma_sweep(tmp_path)
    t = report.axis_table(report.load_sweep(spec.workdir), "sigma", "esc50", paired=True)
    (esc,) = t.sections
    assert [line.name for line in esc.lines] == ["DU"] and esc.reference == []  # no teacher line
    cell = esc.lines[0].cells["0.6"]
    assert cell.values == pytest.approx([1.0, 2.0, 3.0]) and cell.test.p == pytest.approx(
        0.07418, abs=1e-5
    )
    assert esc.lines[0].cells["0.65"].values == pytest.approx([-10.0, -8.0])
    out, _ = command(sweep=spec.workdir, by="sigma", metric="esc50", paired=True)
    assert "+2.0 ± 2.5 (n=3, p=0.074)" in out and "-9.0 ± 12.7 (n=2, p=0.070)" in out
    assert "two-sided paired t-test" in out.splitlines()[0]


def test_table_paired_uses_the_tables_rows_and_fraction(table2_like):
    spec = table2_like
    out, err = command(number=2, sweep=spec.workdir, paired=True, metric="esc50")
    assert "report: Table 2 paired with the teachers of sweep tp" in err
    t = report.paired_table(
        report.load_sweep(spec.workdir),
        table=report.build_table(report.load_sweep(spec.workdir), 2),
    )
    assert (t.number, t.fraction, t.name) == (2, 1.0, "table2_paired")
    names = [line.name for line in t.sections[0].lines]
    assert names == ["OC, DU+SL", "OC, ADS+SL"]  # the paper's labels; planned rows only
    cell = t.sections[0].lines[0].cells[""]  # 84.5 - 80, 85.5 - 82
    assert cell.values == pytest.approx([4.5, 3.5])
    assert t.sections[0].lines[1].cells[""].missing == "failed: CUDA out of memory"
    assert "ESC-50: Table 2 rows, each student against the teacher" in out
    with pytest.raises(UserError, match="--paired: Table 1 counts pairs"):
        command(number=1, sweep=spec.workdir, paired=True)


@pytest.fixture
def table2_like(tmp_path):
    rows = [
        {"name": "DU+SL", "strategy": "du", "sigma": 0.7, "beta": 0.3},
        {"name": "ADS+SL", "strategy": "ads", "sigma_ds": 0.6, "sigma": 0.7, "beta": 0.3},
    ]
    spec, plan, store = make_sweep(
        tmp_path, "tp", tables=(1, 2), grid={"rows": rows, "seed": [0, 1]}
    )
    for seed, e in enumerate([0.80, 0.82]):
        finish_eval(store, plan, "teacher", seed, {"esc50": e})
    finish_eval(store, plan, "DU+SL", 0, {"esc50": 0.845})
    finish_eval(store, plan, "DU+SL", 1, {"esc50": 0.855})
    bad = find(plan, "eval", "ADS+SL", 0, task="esc50")
    store.fail(bad.name, "CUDA out of memory\nTried to allocate 2 GiB", "Traceback ...")
    return spec


# ----------------------------------------------------------------------------- every format


@pytest.mark.parametrize(
    "kwargs", [{"by": "sigma"}, {"paired": True}, {"by": "sigma", "paired": True}]
)
def test_new_tables_list_the_seeds_and_say_what_pm_is_in_every_format(tmp_path, kwargs):
    spec, _, _ = sigma_sweep(tmp_path)
    seeds = "; seeds 0, 1, 2"
    text, _ = command(sweep=spec.workdir, metric="esc50", **kwargs)
    assert "95% CI" in text.splitlines()[0] and text.splitlines()[0].endswith(seeds)
    md, _ = command(sweep=spec.workdir, metric="esc50", fmt="md", **kwargs)
    assert md.startswith("**ESC-50: ") and md.splitlines()[0].endswith(seeds + "**")
    tex, _ = command(sweep=spec.workdir, metric="esc50", fmt="latex", **kwargs)
    assert r"95\% CI" in tex and seeds + "}" in tex and "Δ" not in tex.replace("$\\Delta$", "")
    data = json.loads(command(sweep=spec.workdir, metric="esc50", fmt="json", **kwargs)[0])
    assert data["seeds"] == [0, 1, 2] and "95% CI" in data["statistic"]
    assert data["sections"][0]["caption"].endswith(seeds)
    rows = list(csv.DictReader(io.StringIO(command(sweep=spec.workdir, fmt="csv", **kwargs)[0])))
    first = next(r for r in rows if r["row"] == "DU sigma=0.6" and r["task"] == "esc50")
    assert first["seeds"] == "0 1 2" and float(first["ci95_high"]) > float(first["mean"])
    assert report.wandb_tables(report.axis_table(report.load_sweep(spec.workdir), "sigma"))[
        "by_sigma"
    ][0][:4] == ["table", "task", "line", "row"]


def test_new_plots_are_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    spec, _, _ = sigma_sweep(tmp_path)
    for name, kwargs in [("by.png", {"by": "sigma"}), ("paired.png", {"paired": True}),
                         ("pby.svg", {"by": "sigma", "paired": True})]:  # fmt: skip
        target = tmp_path / "fig" / name
        _, err = command(sweep=spec.workdir, plot=str(target), **kwargs)
        assert f"wrote {target}" in err and target.stat().st_size > 5_000
    assert (tmp_path / "fig" / "by.png").read_bytes()[:4] == b"\x89PNG"


def test_options_that_do_not_go_together_are_one_message(tmp_path, monkeypatch):
    spec, _, _ = sigma_sweep(tmp_path)
    for kwargs, message in [
        ({}, "--table N: which of the paper's tables (1, 2 or 3); for a report of any sweep, --by"),
        ({"by": "sigma", "folds": True}, "--folds: per-fold accuracy is part of a paper table"),
        ({"number": 2, "by": "sigma", "paired": True}, "--paired --by sigma: Δ against sigma"),
        ({"by": "sigma", "metric": "esc-50"}, "--metric esc-50: sweep sig has the tasks esc50"),
        ({"number": 1, "metric": "esc50"}, "--metric esc50: Table 1 holds pairs"),
        ({"number": 2, "metric": "nope"}, "--metric nope: Table 2 has the tasks esc50, us8k"),
    ]:
        with pytest.raises(UserError) as e:
            command(sweep=spec.workdir, **kwargs)
        assert message in str(e.value), kwargs
    # Without --sweep (and --table), the newest sweep that has been run.
    monkeypatch.chdir(tmp_path)
    _, err = command(by="sigma")
    assert f"of sweep sig ({spec.workdir})" in err
    with pytest.raises(UserError, match="no sweep under elsewhere/ has been run"):
        command(by="sigma", workdir_root="elsewhere")
