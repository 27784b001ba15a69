"""The table model of `clapsweep report`: Table, Row, Cell and how their values are written.

A Cell holds the per-seed values of one (row, column) and why the others are missing; a Row
is one sweep row (or a row only the paper has); a Table is one of the paper's tables built
from a sweep (clapsweep.report.build), rendered by clapsweep.report.render and drawn by
clapsweep.report.plot. Values are percent (accuracy tables) or numbers of pairs (Table 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from clapsweep.recipe.tables import column_label
from clapsweep.report.stats import ci_half_width

PERCENT, PAIRS = "percent", "pairs"


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

    @property
    def ci95(self) -> float | None:
        """Half the width of the 95 % t-interval of the mean; None for fewer than two values."""
        return ci_half_width(self.values)

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
    paper: bool = True  # False (--no-paper): no paper-only rows, no paper and Δ columns

    def labels(self) -> list[str]:
        return [column_label(c) for c in self.columns]

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


# ----------------------------------------------------------------------------- values


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


# ----------------------------------------------------------------------------- seeds, notes


def table_seeds(table: Table) -> list[Any]:
    """The seeds whose values are in the table (any cell, folds included), in order."""
    cells = [c for r in table.rows for c in r.cells.values()]
    cells += [c for ft in table.folds for _, cs in ft.rows for c in cs.values()]
    return sorted({s for c in cells for s in c.seeds if s is not None})  # ints (plan.json)


def seeds_text(table: Table) -> str:
    """'seeds 0, 1, 2', 'seed 3', or 'no seeds' when no seeded value is in the table."""
    return seeds_phrase(table_seeds(table))


def seeds_phrase(seeds: list[Any]) -> str:
    if not seeds:
        return "no seeds"
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(str(s) for s in seeds)


def caption(table: Table) -> str:
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
            out.append(f"{row.name}: {seeds_phrase(mine)} only (the table: {seeds_text(table)})")
    return out


def _incomplete_notes(table: Table) -> list[str]:
    out = []
    for row in table.rows:
        for col, cell in row.cells.items():
            if cell.incomplete:
                out.append(f"† {row.name}, {column_label(col)}: {cell.incomplete}")
    return out
