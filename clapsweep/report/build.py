"""The paper's tables from a loaded sweep, driven by the tables registry (recipe.tables).

Tables of kind "accuracy" hold zero-shot accuracy in percent per task: for each sweep row at
the table's teacher fraction, the per-seed accuracies of its eval stages, beside the paper's
number. Tables of kind "pairs" hold the Improvement-Set sizes of the curate stages. One build
function per kind (BUILDERS); a new kind registers its own with @builder("kind").

Rows are keyed by their sweep row name and matched to the paper's rows by that name (spaces
and case ignored); other rows become extra rows without a paper number. A paper row the sweep
cannot produce shows the paper's number alone ("paper only"). A cell without results says why
("failed: ...", "pending", "not run", "damaged: <file> ...", "stale: ..."); values are never
filled in, and different settings are never averaged together: a cell only pools the seeds of
one row at one fraction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from clapsweep.errors import UserError
from clapsweep.recipe import tables, tasks
from clapsweep.recipe.tables import PaperRow, PaperTable
from clapsweep.report.load import Sweep, first_line
from clapsweep.report.model import PAIRS, PERCENT, Cell, FoldTable, Row, Table
from clapsweep.report.settings import (
    BY_FIELDS,
    _setting_text,
    check_axis,
    row_setting,
    sweep_axes,
    trial_value,
)

__all__ = ["BY_FIELDS", "check_axis", "row_setting", "sweep_axes", "trial_value"]  # re-exported

Builder = Callable[[Sweep, PaperTable, str | None, bool], Table]
BUILDERS: dict[str, Builder] = {}
Index = dict[Any, dict[Any, str]]  # (row, column) or row -> ... -> seed -> stage name


def builder(kind: str) -> Callable[[Builder], Builder]:
    """Register the build function of a table kind: fn(sweep, paper_table, by, folds)."""

    def add(fn: Builder) -> Builder:
        BUILDERS[kind] = fn
        return fn

    return add


def check_table(number: int) -> None:
    if number not in tables.TABLES:
        numbers = tables.numbers()
        listed = ", ".join(str(n) for n in numbers[:-1]) + f" and {numbers[-1]}"
        what = ", ".join(f"{n}: {tables.get(n).summary or tables.get(n).title}" for n in numbers)
        raise UserError(
            f"--table {number}: the paper has Tables {listed if len(numbers) > 1 else numbers[0]} "
            f"({what}); use one of them"
        )


def build_table(
    sweep: Sweep,
    number: int,
    by: str | None = None,
    folds: bool = False,
    paper: bool = True,
    metric: str | None = None,
) -> Table:
    """Aggregate the sweep's results into the paper's Table `number`; `paper=False`
    (--no-paper) leaves out the rows only the paper has and the paper's numbers, `metric`
    (--metric TASK) keeps one task's column of an accuracy table."""
    check_table(number)
    by = check_axis(sweep, by)
    entry = tables.get(number)
    if entry.kind not in BUILDERS:
        raise UserError(f"--table {number}: no build function for tables of kind {entry.kind}")
    if metric is not None and entry.kind != tables.ACCURACY:
        raise UserError(
            f"--metric {metric}: Table {number} holds {entry.kind}, not accuracy per task; "
            "leave --metric out"
        )
    table = BUILDERS[entry.kind](sweep, entry, by, folds)
    if metric is not None:
        _only_column(table, metric)
    if not paper:
        _hide_paper(table)
    add_notes(sweep, table, paper)
    return table


def _only_column(table: Table, column: str) -> None:
    if column not in table.columns:
        raise UserError(
            f"--metric {column}: Table {table.number} has the tasks {', '.join(table.columns)}"
        )
    table.columns = [column]
    for row in table.rows:
        row.cells = {column: row.cells[column]}
    table.folds = [ft for ft in table.folds if ft.task == column]


def _hide_paper(table: Table) -> None:
    """--no-paper: the sweep's rows only, without the paper's numbers."""
    table.paper = False
    table.rows = [r for r in table.rows if r.source == "sweep"]
    for row in table.rows:
        for cell in row.cells.values():
            cell.paper = None


def add_notes(sweep: Sweep, table: Any, paper: bool = True) -> None:
    """Synthworld data, failed stages, damaged records: what every table says below it."""
    synth = (sweep.spec.get("data") or {}).get("synth")
    if isinstance(synth, dict) and synth:
        table.synth = synth
        note = f"data: synthworld (scale {synth.get('scale')}), generated offline"
        if paper:
            note += (
                "; the paper's numbers come from the real datasets and are shown for "
                "orientation only"
            )
        table.notes.append(note)
    for name, record in sweep.failures():
        first = first_line(record.get("message"))
        table.notes.append(f"failed stage {name}: {first} (log: {record.get('log')})")
    for name, problem in sweep.damaged.items():
        table.notes.append(
            f"stage {name} has no usable result: {problem}; `clapsweep run` recomputes it"
        )


