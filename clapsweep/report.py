"""The paper's tables from a sweep's results: `clapsweep report --table 1|2|3`.

Reads a sweep's work directory (spec.yaml, plan.json and the store's stages/), never runs
anything. Tables 2 and 3 hold zero-shot accuracy in percent per task: for each sweep row at the
table's teacher fraction, the mean, sample standard deviation (n - 1) and number of seeds of
the eval stages' accuracies, beside the paper's number and the difference. Table 1 holds the
Improvement-Set sizes (number of pairs) of the curate stages.

Rows are keyed by their sweep row name and matched to the paper's rows by that name (spaces
and case ignored); other rows become extra rows without a paper number. A paper row the sweep
cannot produce shows the paper's number alone ("paper only"). A cell without results says why
("failed: ...", "pending", "not run", "damaged: <file> ...", "stale: ..."); values are never
filled in, and different settings are never averaged together: a cell only pools the seeds of
one row at one fraction. Every output says what ± is and lists the seeds that contributed.

Read-only: a damaged record never makes a traceback. A damaged spec.yaml or plan.json stops
the report with one message naming the file (`clapsweep run` rewrites it); a damaged or stale
stage is a cell without a value that says so, and a note names the file. Only `--wandb` writes
anything: the tables, to the sweep's one W&B summary run (clapsweep.sweep.tracking).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from clapsweep import paper_numbers as paper
from clapsweep.errors import UserError
from clapsweep.store import META, Store

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
    damaged: dict[str, str] = field(default_factory=dict)  # stage -> Store.problem, as met

    def state(self, name: str) -> tuple[str, Any]:
        """("done", result) or ("missing", reason); a failed input makes its users fail."""
        if name not in self._state:
            self._state[name] = self._find_state(name)
        return self._state[name]

    def _find_state(self, name: str) -> tuple[str, Any]:
        problem = self._problem(name)
        meta = self.store.meta(name) if problem is None else None
        if meta is not None:
            result = meta.get("result")
            if result is None or isinstance(result, dict):
                return "done", result or {}
            problem = f"{self.store.final(name) / META} is damaged (its result is not a mapping)"
        record = self.store.failure(name)
        if record is not None:
            return "missing", f"failed: {_first_line(record.get('message'), '(no message)')}"
        if problem is not None and problem != "not run":
            self.damaged[name] = problem
            return "missing", self._short(problem)
        for input_name in (self.stages.get(name, {}).get("inputs") or {}).values():
            state, reason = self.state(input_name)
            if state == "missing" and reason.startswith("failed: "):
                if " (in " not in reason:
                    reason += f" (in {input_name.split('-')[0]} stage)"
                return "missing", reason
        return "missing", "pending" if self.locked else "not run"

    def _problem(self, name: str) -> str | None:
        """Store.problem, also for a meta.json that parses but has the wrong shape."""
        try:
            return self.store.problem(name)
        except (AttributeError, KeyError, TypeError, ValueError):
            return f"{self.store.final(name) / META} is damaged (unexpected content)"

    def _short(self, problem: str) -> str:
        """A cell's reason: the store's, with paths relative to the work directory."""
        text = problem.replace(f"{self.workdir}/", "")
        if text.startswith("stale"):
            return text
        return "damaged: " + text.replace(" is damaged", "", 1)

    def failures(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for name in self.stages:
            record = self.store.failure(name)
            if record is not None and not self.store.is_done(name):
                out.append((name, record))
        return out


def check_table(number: int) -> None:
    if number not in (1, 2, 3):
        raise UserError(
            f"--table {number}: the paper has Tables 1, 2 and 3 "
            "(1: Improvement-Set sizes, 2: full-data teacher, 3: 10% teacher); use one of them"
        )


def load_sweep(path: str | Path) -> Sweep:
    """A sweep from its YAML file (its workdir is read) or from its work directory.

    A damaged spec.yaml or plan.json (not UTF-8, not YAML/JSON, truncated, the wrong shape)
    is a UserError naming the file; `clapsweep run` writes both anew."""
    from clapsweep.sweep.plan import load_plan
    from clapsweep.sweep.spec import load_spec

    path = Path(path)
    from_yaml: dict[str, Any] | None = None
    if path.is_dir():
        workdir = path
    elif path.is_file():
        try:
            spec = load_spec(path)
        except (OSError, ValueError) as e:  # not UTF-8 (UnicodeDecodeError), unreadable
            raise UserError(
                f"--sweep {path}: cannot read the sweep file ({_why(e)}); pass the sweep's "
                "YAML file (UTF-8 text) or its work directory"
            ) from None
        workdir = Path(spec.workdir)
        from_yaml = dataclasses.asdict(spec)
    else:
        raise UserError(f"--sweep {path}: no such sweep file or work directory")
    rerun = f"clapsweep run {path if from_yaml else 'SWEEP.yaml'}"
    spec_file, plan_file = workdir / "spec.yaml", workdir / "plan.json"
    if spec_file.is_file():
        data = read_spec_record(spec_file, rerun)
    else:
        data = from_yaml or {}
    name = data.get("name") or workdir.name
    if not plan_file.is_file():
        raise UserError(
            f"sweep {name}: no results in {workdir} (no plan.json); run `{rerun}` first"
        )
    try:
        plan = load_plan(workdir)
    except UserError:
        raise UserError(_damaged(plan_file, _json_problem(plan_file), rerun)) from None
    if plan is None:  # removed since the check above
        raise UserError(f"sweep {name}: no plan.json in {workdir}; run `{rerun}` first")
    stages = {s.name: s.to_json() for s in plan.stages.values()}
    _check_plan(plan_file, stages, rerun)
    store = Store(workdir.resolve())
    sweep_name = plan.sweep if isinstance(plan.sweep, str) and plan.sweep else str(name)
    return Sweep(sweep_name, workdir.resolve(), data, stages, store, store.is_locked())


def read_spec_record(spec_file: Path, rerun: str = "clapsweep run SWEEP.yaml") -> dict[str, Any]:
    """spec.yaml as `clapsweep run` wrote it, as plain data; UserError when it is damaged."""
    try:
        data = yaml.safe_load(spec_file.read_text())
    except (OSError, ValueError, yaml.YAMLError) as e:  # ValueError: not UTF-8
        why = "not valid YAML" if isinstance(e, yaml.YAMLError) else _why(e)
        raise UserError(_damaged(spec_file, why, rerun)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(_damaged(spec_file, "not a YAML mapping", rerun))
    for key in ("grid", "data", "tracking", "train", "student"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise UserError(_damaged(spec_file, f"{key} is not a mapping", rerun))
    rows = (data.get("grid") or {}).get("rows")
    if rows is not None and not (
        isinstance(rows, list) and all(isinstance(r, dict) and "name" in r for r in rows)
    ):
        raise UserError(_damaged(spec_file, "grid.rows is not a list of named rows", rerun))
    if data.get("name") is not None and not isinstance(data["name"], str):
        raise UserError(_damaged(spec_file, "name is not a string", rerun))
    return data


def _json_problem(path: Path) -> str:
    """Why a JSON record does not load: unreadable, not UTF-8, not JSON, or its content."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        return _why(e)
    except UnicodeDecodeError:
        return "not UTF-8 text"
    try:
        json.loads(text)
    except ValueError:
        return "not JSON; truncated?" if text.strip() else "empty"
    return "unexpected content"


