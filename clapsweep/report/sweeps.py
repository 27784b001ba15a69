"""Reports of any sweep, not only the paper's tables: accuracy against a swept axis (--by AXIS
without --table) and the paired comparison of each student with its own seed's teacher
(--paired), from the eval stages of a loaded sweep.

An axis table has one section per task; its lines are row families (a row's name without its
`AXIS=value` part, so the rows "DU sigma=0.6", "DU sigma=0.7" are the line "DU"), its columns
the axis values, its cells the mean over seeds with the half width of the 95 % t-interval.
The axis is "fraction" (the teacher fraction) or any key of the trials' swept values in
plan.json (strategy, sigma, sigma_ds, beta, replay, soft_target, student train keys such as
lr). Rows that do not set the axis are left out (a note names them); the baselines (teacher,
MS-CLAP), which do not vary with it, are one reference value per section. A sweep with
several teacher fractions gets a line per family and fraction: settings are never pooled.

A paired cell holds, per seed, the student's accuracy minus that of the teacher of the same
seed and fraction: the mean difference, its 95 % CI (t, n - 1 df) and a two-sided paired
t-test (clapsweep.report.stats). --paired alone gives one such cell per student row and task;
with --by, one per axis value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from clapsweep.errors import UserError
from clapsweep.recipe import tables
from clapsweep.report.build import (
    _accuracy_getter,
    _cell,
    _has_news,
    _row_order,
    _sweep_tasks,
    add_notes,
)
from clapsweep.report.load import Sweep
from clapsweep.report.model import Cell, Table
from clapsweep.report.settings import check_axis, trial_value
from clapsweep.report.stats import PairedTest, paired_test

ALL = ""  # the column of a table without an axis (--paired alone), and of reference values


@dataclass
class PairedCell(Cell):
    """Per seed, student minus teacher (same seed and fraction): `values` are the differences."""

    teacher: list[float] = field(default_factory=list)
    student: list[float] = field(default_factory=list)

    @property
    def test(self) -> PairedTest | None:
        return paired_test(self.values)

    def to_json(self, with_diff: bool = False) -> dict[str, Any]:
        test = self.test
        return {
            "mean": self.mean,
            "ci95": [test.low, test.high] if test and test.half_width is not None else None,
            "t": test.t if test else None,
            "p": test.p if test else None,
            "n": self.n,
            "teacher_mean": _mean(self.teacher),
            "student_mean": _mean(self.student),
            "missing": self.missing,
            "incomplete": self.incomplete,
            "values": self.values,
            "teacher": self.teacher,
            "student": self.student,
            "seeds": self.seeds,
        }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass
class Line:
    """One line of a section: a row family (at one fraction) across the columns."""

    name: str
    family: str
    fraction: float | None
    rows: dict[str, str] = field(default_factory=dict)  # column -> the sweep row behind it
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass
class Section:
    task: str
    lines: list[Line]
    reference: list[Line] = field(default_factory=list)  # baselines: one value each (ALL)


@dataclass
class SweepTable:
    """An axis table (axis set) or a paired table (paired, no axis), or both."""

    sweep: str
    workdir: str
    axis: str | None
    paired: bool
    columns: list[str]  # the axis values as text, or [ALL]
    values: dict[str, Any]  # column -> the axis value
    sections: list[Section]
    number: int | None = None  # --table N --paired: the paper table whose rows these are
    fraction: float | None = None  # likewise, its teacher fraction
    notes: list[str] = field(default_factory=list)
    synth: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        """The table's name in W&B and JSON: by_sigma, paired, paired_by_sigma, table2_paired."""
        if self.axis is None:
            return f"table{self.number}_paired" if self.number else "paired"
        return ("paired_" if self.paired else "") + f"by_{self.axis}"


# ----------------------------------------------------------------------------- trials


@dataclass
class _Trial:
    stage: str
    row: str
    seed: Any
    fraction: float | None
    tasks: list[str]
    user: dict[str, Any]
    value: Any = None  # its axis value


def _trials(sweep: Sweep) -> list[_Trial]:
    out = []
    for stage in sweep.stages.values():
        if stage["kind"] != "eval":
            continue
        for u in stage["users"]:
            out.append(
                _Trial(stage["name"], u["row"], u.get("seed"), u.get("fraction"),
                       list(u.get("tasks", [])), u)
            )  # fmt: skip
    return out


def _teacher_index(trials: list[_Trial]) -> dict[tuple, dict[Any, str]]:
    """(fraction, task) -> seed -> the teacher's eval stage."""
    index: dict[tuple, dict[Any, str]] = {}
    for t in trials:
        if t.row == "teacher":
            for task in t.tasks:
                index.setdefault((t.fraction, task), {})[t.seed] = t.stage
    return index