# ----------------------------------------------------------------------------- shared parts


def _has_news(cell: Cell) -> bool:
    """A value, or a reason worth a table: a failure or a damaged or stale record."""
    return bool(cell.n) or (cell.missing or "").startswith(("failed", "damaged", "stale"))


def _number(value: Any, scale: float = 1.0) -> float | None:
    """A stored number times `scale`; None for anything else (a damaged or odd record)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value * scale if math.isfinite(value) else None


def _task_entry(result: dict, task: str) -> dict:
    entry = result.get(task)
    return entry if isinstance(entry, dict) else {}


def _fractions(sweep: Sweep, kind: str) -> list[float]:
    return sorted(
        {
            u["fraction"]
            for s in sweep.stages.values()
            if s["kind"] == kind
            for u in s["users"]
            if u.get("fraction") is not None
        }
    )


def _pick_fraction(sweep: Sweep, entry: PaperTable, kind: str, notes: list[str]) -> float:
    """The table's teacher fraction when the sweep has it, else the nearest choice: the
    largest one for a full teacher, the smallest partial one for a partial teacher."""
    fractions = _fractions(sweep, kind)
    if not fractions:
        raise UserError(
            f"sweep {sweep.name}: no {kind} stages in {sweep.workdir / 'plan.json'}; "
            f"run `clapsweep run` on the sweep first"
        )
    want = entry.teacher_fraction
    if want in fractions:
        return want
    if want < 1.0:
        below = [f for f in fractions if f < 1.0]
        if not below:
            raise UserError(
                f"sweep {sweep.name}: Table {entry.number} needs a teacher trained on part of "
                f"the pairs, but grid.teacher_fraction is {fractions}; add {want:g} and run "
                "the sweep"
            )
        chosen = below[0]
    else:
        chosen = fractions[-1]
    notes.append(
        f"teacher fraction {chosen:g} stands in for the paper's {want:g} "
        f"(the sweep has {', '.join(f'{f:g}' for f in fractions)})"
    )
    return chosen


def _shown(entry: PaperTable, user: dict[str, Any], fraction: float) -> bool:
    """Whether a stage's user is a row of the table: the table's baselines, students at its
    teacher fraction (baselines the sweep does not train count at every fraction)."""
    row = user["row"]
    if row in tables.BASELINES and row not in entry.baselines:
        return False
    return row in tables.ANY_FRACTION or user.get("fraction") == fraction


def _row_order(sweep: Sweep) -> list[str]:
    """Sweep row names: the teacher, the spec's rows in order, then any other planned rows."""
    names = ["teacher"] + [r["name"] for r in (sweep.spec.get("grid") or {}).get("rows", [])]
    for stage in sweep.stages.values():
        for u in stage["users"]:
            if u["row"] not in names:
                names.append(u["row"])
    return names


def _norm(name: str) -> str:
    return "".join(name.split()).upper()


def _cell(sweep: Sweep, entries: dict[Any, str], extract: Callable[[dict], float | None]) -> Cell:
    """Pool one row's seeds for one column; entries maps seed -> the stage holding its value."""
    cell = Cell()
    problems: list[tuple[Any, str]] = []
    for seed in sorted(entries, key=lambda s: (s is None, s)):
        state, payload = sweep.state(entries[seed])
        value = extract(payload) if state == "done" else None
        if value is None:
            problems.append((seed, payload if state == "missing" else "no result in its meta.json"))
        else:
            cell.values.append(value)
            cell.seeds.append(seed)
    if not entries:
        cell.missing = "not planned"
    elif not cell.values:
        reasons = [r for _, r in problems]
        failed = [r for r in reasons if r.startswith("failed: ")]
        cell.missing = failed[0] if failed else reasons[0]
    elif problems:
        shown = "; ".join(f"seed {s}: {r}" for s, r in problems)
        cell.incomplete = f"{len(problems)} of {len(entries)} seeds without a value ({shown})"
    return cell


def _no_results(sweep: Sweep, number: int) -> None:
    raise UserError(
        f"sweep {sweep.name} has no results for Table {number} yet in {sweep.workdir}: "
        f"run `clapsweep run SWEEP.yaml` (and `clapsweep status SWEEP.yaml` to follow it)"
    )


def _check_news(sweep: Sweep, number: int, rows: list[Row]) -> None:
    if not any(_has_news(c) for r in rows for c in r.cells.values()):
        _no_results(sweep, number)