def _check_plan(plan_file: Path, stages: dict[str, dict[str, Any]], rerun: str) -> None:
    """The fields the report reads from every planned stage have the types it expects."""

    def user_ok(u: Any) -> bool:
        return (
            isinstance(u, dict)
            and isinstance(u.get("row"), str)
            and isinstance(u.get("tasks", []), list)
            and _is_number(u.get("fraction"))
            and (u.get("seed") is None or isinstance(u.get("seed"), int))
        )

    for stage in stages.values():
        config, users = stage.get("config"), stage.get("users")
        ok = (
            isinstance(stage.get("kind"), str)
            and isinstance(config, dict)
            and isinstance(stage.get("inputs"), dict)
            and isinstance(users, list)
            and all(user_ok(u) for u in users)
        )
        if ok and stage["kind"] == "curate":
            ok = "strategy" in config and (config["strategy"] == "du" or "task" in config)
        if not ok:
            raise UserError(_damaged(plan_file, f"stage {stage.get('name')} is malformed", rerun))


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _damaged(path: Path, why: str, rerun: str) -> str:
    return f"{path}: damaged ({why}); run `{rerun}` to write it anew"


def _why(e: BaseException) -> str:
    if isinstance(e, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(e, OSError):
        return e.strerror or type(e).__name__
    return type(e).__name__


def _first_line(text: Any, default: str = "") -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0] if lines else default