def _tasks(sweep: Sweep, metric: str | None) -> list[str]:
    known = _sweep_tasks(sweep)
    if metric is None:
        return known
    if metric not in known:
        raise UserError(f"--metric {metric}: sweep {sweep.name} has the tasks {', '.join(known)}")
    return [metric]


def value_text(value: Any) -> str:
    """An axis value as its column shows it (0.6, 0.0001, du, {esc50:0.6})."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{value_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(value)


def _value_order(value: Any) -> tuple:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, value_text(value))


def family(row: str, axis: str) -> str:
    """The row's name without its `AXIS=value` part: "DU sigma=0.6 beta=0.3" -> "DU beta=0.3"."""
    words = row.split(" ")
    kept = words[:1] + [w for w in words[1:] if not w.startswith(f"{axis}=")]
    return " ".join(kept)


# ----------------------------------------------------------------------------- cells


def _paired_cell(
    sweep: Sweep, student: dict[Any, str], teacher: dict[Any, str], task: str
) -> PairedCell:
    """Pair each seed's student accuracy with its teacher's; never fill in a missing one."""
    get = _accuracy_getter(task)
    cell = PairedCell()
    problems: list[tuple[Any, str]] = []
    for seed in sorted(student, key=lambda s: (s is None, s)):
        ours, reason = _value(sweep, student[seed], get)
        theirs, why = (
            _value(sweep, teacher[seed], get) if seed in teacher else (None, "not planned")
        )
        if ours is None:
            problems.append((seed, reason))
        elif theirs is None:
            problems.append((seed, f"teacher {why}"))
        else:
            cell.values.append(ours - theirs)
            cell.student.append(ours)
            cell.teacher.append(theirs)
            cell.seeds.append(seed)
    if not student:
        cell.missing = "not planned"
    elif not cell.values:
        reasons = [r for _, r in problems]
        failed = [r for r in reasons if r.startswith(("failed: ", "teacher failed: "))]
        cell.missing = failed[0] if failed else reasons[0]
    elif problems:
        shown = "; ".join(f"seed {s}: {r}" for s, r in problems)
        cell.incomplete = f"{len(problems)} of {len(student)} seeds without a pair ({shown})"
    return cell


def _value(sweep: Sweep, stage: str, get: Any) -> tuple[float | None, str]:
    state, payload = sweep.state(stage)
    if state != "done":
        return None, payload
    value = get(payload)
    return value, "" if value is not None else "no result in its meta.json"


# ----------------------------------------------------------------------------- axis tables


def axis_table(
    sweep: Sweep, axis: str, metric: str | None = None, paired: bool = False
) -> SweepTable:
    """--by AXIS (without --table): the metric against the axis values, one line per family."""
    axis = check_axis(sweep, axis)
    tasks = _tasks(sweep, metric)
    trials = _trials(sweep)
    teachers = _teacher_index(trials)
    notes: list[str] = []
    fractions = sorted({t.fraction for t in trials if t.fraction is not None})
    several = len(fractions) > 1 and axis != "fraction"
    left_out: list[str] = []
    shown: list[_Trial] = []
    for t in trials:
        baseline = t.row in tables.BASELINES
        t.value = None if baseline and axis != "fraction" else trial_value(sweep, t.user, axis)
        if t.value is not None and not (paired and t.row == "teacher"):
            shown.append(t)
        elif not baseline and t.value is None and t.row not in left_out:
            left_out.append(t.row)
    columns = _columns([t.value for t in shown])
    if not columns:
        raise UserError(
            f"--by {axis}: no finished or planned student of sweep {sweep.name} sets {axis}"
        )
    names = _line_names(shown, axis, several, notes)
    order = {r: i for i, r in enumerate(_row_order(sweep))}
    sections = []
    for task in tasks:
        lines: dict[str, Line] = {}
        entries: dict[tuple[str, str], dict[Any, str]] = {}
        for t in sorted(shown, key=lambda t: order.get(t.row, len(order))):
            if task not in t.tasks:
                continue
            name, fam = names[t.row, t.fraction]
            line = lines.setdefault(name, Line(name, fam, t.fraction))
            col = value_text(t.value)
            line.rows[col] = t.row
            entries.setdefault((name, col), {})[t.seed] = t.stage
        for (name, col), seeds in entries.items():
            line = lines[name]
            if paired:
                teacher = teachers.get((line.fraction, task), {})
                line.cells[col] = _paired_cell(sweep, seeds, teacher, task)
            else:
                line.cells[col] = _cell(sweep, seeds, _accuracy_getter(task))
        reference = [] if paired else _references(sweep, trials, task, several)
        sections.append(Section(task, list(lines.values()), reference))
    if left_out:
        notes.append(f"not shown (they do not set {axis}): {', '.join(left_out)}")
    table = SweepTable(sweep.name, str(sweep.workdir), axis, paired, columns,
                       {value_text(t.value): t.value for t in shown}, sections, notes=notes)  # fmt: skip
    return _finish(sweep, table)


