"""The paper's tables from a sweep's results: `clapsweep report --table 1|2|3`.

Reads a sweep's work directory (spec.yaml, plan.json and the store's stages/), never runs
anything. Tables 2 and 3 hold zero-shot accuracy in percent per task: for each sweep row at the
table's teacher fraction, the mean, sample standard deviation (n - 1) and number of seeds of
the eval stages' accuracies, beside the paper's number and the difference. Table 1 holds the
Improvement-Set sizes (number of pairs) of the curate stages.

Rows are keyed by their sweep row name and matched to the paper's rows by that name (spaces
and case ignored); other rows become extra rows without a paper number. A paper row the sweep
cannot produce shows the paper's number alone ("paper only"). A cell without results says why
("failed: ...", "pending", "not run"); values are never filled in, and different settings are
never averaged together: a cell only pools the seeds of one row at one fraction.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from clapsweep import paper_numbers as paper
from clapsweep.errors import UserError
from clapsweep.store import Store

FORMATS = ("text", "md", "latex", "csv", "json")
BY_FIELDS = ("sigma", "sigma_ds", "beta", "replay", "soft_target")
BASELINES = ("teacher", "msclap")
PERCENT, PAIRS = "percent", "pairs"


# ----------------------------------------------------------------------------- data model


@dataclass
class Cell:
    """One (row, column): the per-seed values that exist and why the others do not."""

    values: list[float] = field(default_factory=list)  # percent or pairs, one per seed
    seeds: list[Any] = field(default_factory=list)
    paper: float | None = None
    missing: str | None = None  # why there is no value at all
    incomplete: str | None = None  # some seeds have a value, these do not (and why)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return sum(self.values) / self.n if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n - 1); None for fewer than two values."""
        if self.n < 2:
            return None
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (self.n - 1))

    def diff(self) -> float | None:
        return None if self.mean is None or self.paper is None else self.mean - self.paper

    def to_json(self, with_diff: bool) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "std": self.std,
            "n": self.n,
            "paper": self.paper,
            "diff": self.diff() if with_diff else None,
            "missing": self.missing,
            "incomplete": self.incomplete,
            "values": self.values,
            "seeds": self.seeds,
        }


@dataclass
class Row:
    name: str  # as shown
    key: str  # the sweep row name(s), or the paper row's key for a paper-only row
    source: str  # "sweep" or "paper only"
    paper_label: str | None = None  # the row's name in the paper, if it has one
    setting: dict[str, Any] | None = None  # --by: {field: value}
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass
class FoldTable:
    """--folds: per-fold accuracy (mean over seeds) of one task."""

    task: str
    columns: list[str]
    rows: list[tuple[str, dict[str, Cell]]]


@dataclass
class Table:
    number: int
    sweep: str
    workdir: str
    title: str
    columns: list[str]  # column keys: tasks, or Table 1's "du", "<task>/ds", "<task>/ads"
    unit: str  # percent | pairs
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    fraction: float | None = None
    synth: dict[str, Any] | None = None  # data.synth of the sweep, if synthworld
    folds: list[FoldTable] = field(default_factory=list)

    def labels(self) -> list[str]:
        return [paper.column_label(c) for c in self.columns]

    def best(self) -> dict[str, int]:
        """Per column, the index of the sweep row with the highest mean (accuracy only)."""
        out: dict[str, int] = {}
        if self.unit != PERCENT:
            return out
        for col in self.columns:
            scored = [(r.cells[col].mean, i) for i, r in enumerate(self.rows) if r.cells[col].n]
            if scored:
                out[col] = max(scored, key=lambda t: (t[0], -t[1]))[1]
        return out


# ----------------------------------------------------------------------------- the sweep