def find_sweep(
    number: int, root: str | Path = "runs", warn: Callable[[str], None] | None = None
) -> Path:
    """The work directory under `root` with the newest plan.json whose spec lists the table.
    Work directories whose spec.yaml cannot be read are passed over (told to `warn`)."""
    root = Path(root)
    found: list[tuple[float, Path]] = []
    skipped: list[str] = []
    for plan_file in root.glob("*/plan.json") if root.is_dir() else []:
        spec_file = plan_file.parent / "spec.yaml"
        if not spec_file.is_file():
            continue
        try:
            data = read_spec_record(spec_file)
            tables = data.get("tables") or []
            declared = number in tables if isinstance(tables, list) else False
            mtime = plan_file.stat().st_mtime
        except (UserError, OSError) as e:
            skipped.append(str(e))
            continue
        if declared:
            found.append((mtime, plan_file.parent))
    for message in skipped:
        if warn is not None:
            warn(f"passed over: {message}")
    if not found:
        also = f" ({len(skipped)} work directories with a damaged spec.yaml passed over)"
        raise UserError(
            f"no sweep under {root}/ declares table {number} (`tables: [{number}]` in its "
            f"spec) and has been run{also if skipped else ''}; pass --sweep SWEEP.yaml or its "
            f"work directory, or --workdir-root where your sweeps' folders are"
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
    if isinstance(synth, dict) and synth:
        table.synth = synth
        table.notes.append(
            f"data: synthworld (scale {synth.get('scale')}), generated offline; the paper's "
            "numbers come from the real datasets and are shown for orientation only"
        )
    for name, record in sweep.failures():
        first = _first_line(record.get("message"))
        table.notes.append(f"failed stage {name}: {first} (log: {record.get('log')})")
    for name, problem in sweep.damaged.items():
        table.notes.append(
            f"stage {name} has no usable result: {problem}; `clapsweep run` recomputes it"
        )
    return table


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
            return _number(_task_entry(result, task).get("accuracy"), 100.0)

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
    if not any(_has_news(c) for r in rows for c in r.cells.values()):
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
                per_fold = _task_entry(result, task).get("per_fold") if state == "done" else None
                if isinstance(per_fold, dict):
                    for fold in per_fold:
                        if fold not in folds:
                            folds.append(fold)
        if not folds:
            continue
        folds.sort(key=fold_order)  # meta.json stores them sorted as text: 1, 10, 2, ...
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
        return _number(result.get("n_pairs"))

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
    if not any(_has_news(c) for r in rows for c in r.cells.values()):
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


def table_seeds(table: Table) -> list[Any]:
    """The seeds whose values are in the table (any cell, folds included), in order."""
    cells = [c for r in table.rows for c in r.cells.values()]
    cells += [c for ft in table.folds for _, cs in ft.rows for c in cs.values()]
    return sorted({s for c in cells for s in c.seeds if s is not None})  # ints (plan.json)


def seeds_text(table: Table) -> str:
    """'seeds 0, 1, 2', 'seed 3', or 'no seeds' when no seeded value is in the table."""
    return _seeds_phrase(table_seeds(table))


def _seeds_phrase(seeds: list[Any]) -> str:
    if not seeds:
        return "no seeds"
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(str(s) for s in seeds)


def _caption(table: Table) -> str:
    where = f"sweep {table.sweep}"
    if table.fraction is not None:
        where += f", teacher fraction {table.fraction:g}"
    stat = "mean ± sample std over seeds (n seeds)"
    return f"{table.title}; {where}; {stat}; {seeds_text(table)}"


def all_notes(table: Table) -> list[str]:
    """The table's notes, then the rows with fewer seeds, then the † cells."""
    return table.notes + _seed_notes(table) + _incomplete_notes(table)


def _seed_notes(table: Table) -> list[str]:
    """'OC, DU+SL: seeds 0, 1 only (the table has seeds 0, 1, 2)' for each row whose values
    come from other seeds than the caption's: the caption alone would claim them all."""
    seeds = table_seeds(table)
    out = []
    for row in table.rows:
        mine = sorted({s for c in row.cells.values() for s in c.seeds if s is not None})
        if mine and mine != seeds:
            out.append(f"{row.name}: {_seeds_phrase(mine)} only (the table: {seeds_text(table)})")
    return out


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
    notes = all_notes(table)
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
                    elif text.startswith(("failed", "not run", "pending", "damaged", "stale")):
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
    notes = all_notes(table)
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
        r"% requires \usepackage{booktabs}",
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
    notes = all_notes(table)
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
    "seeds",
]
STATISTIC = "mean ± sample standard deviation (n - 1) over seeds"