# ----------------------------------------------------------------------------- accuracy


@builder(tables.ACCURACY)
def accuracy_table(sweep: Sweep, entry: PaperTable, by: str | None, folds: bool) -> Table:
    notes: list[str] = []
    fraction = _pick_fraction(sweep, entry, "eval", notes)
    index = _eval_index(sweep, entry, fraction)
    columns = tables.columns(entry)
    if entry.columns is None:  # the sweep's own tasks (data.custom_tasks) get columns too
        columns += [t for t in _sweep_tasks(sweep) if t not in columns]
    rows = _accuracy_rows(sweep, entry, index, columns)
    if by is not None:
        rows = _pivot(sweep, rows, by, fraction)
    table = Table(
        number=entry.number,
        sweep=sweep.name,
        workdir=str(sweep.workdir),
        title=entry.title,
        columns=columns,
        unit=PERCENT,
        rows=rows,
        notes=notes,
        fraction=fraction,
    )
    if folds:
        table.folds = _fold_tables(sweep, table, index)
        if not table.folds:
            notes.append("--folds: the finished eval stages hold no per-fold accuracies")
    _check_news(sweep, entry.number, rows)
    return table


def _eval_index(sweep: Sweep, entry: PaperTable, fraction: float) -> Index:
    """(row, task) -> seed -> the eval stage holding that accuracy."""
    index: Index = {}
    for stage in sweep.stages.values():
        if stage["kind"] != "eval":
            continue
        for u in stage["users"]:
            if _shown(entry, u, fraction):
                for task in u.get("tasks", []):
                    index.setdefault((u["row"], task), {})[u.get("seed")] = stage["name"]
    return index


def _accuracy_rows(sweep: Sweep, entry: PaperTable, index: Index, columns: list[str]) -> list[Row]:
    """The paper's rows in its order (from the sweep where it has them), then extra rows."""
    present = [r for r in _row_order(sweep) if any(k[0] == r for k in index)]
    rows: list[Row] = []
    matched: set[str] = set()
    for paper_row in entry.rows:
        found = next((r for r in present if _norm(r) == _norm(paper_row.key)), None)
        if found is None:
            rows.append(_paper_only(paper_row, columns))
            continue
        matched.add(found)
        rows.append(_sweep_row(sweep, index, found, paper_row, columns))
    rows += [_sweep_row(sweep, index, n, None, columns) for n in present if n not in matched]
    return rows


def _sweep_row(
    sweep: Sweep, index: Index, name: str, paper_row: PaperRow | None, columns: list[str]
) -> Row:
    row = Row(
        name=paper_row.label if paper_row else name,
        key=name,
        source="sweep",
        paper_label=paper_row.label if paper_row else None,
    )
    for task in columns:
        entries = index.get((name, task), {})
        cell = _cell(sweep, entries, _accuracy_getter(task))
        if not entries and task not in _sweep_tasks(sweep):
            cell.missing = "task not in this sweep"
        cell.paper = paper_row.values.get(task) if paper_row else None
        row.cells[task] = cell
    return row


def _accuracy_getter(task: str) -> Callable[[dict], float | None]:
    def get(result: dict) -> float | None:
        return _number(_task_entry(result, task).get("accuracy"), 100.0)

    return get


def _sweep_tasks(sweep: Sweep) -> list[str]:
    return list((sweep.spec.get("data") or {}).get("tasks") or tasks.names())


def _paper_only(paper_row: PaperRow, columns: list[str]) -> Row:
    cells = {c: Cell(paper=paper_row.values.get(c), missing="paper only") for c in columns}
    return Row(paper_row.label, paper_row.key, "paper only", paper_row.label, None, cells)


def _pivot(sweep: Sweep, rows: list[Row], by: str, fraction: float | None = None) -> list[Row]:
    """--by FIELD: label each student row with its value and group the rows by value; the
    baselines stay first, rows the paper alone has go last. Rows are never merged, so
    different settings stay apart."""
    head, groups, tail = [], {}, []
    for row in rows:
        if row.key in tables.BASELINES:
            head.append(row)
        elif row.source != "sweep":
            tail.append(row)
        else:
            value = row_setting(sweep, row.key, by, fraction)
            row.setting = {by: value}
            row.name = f"{row.name} [{by}={_setting_text(value)}]"
            groups.setdefault(_setting_text(value), []).append(row)
    return head + [r for group in groups.values() for r in group] + tail


