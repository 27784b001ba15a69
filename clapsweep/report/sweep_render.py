"""A SweepTable (clapsweep.report.sweeps: --by AXIS, --paired) as text, Markdown, LaTeX, CSV
or JSON: one section per task. Every caption says what ± is (the half width of the 95 %
t-interval over seeds) and lists the seeds that contributed; the notes follow."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, TextIO

from clapsweep.errors import UserError
from clapsweep.recipe.tasks import label
from clapsweep.report.model import Cell, fmt_value, seeds_phrase
from clapsweep.report.render import FORMATS, _md_lines, _plain_text, latex_escape, seed_list
from clapsweep.report.sweeps import ALL, PairedCell, Section, SweepTable

AXIS_STAT = "mean ± half width of the 95% CI over seeds (t-interval, n - 1 df; n seeds)"
PAIRED_AXIS_STAT = (
    "Δ = student - teacher of the same seed; mean Δ ± half width of its 95% CI over seeds "
    "(t-interval, n - 1 df; n seed pairs); p: two-sided paired t-test"
)
PAIRED_STAT = (
    "Δ = student - teacher of the same seed, in points; mean Δ, its 95% CI (t-interval, "
    "n - 1 df) and the two-sided paired t-test p over seeds; n seed pairs"
)
PAIRED_HEADERS = ["Model", "teacher", "student", "Δ", "95% CI", "p", "n"]
CSV_FIELDS = [
    "table", "task", "line", "row", "fraction", "axis", "value", "mean", "ci95_low",
    "ci95_high", "std", "n", "teacher_mean", "student_mean", "t", "p", "missing",
    "incomplete", "seeds",
]  # fmt: skip


def statistic(table: SweepTable) -> str:
    if not table.paired:
        return AXIS_STAT
    return PAIRED_AXIS_STAT if table.axis else PAIRED_STAT


# ----------------------------------------------------------------------------- cells


def signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.1f}"


def p_text(p: float | None) -> str:
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def p_label(p: float) -> str:
    """'p=0.074' or 'p<0.001'."""
    text = p_text(p)
    return "p" + (text if text.startswith("<") else "=" + text)


def ci_text(cell: Cell, width: int = 0) -> str:
    """'83.0 ± 8.9 (n=3)' (± the 95% CI's half width), '+2.0 ± 2.5 (n=3, p=0.074)' for a
    paired cell, or the reason; width > 0 shortens reasons."""
    if cell.n == 0:
        reason = cell.missing or ""
        return reason if not width or len(reason) <= width else reason[: width - 1] + "…"
    paired = isinstance(cell, PairedCell)
    text = signed(cell.mean) if paired else fmt_value(cell.mean, "percent")
    half = cell.ci95
    if half is not None:
        text += f" ± {half:.1f}"
    test = cell.test if paired else None
    p = "" if test is None or test.p is None else ", " + p_label(test.p)
    return text + f" (n={cell.n}{p})" + ("†" if cell.incomplete else "")


def _paired_line(name: str, cell: PairedCell, width: int) -> list[str]:
    if cell.n == 0:
        return [name, ci_text(cell, width)] + [""] * 5
    test = cell.test
    ci = "" if test.half_width is None else f"[{signed(test.low)}, {signed(test.high)}]"
    mean = sum(cell.teacher) / cell.n, sum(cell.student) / cell.n
    return [
        name, fmt_value(mean[0], "percent"), fmt_value(mean[1], "percent"), signed(cell.mean),
        ci, p_text(test.p), f"{cell.n}" + ("†" if cell.incomplete else ""),
    ]  # fmt: skip


# ----------------------------------------------------------------------------- sections


def title(table: SweepTable, section: Section) -> str:
    task = label(section.task)
    if table.axis is None:
        rows = f"Table {table.number} rows, " if table.number else ""
        return (
            f"{task}: {rows}each student against the teacher of its seed and fraction "
            "(zero-shot accuracy, %)"
        )
    if table.paired:
        return (
            f"{task}: Δ zero-shot accuracy against the same seed's teacher (points) by {table.axis}"
        )
    return f"{task}: zero-shot accuracy (%) by {table.axis}"


def section_seeds(section: Section) -> list[Any]:
    cells = [c for line in [*section.lines, *section.reference] for c in line.cells.values()]
    return sorted({s for c in cells for s in c.seeds if s is not None})


def caption(table: SweepTable, section: Section) -> str:
    where = f"sweep {table.sweep}"
    if table.fraction is not None:
        where += f", teacher fraction {table.fraction:g}"
    return f"{title(table, section)}; {where}; {statistic(table)}; {seeds_phrase(section_seeds(section))}"


def grid(table: SweepTable, section: Section, width: int = 40) -> tuple[list[str], list[list[str]]]:
    if table.axis is None:
        body = [_paired_line(line.name, line.cells[ALL], width) for line in section.lines]
        return list(PAIRED_HEADERS), body
    headers = ["Model"] + [f"{table.axis}={c}" for c in table.columns]
    body = [
        [line.name]
        + [ci_text(line.cells[c], width) if c in line.cells else "" for c in table.columns]
        for line in section.lines
    ]
    return headers, body


def references(table: SweepTable, section: Section) -> list[str]:
    """The baselines, which do not vary with the axis: one line each below the section."""
    return [
        f"{line.name} (does not vary with {table.axis}): {ci_text(line.cells[ALL])}"
        for line in section.reference
    ]


def all_notes(table: SweepTable) -> list[str]:
    """The table's notes, then the lines with fewer seeds than their section, then † cells."""
    out = list(table.notes)
    for section in table.sections:
        seeds = section_seeds(section)
        for line in section.lines:
            mine = sorted({s for c in line.cells.values() for s in c.seeds if s is not None})
            if mine and mine != seeds:
                out.append(
                    f"{label(section.task)}, {line.name}: {seeds_phrase(mine)} only "
                    f"(the section: {seeds_phrase(seeds)})"
                )
    for section in table.sections:
        for line in section.lines:
            for col, cell in line.cells.items():
                if cell.incomplete:
                    where = f", {table.axis}={col}" if table.axis else ""
                    out.append(f"† {label(section.task)}, {line.name}{where}: {cell.incomplete}")
    return out


# ----------------------------------------------------------------------------- formats


def render_sweep(table: SweepTable, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(sweep_json(table), indent=2) + "\n"
    if fmt == "md":
        return _md(table)
    if fmt == "latex":
        return _latex(table)
    if fmt == "csv":
        return _csv(table)
    if fmt == "text":
        buf = io.StringIO()
        render_sweep_text(table, buf, tty=False)
        return buf.getvalue()
    raise UserError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")


def render_sweep_text(table: SweepTable, out: TextIO, tty: bool | None = None) -> None:
    """A rich table per section on a terminal, aligned plain text otherwise."""
    tty = out.isatty() if tty is None else tty
    if not tty:
        for section in table.sections:
            _plain_text([(caption(table, section), *grid(table, section), {})], [], out)
            for line in references(table, section):
                out.write(f"{line}\n")
            if section.reference:
                out.write("\n")
        for note in all_notes(table):
            out.write(f"note: {note}\n")
        return
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console(file=out, width=None if out.isatty() else 200)
    for section in table.sections:
        headers, body = grid(table, section)
        rt = RichTable(title=caption(table, section), title_justify="left")
        for i, h in enumerate(headers):
            rt.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for line in body:
            rt.add_row(*line)
        console.print(rt)
        for line in references(table, section):
            console.print(line, markup=False, highlight=False)
    for note in all_notes(table):
        console.print(f"note: {note}", markup=False, highlight=False)


def _md(table: SweepTable) -> str:
    lines: list[str] = []
    for section in table.sections:
        lines += [f"**{caption(table, section)}**", ""]
        lines += _md_lines(*grid(table, section, width=0))
        lines += [""] + [f"- {r}" for r in references(table, section)]
        lines += [""] if section.reference else []
    notes = all_notes(table)
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines).rstrip("\n") + "\n"


def _latex(table: SweepTable) -> str:
    lines = [r"% requires \usepackage{booktabs}"]
    for section in table.sections:
        headers, body = grid(table, section, width=0)
        lines += [
            r"\begin{table}[t]",
            r"\centering",
            r"\caption{" + _tex(caption(table, section)) + "}",
            r"\begin{tabular}{l" + "r" * (len(headers) - 1) + "}",
            r"\toprule",
            " & ".join(_tex(h) for h in headers) + r" \\",
            r"\midrule",
        ]
        lines += [" & ".join(_tex(c) for c in line) + r" \\" for line in body]
        lines += [r"\bottomrule", r"\end{tabular}"]
        notes = references(table, section)
        if section is table.sections[-1]:
            notes += all_notes(table)
        if notes:
            lines.append(r"\par\footnotesize")
            lines += [_tex(n) + r"\\" for n in notes]
        lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    """latex_escape, and the signs text mode lacks: Δ, < (p<0.001)."""
    return latex_escape(text).replace("Δ", r"$\Delta$").replace("<", r"$<$")


def flat_rows(table: SweepTable) -> list[list[Any]]:
    """One list per (task, line, column), CSV_FIELDS order; references with no value."""
    out = []
    for section in table.sections:
        for line in [*section.lines, *section.reference]:
            for col, cell in line.cells.items():
                value = table.values.get(col) if col != ALL else None
                out.append(_flat(table, section.task, line, col, value, cell))
    return out


def _flat(table: SweepTable, task: str, line: Any, col: str, value: Any, cell: Cell) -> list:
    paired = isinstance(cell, PairedCell)
    test = cell.test if paired else None
    half = cell.ci95
    low = None if half is None else cell.mean - half
    high = None if half is None else cell.mean + half
    return [
        table.name, task, line.name, line.rows.get(col), line.fraction, table.axis, value,
        cell.mean, low, high, cell.std, cell.n,
        sum(cell.teacher) / cell.n if paired and cell.n else None,
        sum(cell.student) / cell.n if paired and cell.n else None,
        test.t if test else None, test.p if test else None,
        cell.missing, cell.incomplete, seed_list(cell),
    ]  # fmt: skip


def _csv(table: SweepTable) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for line in flat_rows(table):
        writer.writerow(
            ["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in line]
        )
    return buf.getvalue()


def _cell_json(cell: Cell) -> dict[str, Any]:
    if isinstance(cell, PairedCell):
        return cell.to_json()
    data = cell.to_json(False)
    del data["paper"], data["diff"]
    half = cell.ci95
    data["ci95"] = None if half is None else [cell.mean - half, cell.mean + half]
    return data


def _line_json(line: Any) -> dict[str, Any]:
    return {
        "name": line.name,
        "family": line.family,
        "fraction": line.fraction,
        "rows": line.rows,
        "cells": {c: _cell_json(cell) for c, cell in line.cells.items()},
    }


def sweep_json(table: SweepTable) -> dict[str, Any]:
    seeds = sorted({s for sec in table.sections for s in section_seeds(sec)})
    return {
        "table": table.name,
        "sweep": table.sweep,
        "workdir": table.workdir,
        "axis": table.axis,
        "paired": table.paired,
        "paper_table": table.number,
        "teacher_fraction": table.fraction,
        "statistic": statistic(table),
        "seeds": seeds,
        "columns": table.columns,
        "values": [table.values.get(c) for c in table.columns],
        "sections": [
            {
                "task": sec.task,
                "caption": caption(table, sec),
                "seeds": section_seeds(sec),
                "lines": [_line_json(line) for line in sec.lines],
                "reference": [_line_json(line) for line in sec.reference],
            }
            for sec in table.sections
        ],
        "notes": all_notes(table),
    }