def _seed_list(cell: Cell) -> str | None:
    """The seeds of a cell's values, space-separated ('0 1 2'), for CSV and W&B."""
    return " ".join(str(s) for s in cell.seeds if s is not None) or None


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
                    _seed_list(cell),
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
                        _seed_list(c),
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
        "statistic": STATISTIC,
        "seeds": table_seeds(table),
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
        "notes": all_notes(table),
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
    tracker = _tracker(spec)
    if tracker is None:
        return False
    tracker.log_tables(tables)
    return True


def _tracker(spec: Any) -> Any:
    """The sweep's WandbTracker, or None when tracking is off or not installed."""
    wandb = spec.tracking.wandb
    if not wandb.enabled or wandb.mode == "disabled":
        return None
    try:
        from clapsweep.sweep.tracking import WandbTracker
    except ModuleNotFoundError as e:
        if e.name != "clapsweep.sweep.tracking":
            raise
        return None
    return WandbTracker(spec)


def wandb_tables(table: Table) -> dict[str, tuple[list[str], list[list[Any]]]]:
    return {f"table{table.number}": (CSV_FIELDS, flat_rows(table))}


def report_tracker(sweep: Sweep) -> Any:
    """For --wandb: the tracker of the sweep as its run stored it (spec.yaml); a UserError
    when that spec does not load or turns tracking off, before anything is printed."""
    from clapsweep.sweep.spec import load_spec

    spec_file = sweep.workdir / "spec.yaml"
    if not spec_file.is_file():
        raise UserError(
            f"--wandb: sweep {sweep.name} has no spec.yaml in {sweep.workdir}; "
            "`clapsweep run` writes it"
        )
    try:
        spec = load_spec(spec_file)
    except UserError as e:
        raise UserError(f"--wandb: {e}") from None
    except (OSError, ValueError) as e:
        raise UserError(f"--wandb: {_damaged(spec_file, _why(e), 'clapsweep run')}") from None
    tracker = _tracker(spec)
    if tracker is None:
        raise UserError(
            f"--wandb: W&B tracking is off for sweep {sweep.name} (tracking.wandb in "
            f"{spec_file}); enable it in the sweep file and `clapsweep run` it, or report "
            "without --wandb"
        )
    return tracker


# ----------------------------------------------------------------------------- --plot


def plot_formats() -> list[str]:
    """The file extensions --plot can write (matplotlib's, through its Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return sorted(FigureCanvasAgg.get_supported_filetypes())


def check_plot(path: str) -> None:
    """--plot FILE: matplotlib is there and knows FILE's extension; else one UserError."""
    try:
        formats = plot_formats()
    except ImportError:
        raise UserError(
            f"--plot {path}: drawing needs matplotlib, which is not installed; "
            "`pip install matplotlib`, or report without --plot"
        ) from None
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in formats:
        what = f"extension .{suffix}" if suffix else "no file extension"
        raise UserError(
            f"--plot {path}: {what} is not a figure format; name the file with one of "
            + ", ".join(f".{f}" for f in formats)
            + " (e.g. t2.png or t2.pdf)"
        )


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
    wandb: bool = False,
) -> int:
    """`clapsweep report`: render Table `number` of a sweep (the newest declaring it).

    Read-only unless asked: `plot` writes the figure, `wandb` logs the table to the sweep's
    one W&B summary run. Every check (table, format, plot file, tracking) comes before any
    output."""
    out, err = out or sys.stdout, err or sys.stderr
    check_table(number)
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    if plot:
        check_plot(plot)

    def warn(line: str) -> None:
        print(f"report: {line}", file=err)

    path = Path(sweep) if sweep else find_sweep(number, workdir_root, warn)
    loaded = load_sweep(path)
    tracker = report_tracker(loaded) if wandb else None
    print(f"report: Table {number} of sweep {loaded.name} ({loaded.workdir})", file=err)
    table = build_table(loaded, number, by=by, folds=folds)
    if fmt == "text":
        render_text(table, out)
    else:
        out.write(render(table, fmt))
    out.flush()
    if plot:
        from clapsweep.plot import plot_table

        try:
            plot_table(table, plot)
        except OSError as e:
            raise UserError(f"--plot {plot}: cannot write it ({_why(e)})") from None
        except RuntimeError as e:  # a format matplotlib lists but cannot write here (.pgf)
            Path(plot).unlink(missing_ok=True)
            raise UserError(f"--plot {plot}: matplotlib cannot write it here ({e})") from None
        print(f"report: wrote {plot}", file=err)
    if tracker is not None:
        tracker.log_tables(wandb_tables(table))
        where = tracker.wandb_dir if tracker.mode == "offline" else "W&B"
        print(
            f"report: logged table{number} to the summary run {tracker.sweep}-summary "
            f"({tracker.mode}, {where})",
            file=err,
        )
    return 0