def _fold_tables(sweep: Sweep, table: Table, index: Index) -> list[FoldTable]:
    out = []
    for task in table.columns:
        folds = _folds_of(sweep, index, task)
        if not folds:
            continue
        rows = []
        for row in table.rows:
            if row.source != "sweep":
                continue
            entries = index.get((row.key, task), {})
            cells = {fold: _cell(sweep, entries, _fold_getter(task, fold)) for fold in folds}
            rows.append((row.name, cells))
        out.append(FoldTable(task, folds, rows))
    return out


def _folds_of(sweep: Sweep, index: Index, task: str) -> list[str]:
    """The folds the finished eval stages of `task` hold, in natural order."""
    folds: list[str] = []
    for (_, t), entries in index.items():
        if t != task:
            continue
        for name in entries.values():
            state, result = sweep.state(name)
            per_fold = _task_entry(result, task).get("per_fold") if state == "done" else None
            if isinstance(per_fold, dict):
                folds += [fold for fold in per_fold if fold not in folds]
    return sorted(folds, key=fold_order)  # meta.json stores them sorted as text: 1, 10, 2, ...


def fold_order(fold: str) -> tuple[bool, list[str | int]]:
    """Sort key: numeric folds numerically (2 before 10), then named ones, also naturally."""
    # re.split with a group alternates text and digit runs, so the types line up by position.
    parts = [int(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+)", fold))]
    return not fold.isdigit(), parts


def _fold_getter(task: str, fold: str) -> Callable[[dict], float | None]:
    def get(result: dict) -> float | None:
        per_fold = _task_entry(result, task).get("per_fold")
        return _number(per_fold.get(fold), 100.0) if isinstance(per_fold, dict) else None

    return get


# ----------------------------------------------------------------------------- pairs


@builder(tables.PAIRS)
def pairs_table(sweep: Sweep, entry: PaperTable, by: str | None, folds: bool) -> Table:
    """Improvement-Set sizes: the paper's rows first, then one row per distinct curation
    (rows that read the very same curate stages, as DU and DU+SL, share one)."""
    notes: list[str] = []
    fraction = _pick_fraction(sweep, entry, "curate", notes)
    columns = tables.columns(entry)
    index = _curate_index(sweep, entry, fraction)
    paper_rows = [_paper_set_row(p, columns) for p in entry.rows]
    published = entry.rows[0].values if entry.rows else {}
    rows = _count_rows(sweep, index, columns, published, by, fraction)
    if by is not None:
        rows = sorted(rows, key=lambda r: _setting_text((r.setting or {})[by]))
    rows = paper_rows + rows
    table = Table(entry.number, sweep.name, str(sweep.workdir), entry.title, columns, PAIRS,
                  rows, notes)  # fmt: skip
    table.fraction = fraction
    _check_news(sweep, entry.number, rows)
    return table


def _curate_index(sweep: Sweep, entry: PaperTable, fraction: float) -> Index:
    """row -> column -> seed -> the curate stage holding that Improvement-Set."""
    index: Index = {}
    for stage in sweep.stages.values():
        if stage["kind"] != "curate":
            continue
        config = stage["config"]
        col = tables.set_column(config["strategy"], config.get("task"))
        for u in stage["users"]:
            if _shown(entry, u, fraction):
                index.setdefault(u["row"], {}).setdefault(col, {})[u.get("seed")] = stage["name"]
    return index


def _paper_set_row(paper_row: PaperRow, columns: list[str]) -> Row:
    row = Row(f"Paper ({paper_row.label})", paper_row.key, "paper only", paper_row.label)
    row.cells = {c: Cell(paper=paper_row.values.get(c), missing="paper only") for c in columns}
    return row


def _count_rows(
    sweep: Sweep,
    index: Index,
    columns: list[str],
    published: dict[str, float],
    by: str | None,
    fraction: float | None = None,
) -> list[Row]:
    rows: list[Row] = []
    merged: dict[tuple, Row] = {}
    for name in _row_order(sweep):
        if name not in index:
            continue
        setting = row_setting(sweep, name, by, fraction) if by else None
        signature = (
            _setting_text(setting),
            tuple(sorted((c, tuple(sorted(e.items(), key=str))) for c, e in index[name].items())),
        )
        if signature in merged:
            row = merged[signature]
            row.key += f", {name}"
            row.name = row.key if by is None else f"{row.key} [{by}={_setting_text(setting)}]"
            continue
        row = Row(name, name, "sweep", setting={by: setting} if by else None)
        if by:
            row.name = f"{name} [{by}={_setting_text(setting)}]"
        for col in columns:
            entries = index[name].get(col)
            cell = _cell(sweep, entries, _count) if entries else Cell(missing="n/a")
            cell.paper = published.get(col)
            row.cells[col] = cell
        merged[signature] = row
        rows.append(row)
    return rows


def _count(result: dict) -> float | None:
    return _number(result.get("n_pairs"))