def _columns(values: list[Any]) -> list[str]:
    out: list[str] = []
    for value in sorted(values, key=_value_order):
        if value_text(value) not in out:
            out.append(value_text(value))
    return out


def _line_names(
    shown: list[_Trial], axis: str, several: bool, notes: list[str]
) -> dict[tuple, tuple[str, str]]:
    """(row, fraction) -> (line name, family). Two rows of one family with the same axis value
    are different settings (say "DU" with sigma 0.6 and "DU sigma=0.6"): both keep their own
    names rather than be pooled."""
    owner: dict[tuple, str] = {}  # (family, fraction, task, value) -> row
    clash: set[str] = set()
    for t in shown:
        fam = family(t.row, axis)
        for task in t.tasks:
            key = (fam, t.fraction, task, value_text(t.value))
            if owner.setdefault(key, t.row) != t.row:
                clash.add(fam)
    if clash:
        notes.append(
            f"rows of {', '.join(sorted(clash))} share {axis} values: shown under their own "
            "names, not pooled"
        )
    out = {}
    for t in shown:
        fam = family(t.row, axis)
        fam = t.row if fam in clash else fam
        name = f"{fam} (fraction {t.fraction:g})" if several and t.fraction is not None else fam
        out[t.row, t.fraction] = (name, fam)
    return out


def _references(sweep: Sweep, trials: list[_Trial], task: str, several: bool) -> list[Line]:
    """The baselines' accuracy, which the axis does not change: one value per fraction."""
    lines: dict[str, Line] = {}
    entries: dict[str, dict[Any, str]] = {}
    for t in trials:
        if t.row not in tables.BASELINES or t.value is not None or task not in t.tasks:
            continue
        name = t.row if not several or t.fraction is None else f"{t.row} (fraction {t.fraction:g})"
        lines.setdefault(name, Line(name, t.row, t.fraction, {ALL: t.row}))
        entries.setdefault(name, {})[t.seed] = t.stage
    for name, seeds in entries.items():
        lines[name].cells[ALL] = _cell(sweep, seeds, _accuracy_getter(task))
    return [line for line in lines.values() if _has_news(line.cells[ALL])]


def _finish(sweep: Sweep, table: SweepTable) -> SweepTable:
    cells = [c for s in table.sections for line in s.lines for c in line.cells.values()]
    if not any(_has_news(c) for c in cells):
        raise UserError(
            f"sweep {sweep.name} has no results to compare yet in {sweep.workdir}: run "
            "`clapsweep run SWEEP.yaml` (and `clapsweep status SWEEP.yaml` to follow it)"
        )
    add_notes(sweep, table, paper=False)
    return table


# ----------------------------------------------------------------------------- paired tables


def paired_table(sweep: Sweep, metric: str | None = None, table: Table | None = None) -> SweepTable:
    """--paired: each student row against the teacher of its own seed and fraction, per task.
    With `table` (--table N --paired), that paper table's student rows at its fraction."""
    trials = _trials(sweep)
    teachers = _teacher_index(trials)
    if table is not None:
        tasks = list(table.columns)
        names = {r.key: r.name for r in table.rows if r.source == "sweep"}
        names = {k: v for k, v in names.items() if k not in tables.BASELINES}
        fractions = [table.fraction]
    else:
        tasks = _tasks(sweep, metric)
        names = {r: r for r in _row_order(sweep) if r not in tables.BASELINES}
        fractions = sorted({t.fraction for t in trials if t.fraction is not None})
    several = len(fractions) > 1
    sections = []
    for task in tasks:
        lines = []
        for fraction in fractions:
            for row, shown in names.items():
                seeds = {
                    t.seed: t.stage
                    for t in trials
                    if (t.row, t.fraction) == (row, fraction) and task in t.tasks
                }
                if not seeds:
                    continue
                name = f"{shown} (fraction {fraction:g})" if several else shown
                line = Line(name, shown, fraction, {ALL: row})
                line.cells[ALL] = _paired_cell(
                    sweep, seeds, teachers.get((fraction, task), {}), task
                )
                lines.append(line)
        sections.append(Section(task, lines))
    out = SweepTable(sweep.name, str(sweep.workdir), None, True, [ALL], {}, sections)
    if table is not None:
        out.number, out.fraction = table.number, table.fraction
        out.notes += [n for n in table.notes if "stands in for the paper's" in n]
    if not any(line for s in sections for line in s.lines):
        raise UserError(f"--paired: sweep {sweep.name} has no student rows to compare")
    return _finish(sweep, out)