@dataclass
class Sweep:
    """A sweep's records: the resolved spec as plain data, the plan's stages, the store."""

    name: str
    workdir: Path
    spec: dict[str, Any]
    stages: dict[str, dict[str, Any]]  # plan.json's stages by name
    store: Store
    locked: bool = False
    _state: dict[str, tuple[str, Any]] = field(default_factory=dict)

    def state(self, name: str) -> tuple[str, Any]:
        """("done", result) or ("missing", reason); a failed input makes its users fail."""
        if name not in self._state:
            self._state[name] = self._find_state(name)
        return self._state[name]

    def _find_state(self, name: str) -> tuple[str, Any]:
        meta = self.store.meta(name)
        if meta is not None:
            return "done", meta.get("result") or {}
        record = self.store.failure(name)
        if record is not None:
            first = (record.get("message") or "").strip().splitlines() or ["(no message)"]
            return "missing", f"failed: {first[0]}"
        for input_name in self.stages.get(name, {}).get("inputs", {}).values():
            state, reason = self.state(input_name)
            if state == "missing" and reason.startswith("failed: "):
                if " (in " not in reason:
                    reason += f" (in {input_name.split('-')[0]} stage)"
                return "missing", reason
        return "missing", "pending" if self.locked else "not run"

    def failures(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for name in self.stages:
            record = self.store.failure(name)
            if record is not None and not self.store.is_done(name):
                out.append((name, record))
        return out

    def tracking_enabled(self) -> bool:
        wandb = (self.spec.get("tracking") or {}).get("wandb") or {}
        return bool(wandb.get("enabled", True)) and wandb.get("mode") != "disabled"


def check_table(number: int) -> None:
    if number not in (1, 2, 3):
        raise UserError(
            f"--table {number}: the paper has Tables 1, 2 and 3 "
            "(1: Improvement-Set sizes, 2: full-data teacher, 3: 10% teacher); use one of them"
        )


def load_sweep(path: str | Path) -> Sweep:
    """A sweep from its YAML file (its workdir is read) or from its work directory."""
    from clapsweep.sweep.spec import load_spec

    path = Path(path)
    from_yaml: dict[str, Any] | None = None
    if path.is_dir():
        workdir = path
    elif path.is_file():
        spec = load_spec(path)
        workdir = Path(spec.workdir)
        from_yaml = dataclasses.asdict(spec)
    else:
        raise UserError(f"--sweep {path}: no such sweep file or work directory")
    spec_file, plan_file = workdir / "spec.yaml", workdir / "plan.json"
    if spec_file.is_file():
        data = yaml.safe_load(spec_file.read_text()) or {}
    else:
        data = from_yaml or {}
    name = data.get("name") or workdir.name
    if not plan_file.is_file():
        raise UserError(
            f"sweep {name}: no results in {workdir} (no plan.json); run "
            f"`clapsweep run {path if from_yaml else 'SWEEP.yaml'}` first"
        )
    plan = json.loads(plan_file.read_text())
    stages = {s["name"]: s for s in plan.get("stages", [])}
    store = Store(workdir)
    return Sweep(plan.get("sweep", name), workdir.resolve(), data, stages, store, store.is_locked())


def find_sweep(number: int, root: str | Path = "runs") -> Path:
    """The work directory under `root` with the newest plan.json whose spec lists the table."""
    root = Path(root)
    found: list[tuple[float, Path]] = []
    for plan_file in root.glob("*/plan.json") if root.is_dir() else []:
        try:
            data = yaml.safe_load((plan_file.parent / "spec.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if number in (data.get("tables") or []):
            found.append((plan_file.stat().st_mtime, plan_file.parent))
    if not found:
        raise UserError(
            f"no sweep under {root}/ declares table {number} (`tables: [{number}]` in its "
            f"spec) and has been run; pass --sweep SWEEP.yaml or its work directory, or "
            f"--workdir-root where your sweeps' folders are"
        )
    return max(found)[1]


# ----------------------------------------------------------------------------- building


def build_table(sweep: Sweep, number: int, by: str | None = None, folds: bool = False) -> Table:
    """Aggregate the sweep's results into the paper's Table `number`."""
    check_table(number)
    if by is not None and by not in BY_FIELDS:
        raise UserError(f"--by {by}: expected one of {', '.join(BY_FIELDS)}")
    if number == 1:
        table = _counts_table(sweep, by)
    else:
        table = _accuracy_table(sweep, number, by, folds)
    synth = (sweep.spec.get("data") or {}).get("synth")
    if synth:
        table.synth = synth
        table.notes.append(
            f"data: synthworld (scale {synth.get('scale')}), generated offline; the paper's "
            "numbers come from the real datasets and are shown for orientation only"
        )
    for name, record in sweep.failures():
        first = (record.get("message") or "").strip().splitlines() or [""]
        table.notes.append(f"failed stage {name}: {first[0]} (log: {record.get('log')})")
    return table


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


def _pick_fraction(sweep: Sweep, number: int, kind: str, notes: list[str]) -> float:
    """Table 2 (and 1) use the full teacher, Table 3 the 10% one; else the nearest choice."""
    fractions = _fractions(sweep, kind)
    if not fractions:
        raise UserError(
            f"sweep {sweep.name}: no {kind} stages in {sweep.workdir / 'plan.json'}; "
            f"run `clapsweep run` on the sweep first"
        )
    want = 0.1 if number == 3 else 1.0
    if want in fractions:
        return want
    if number == 3:
        below = [f for f in fractions if f < 1.0]
        if not below:
            raise UserError(
                f"sweep {sweep.name}: Table 3 needs a teacher trained on part of the pairs, but "
                f"grid.teacher_fraction is {fractions}; add 0.1 and run the sweep"
            )
        chosen = below[0]
    else:
        chosen = fractions[-1]
    notes.append(
        f"teacher fraction {chosen:g} stands in for the paper's {want:g} "
        f"(the sweep has {', '.join(f'{f:g}' for f in fractions)})"
    )
    return chosen


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


def row_setting(sweep: Sweep, row: str, name: str) -> Any:
    """The effective value of a row field: the row's own, else `student` over `train`."""
    if row in BASELINES:
        return None
    spec_rows = {r["name"]: r for r in (sweep.spec.get("grid") or {}).get("rows", [])}
    value = (spec_rows.get(row) or {}).get(name)
    if value is None and name in ("beta", "replay", "soft_target"):
        merged = {**(sweep.spec.get("train") or {}), **(sweep.spec.get("student") or {})}
        value = merged.get(name)
    if isinstance(value, dict) and len(set(value.values())) == 1:
        value = next(iter(value.values()))
    return value


def _setting_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ",".join(f"{k}:{v:g}" for k, v in value.items())
    return f"{value:g}" if isinstance(value, float) else str(value)


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


def _accuracy_table(sweep: Sweep, number: int, by: str | None, folds: bool) -> Table:
    notes: list[str] = []
    fraction = _pick_fraction(sweep, number, "eval", notes)
    # (row, task) -> seed -> eval stage
    index: dict[tuple[str, str], dict[Any, str]] = {}
    for stage in sweep.stages.values():
        if stage["kind"] != "eval":
            continue
        for u in stage["users"]:
            if u["row"] != "msclap" and u.get("fraction") != fraction:
                continue
            if u["row"] == "msclap" and number != 2:
                continue
            for task in u.get("tasks", []):
                index.setdefault((u["row"], task), {})[u.get("seed")] = stage["name"]
    present = [r for r in _row_order(sweep) if any(k[0] == r for k in index)]
    columns = list(paper.TASKS)

    def extract(task: str) -> Callable[[dict], float | None]:
        def get(result: dict) -> float | None:
            acc = (result.get(task) or {}).get("accuracy")
            return None if acc is None else 100.0 * float(acc)

        return get

    def sweep_row(name: str, paper_row: paper.PaperRow | None) -> Row:
        row = Row(
            name=paper_row.label if paper_row else name,
            key=name,
            source="sweep",
            paper_label=paper_row.label if paper_row else None,
        )
        for task in columns:
            entries = index.get((name, task), {})
            cell = _cell(sweep, entries, extract(task))
            if not entries and task not in _sweep_tasks(sweep):
                cell.missing = "task not in this sweep"
            cell.paper = paper_row.values.get(task) if paper_row else None
            row.cells[task] = cell
        return row

    rows: list[Row] = []
    matched: set[str] = set()
    for paper_row in paper.accuracy_rows(number):
        found = next((r for r in present if _norm(r) == _norm(paper_row.key)), None)
        if found is None:
            rows.append(_paper_only(paper_row, columns))
            continue
        matched.add(found)
        rows.append(sweep_row(found, paper_row))
    rows += [sweep_row(name, None) for name in present if name not in matched]
    if by is not None:
        rows = _pivot(sweep, rows, by)
    table = Table(
        number=number,
        sweep=sweep.name,
        workdir=str(sweep.workdir),
        title=paper.TITLES[number],
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
    if not any(
        c.n or (c.missing or "").startswith("failed") for r in rows for c in r.cells.values()
    ):
        _no_results(sweep, number)
    return table


def _sweep_tasks(sweep: Sweep) -> list[str]:
    return list((sweep.spec.get("data") or {}).get("tasks") or paper.TASKS)


def _paper_only(paper_row: paper.PaperRow, columns: list[str]) -> Row:
    cells = {c: Cell(paper=paper_row.values.get(c), missing="paper only") for c in columns}
    return Row(paper_row.label, paper_row.key, "paper only", paper_row.label, None, cells)


def _pivot(sweep: Sweep, rows: list[Row], by: str) -> list[Row]:
    """--by FIELD: label each student row with its value and group the rows by value; the
    baselines stay first, rows the paper alone has go last. Rows are never merged, so
    different settings stay apart."""
    head, groups, tail = [], {}, []
    for row in rows:
        if row.key in BASELINES:
            head.append(row)
        elif row.source != "sweep":
            tail.append(row)
        else:
            value = row_setting(sweep, row.key, by)
            row.setting = {by: value}
            row.name = f"{row.name} [{by}={_setting_text(value)}]"
            groups.setdefault(_setting_text(value), []).append(row)
    return head + [r for group in groups.values() for r in group] + tail


def _fold_tables(
    sweep: Sweep, table: Table, index: dict[tuple[str, str], dict[Any, str]]
) -> list[FoldTable]:
    out = []
    for task in table.columns:
        folds: list[str] = []
        for (_, t), entries in index.items():
            if t != task:
                continue
            for name in entries.values():
                state, result = sweep.state(name)
                if state == "done":
                    for fold in (result.get(task) or {}).get("per_fold") or {}:
                        if fold not in folds:
                            folds.append(fold)
        if not folds:
            continue
        rows = []
        for row in table.rows:
            if row.source != "sweep":
                continue
            entries = index.get((row.key, task), {})
            cells = {}
            for fold in folds:
                cells[fold] = _cell(sweep, entries, _fold_getter(task, fold))
            rows.append((row.name, cells))
        out.append(FoldTable(task, folds, rows))
    return out


def _fold_getter(task: str, fold: str) -> Callable[[dict], float | None]:
    def get(result: dict) -> float | None:
        acc = ((result.get(task) or {}).get("per_fold") or {}).get(fold)
        return None if acc is None else 100.0 * float(acc)

    return get


def _counts_table(sweep: Sweep, by: str | None) -> Table:
    notes: list[str] = []
    fraction = _pick_fraction(sweep, 1, "curate", notes)
    columns = list(paper.TABLE1_COLUMNS)
    # row -> column -> seed -> curate stage
    index: dict[str, dict[str, dict[Any, str]]] = {}
    for stage in sweep.stages.values():
        if stage["kind"] != "curate":
            continue
        config = stage["config"]
        col = "du" if config["strategy"] == "du" else f"{config['task']}/{config['strategy']}"
        for u in stage["users"]:
            if u.get("fraction") == fraction:
                index.setdefault(u["row"], {}).setdefault(col, {})[u.get("seed")] = stage["name"]

    def count(result: dict) -> float | None:
        return None if result.get("n_pairs") is None else float(result["n_pairs"])

    paper_row = Row("Paper (Table 1)", "paper", "paper only", "Table 1")
    paper_row.cells = {c: Cell(paper=paper.TABLE1[c], missing="paper only") for c in columns}
    rows = [paper_row]
    # Rows that read the very same curate stages (DU and DU+SL) share one table row.
    merged: dict[tuple, Row] = {}
    for name in _row_order(sweep):
        if name not in index:
            continue
        setting = row_setting(sweep, name, by) if by else None
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
            cell = _cell(sweep, entries, count) if entries else Cell(missing="n/a")
            cell.paper = paper.TABLE1[col]
            row.cells[col] = cell
        merged[signature] = row
        rows.append(row)
    if by is not None:
        rows = rows[:1] + sorted(rows[1:], key=lambda r: _setting_text((r.setting or {})[by]))
    table = Table(1, sweep.name, str(sweep.workdir), paper.TITLES[1], columns, PAIRS, rows, notes)
    table.fraction = fraction
    if not any(
        c.n or (c.missing or "").startswith("failed") for r in rows for c in r.cells.values()
    ):
        _no_results(sweep, 1)
    return table


def _no_results(sweep: Sweep, number: int) -> None:
    raise UserError(
        f"sweep {sweep.name} has no results for Table {number} yet in {sweep.workdir}: "
        f"run `clapsweep run SWEEP.yaml` (and `clapsweep status SWEEP.yaml` to follow it)"
    )


# ----------------------------------------------------------------------------- rendering


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == PERCENT:
        return f"{value:.1f}"
    # Pair counts as the paper writes them: 15.6e3 -> 15.6k, 0.3e6 -> 0.30M.
    if abs(value) >= 1e5:
        return f"{value / 1e6:.2f}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def cell_text(cell: Cell, unit: str, width: int = 0) -> str:
    """'83.0 ± 3.6 (n=3)', '83.0 (n=1)', or the reason; width > 0 shortens reasons."""
    if cell.n == 0:
        reason = cell.missing or ""
        return reason if not width or len(reason) <= width else reason[: width - 1] + "…"
    text = fmt_value(cell.mean, unit)
    if cell.std is not None:
        text += f" ± {fmt_value(cell.std, unit)}"
    return text + f" (n={cell.n})" + ("†" if cell.incomplete else "")


def diff_text(cell: Cell, unit: str) -> str:
    d = cell.diff()
    return "" if d is None or unit != PERCENT else f"{d:+.1f}"


def grid(table: Table, width: int = 40) -> tuple[list[str], list[list[str]]]:
    """Header and body as plain strings: per column ours, paper and (accuracy) the difference."""
    headers = ["Model"]
    for label in table.labels():
        headers += [label, "paper"] + (["Δ"] if table.unit == PERCENT else [])
    body = []
    for row in table.rows:
        line = [row.name]
        for col in table.columns:
            cell = row.cells[col]
            line += [cell_text(cell, table.unit, width), fmt_value(cell.paper, table.unit)]
            if table.unit == PERCENT:
                line.append(diff_text(cell, table.unit))
        body.append(line)
    return headers, body


def _caption(table: Table) -> str:
    where = f"sweep {table.sweep}"
    if table.fraction is not None:
        where += f", teacher fraction {table.fraction:g}"
    stat = "mean ± sample std over seeds (n seeds)"
    return f"{table.title}; {where}; {stat}"


def _incomplete_notes(table: Table) -> list[str]:
    out = []
    for row in table.rows:
        for col, cell in row.cells.items():
            if cell.incomplete:
                out.append(f"† {row.name}, {paper.column_label(col)}: {cell.incomplete}")
    return out


def render_text(table: Table, out: TextIO, tty: bool | None = None) -> None:
    """A rich table on a terminal, aligned plain text otherwise."""
    tty = out.isatty() if tty is None else tty
    sections = [(_caption(table), *grid(table), table.best())]
    for ft in table.folds:
        headers = ["Model"] + [f"fold {f}" for f in ft.columns]
        body = [
            [name] + [cell_text(cells[f], PERCENT, 24) for f in ft.columns]
            for name, cells in ft.rows
        ]
        sections.append(
            (f"Per-fold accuracy, {paper.column_label(ft.task)} (%)", headers, body, {})
        )
    notes = table.notes + _incomplete_notes(table)
    if tty:
        from rich.console import Console
        from rich.table import Table as RichTable
        from rich.text import Text

        # A real terminal gives its width; other streams get room for the whole table.
        console = Console(file=out, width=None if out.isatty() else 200)
        for title, headers, body, best in sections:
            rt = RichTable(title=title, title_justify="left")
            for i, h in enumerate(headers):
                rt.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
            step = 3 if table.unit == PERCENT else 2
            bold = {1 + step * table.columns.index(c) for c in best}
            for r, line in enumerate(body):
                cells = []
                for k, text in enumerate(line):
                    style = ""
                    if headers[k] == "paper":
                        style = "dim"
                    elif headers[k] == "Δ" and text:
                        style = "green" if text.startswith("+") else "red"
                    elif k in bold and best.get(table.columns[(k - 1) // step]) == r:
                        style = "bold"
                    elif text.startswith(("failed", "not run", "pending")):
                        style = "yellow"
                    cells.append(Text(text, style=style))
                rt.add_row(*cells)
            console.print(rt)
        for note in notes:
            console.print(f"note: {note}", markup=False, highlight=False)
        return
    for title, headers, body, _ in sections:
        out.write(title + "\n")
        widths = [max(len(x) for x in col) for col in zip(headers, *body, strict=True)]
        for line in [headers, *body]:
            cells = [line[0].ljust(widths[0])] + [
                c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)
            ]
            out.write("  ".join(cells).rstrip() + "\n")
        out.write("\n")
    for note in notes:
        out.write(f"note: {note}\n")


def render_md(table: Table) -> str:
    lines = [f"**{_caption(table)}**", ""]
    headers, body = grid(table, width=0)
    best = table.best()
    step = 3 if table.unit == PERCENT else 2
    for r, line in enumerate(body):
        for col, best_row in best.items():
            if best_row == r:
                k = 1 + step * table.columns.index(col)
                line[k] = f"**{line[k]}**"
    lines += _md_lines(headers, body)
    for ft in table.folds:
        lines += ["", f"Per-fold accuracy, {paper.column_label(ft.task)} (%)", ""]
        body = [
            [name] + [cell_text(cells[f], PERCENT) for f in ft.columns] for name, cells in ft.rows
        ]
        lines += _md_lines(["Model"] + [f"fold {f}" for f in ft.columns], body)
    notes = table.notes + _incomplete_notes(table)
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _md_lines(headers: list[str], body: list[list[str]]) -> list[str]:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    out = ["| " + " | ".join(esc(h) for h in headers) + " |"]
    out.append("|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|")
    out += ["| " + " | ".join(esc(c) for c in line) + " |" for line in body]
    return out


_LATEX_ESCAPES = {c: "\\" + c for c in "&%$#_{}"} | {"~": r"\textasciitilde{}", "^": r"\^{}"}


def latex_escape(text: str) -> str:
    text = text.replace("\\", r"\textbackslash{}")
    return (
        "".join(_LATEX_ESCAPES.get(c, c) for c in text)
        .replace("±", r"$\pm$")
        .replace("†", r"$^\dagger$")
    )


def render_latex(table: Table) -> str:
    """A booktabs table: per column 'Ours' (mean$\\pm$std, best in bold) and 'Paper'."""
    best = table.best()
    max_n = max((c.n for r in table.rows for c in r.cells.values()), default=0)
    k = len(table.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + latex_escape(_caption(table)).replace("(n seeds)", f"(n={max_n})") + "}",
        r"\begin{tabular}{l" + " rr" * k + "}",
        r"\toprule",
        " & ".join(
            ["Model"] + [r"\multicolumn{2}{c}{" + latex_escape(x) + "}" for x in table.labels()]
        )
        + r" \\",
        " ".join(rf"\cmidrule(lr){{{2 + 2 * i}-{3 + 2 * i}}}" for i in range(k)),
        " & ".join([""] + ["Ours", "Paper"] * k) + r" \\",
        r"\midrule",
    ]
    for r, row in enumerate(table.rows):
        cells = [latex_escape(row.name)]
        for col in table.columns:
            cell = row.cells[col]
            cells += [
                _latex_cell(cell, table.unit, best.get(col) == r, max_n),
                fmt_value(cell.paper, table.unit),
            ]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = table.notes + _incomplete_notes(table)
    if notes:
        lines.append(r"\par\footnotesize")
        lines += [latex_escape(n) + r"\\" for n in notes]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _latex_cell(cell: Cell, unit: str, bold: bool, max_n: int) -> str:
    if cell.n == 0:
        reason = cell.missing or ""
        return (
            "--" if reason == "paper only" else r"\emph{" + latex_escape(reason.split(":")[0]) + "}"
        )
    mean = fmt_value(cell.mean, unit)
    text = r"\textbf{" + mean + "}" if bold else mean
    if cell.std is not None:
        text += r"$\pm$" + fmt_value(cell.std, unit)
    if cell.n != max_n:
        text += rf"$^{{n={cell.n}}}$"
    if cell.incomplete:
        text += r"$^\dagger$"
    return text


CSV_FIELDS = [
    "table",
    "row",
    "column",
    "mean",
    "std",
    "n",
    "paper",
    "diff",
    "missing",
    "incomplete",
]


def flat_rows(table: Table) -> list[list[Any]]:
    """One list per (row, column), CSV_FIELDS order; per-fold cells as '<column>/fold <f>'."""
    out = []
    for row in table.rows:
        for col in table.columns:
            cell = row.cells[col]
            diff = cell.diff() if table.unit == PERCENT else None
            out.append(
                [
                    table.number,
                    row.name,
                    paper.column_label(col),
                    cell.mean,
                    cell.std,
                    cell.n,
                    cell.paper,
                    diff,
                    cell.missing,
                    cell.incomplete,
                ]
            )
    for ft in table.folds:
        for name, cells in ft.rows:
            for fold in ft.columns:
                c = cells[fold]
                label = f"{paper.column_label(ft.task)}/fold {fold}"
                out.append(
                    [
                        table.number,
                        name,
                        label,
                        c.mean,
                        c.std,
                        c.n,
                        None,
                        None,
                        c.missing,
                        c.incomplete,
                    ]
                )
    return out


def render_csv(table: Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for line in flat_rows(table):
        writer.writerow(
            ["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in line]
        )
    return buf.getvalue()


def table_json(table: Table) -> dict[str, Any]:
    with_diff = table.unit == PERCENT
    data = {
        "table": table.number,
        "title": table.title,
        "sweep": table.sweep,
        "workdir": table.workdir,
        "unit": table.unit,
        "teacher_fraction": table.fraction,
        "columns": table.columns,
        "column_labels": table.labels(),
        "rows": [
            {
                "name": r.name,
                "key": r.key,
                "source": r.source,
                "paper_row": r.paper_label,
                "setting": r.setting,
                "cells": {c: r.cells[c].to_json(with_diff) for c in table.columns},
            }
            for r in table.rows
        ],
        "notes": table.notes + _incomplete_notes(table),
    }
    if table.folds:
        data["folds"] = {
            ft.task: {
                "columns": ft.columns,
                "rows": [
                    {"name": n, "cells": {f: c[f].to_json(False) for f in ft.columns}}
                    for n, c in ft.rows
                ],
            }
            for ft in table.folds
        }
    return data


def render(table: Table, fmt: str) -> str:
    """The table as a string in `fmt` (text is the plain, non-terminal rendering)."""
    if fmt == "json":
        return json.dumps(table_json(table), indent=2) + "\n"
    if fmt == "md":
        return render_md(table)
    if fmt == "latex":
        return render_latex(table)
    if fmt == "csv":
        return render_csv(table)
    if fmt == "text":
        buf = io.StringIO()
        render_text(table, buf, tty=False)
        return buf.getvalue()
    raise UserError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")


# ----------------------------------------------------------------------------- W&B


def log_report_tables(spec: Any, tables: dict[str, tuple[list[str], list[list[Any]]]]) -> bool:
    """Log the tables to W&B through the sweep's tracker when tracking is enabled.

    Returns whether they were logged: False when tracking is off or the tracking module is
    not part of this installation (it is optional: reports work without it).
    """
    wandb = spec.tracking.wandb
    if not wandb.enabled or wandb.mode == "disabled":
        return False
    try:
        from clapsweep.sweep.tracking import WandbTracker
    except ModuleNotFoundError as e:
        if e.name != "clapsweep.sweep.tracking":
            raise
        return False
    WandbTracker(spec).log_tables(tables)
    return True


def wandb_tables(table: Table) -> dict[str, tuple[list[str], list[list[Any]]]]:
    return {f"table{table.number}": (CSV_FIELDS, flat_rows(table))}


# ----------------------------------------------------------------------------- the command


def report_command(
    number: int,
    sweep: str | None = None,
    fmt: str = "text",
    plot: str | None = None,
    by: str | None = None,
    folds: bool = False,
    workdir_root: str = "runs",
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`clapsweep report`: render Table `number` of a sweep (the newest declaring it)."""
    out, err = out or sys.stdout, err or sys.stderr
    check_table(number)
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    path = Path(sweep) if sweep else find_sweep(number, workdir_root)
    loaded = load_sweep(path)
    print(f"report: Table {number} of sweep {loaded.name} ({loaded.workdir})", file=err)
    table = build_table(loaded, number, by=by, folds=folds)
    if fmt == "text":
        render_text(table, out)
    else:
        out.write(render(table, fmt))
    out.flush()
    if plot:
        from clapsweep.plot import plot_table

        plot_table(table, plot)
        print(f"report: wrote {plot}", file=err)
    if loaded.tracking_enabled():
        _log_to_wandb(loaded, table, err)
    return 0


def _log_to_wandb(sweep: Sweep, table: Table, err: TextIO) -> None:
    from clapsweep.sweep.spec import load_spec

    spec_file = sweep.workdir / "spec.yaml"
    try:
        spec = load_spec(spec_file)
    except UserError as e:
        print(f"report: not logged to W&B: {e}", file=err)
        return
    if log_report_tables(spec, wandb_tables(table)):
        print(f"report: logged table{table.number} to W&B ({spec.tracking.wandb.mode})", file=err)
