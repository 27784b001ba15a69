"""A report Table as text (rich on a terminal, aligned plain text otherwise), Markdown,
LaTeX (booktabs), CSV or JSON. Every output says what ± is and lists the seeds that
contributed; the notes follow the table."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, TextIO

from clapsweep.errors import UserError
from clapsweep.recipe.tables import column_label
from clapsweep.report.model import (
    PERCENT,
    Cell,
    Table,
    all_notes,
    caption,
    cell_text,
    diff_text,
    fmt_value,
    table_seeds,
)

FORMATS = ("text", "md", "latex", "csv", "json")
STATISTIC = "mean ± sample standard deviation (n - 1) over seeds"
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
Section = tuple[str, list[str], list[list[str]], dict[str, int]]  # title, head, body, best


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


def _step(table: Table) -> int:
    """Header cells per column: ours, paper and (accuracy) the difference; ours alone
    without the paper (--no-paper)."""
    if not table.paper:
        return 1
    return 3 if table.unit == PERCENT else 2


def grid(table: Table, width: int = 40) -> tuple[list[str], list[list[str]]]:
    """Header and body as plain strings: per column ours, paper and (accuracy) the difference."""
    headers = ["Model"]
    for label in table.labels():
        headers.append(label)
        if table.paper:
            headers += ["paper"] + (["Δ"] if table.unit == PERCENT else [])
    body = []
    for row in table.rows:
        line = [row.name]
        for col in table.columns:
            cell = row.cells[col]
            line.append(cell_text(cell, table.unit, width))
            if not table.paper:
                continue
            line.append(fmt_value(cell.paper, table.unit))
            if table.unit == PERCENT:
                line.append(diff_text(cell, table.unit))
        body.append(line)
    return headers, body


# ----------------------------------------------------------------------------- text


def render_text(table: Table, out: TextIO, tty: bool | None = None) -> None:
    """A rich table on a terminal, aligned plain text otherwise."""
    tty = out.isatty() if tty is None else tty
    sections: list[Section] = [(caption(table), *grid(table), table.best())]
    for ft in table.folds:
        headers = ["Model"] + [f"fold {f}" for f in ft.columns]
        body = [
            [name] + [cell_text(cells[f], PERCENT, 24) for f in ft.columns]
            for name, cells in ft.rows
        ]
        sections.append((f"Per-fold accuracy, {column_label(ft.task)} (%)", headers, body, {}))
    notes = all_notes(table)
    if tty:
        _rich_text(table, sections, notes, out)
    else:
        _plain_text(sections, notes, out)


def _rich_text(table: Table, sections: list[Section], notes: list[str], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    # A real terminal gives its width; other streams get room for the whole table.
    console = Console(file=out, width=None if out.isatty() else 200)
    for title, headers, body, best in sections:
        rt = RichTable(title=title, title_justify="left")
        for i, h in enumerate(headers):
            rt.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
        bold = {1 + _step(table) * table.columns.index(c) for c in best}
        for r, line in enumerate(body):
            rt.add_row(
                *[_rich_cell(table, headers, best, bold, r, k, t) for k, t in enumerate(line)]
            )
        console.print(rt)
    for note in notes:
        console.print(f"note: {note}", markup=False, highlight=False)


def _rich_cell(
    table: Table, headers: list[str], best: dict[str, int], bold: set[int], r: int, k: int,
    text: str,
) -> Any:  # fmt: skip
    from rich.text import Text

    style = ""
    if headers[k] == "paper":
        style = "dim"
    elif headers[k] == "Δ" and text:
        style = "green" if text.startswith("+") else "red"
    elif k in bold and best.get(table.columns[(k - 1) // _step(table)]) == r:
        style = "bold"
    elif text.startswith(("failed", "not run", "pending", "damaged", "stale")):
        style = "yellow"
    return Text(text, style=style)


def _plain_text(sections: list[Section], notes: list[str], out: TextIO) -> None:
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


# ----------------------------------------------------------------------------- Markdown


def render_md(table: Table) -> str:
    lines = [f"**{caption(table)}**", ""]
    headers, body = grid(table, width=0)
    best = table.best()
    for r, line in enumerate(body):
        for col, best_row in best.items():
            if best_row == r:
                k = 1 + _step(table) * table.columns.index(col)
                line[k] = f"**{line[k]}**"
    lines += _md_lines(headers, body)
    for ft in table.folds:
        lines += ["", f"Per-fold accuracy, {column_label(ft.task)} (%)", ""]
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


# ----------------------------------------------------------------------------- LaTeX


_LATEX_ESCAPES = {c: "\\" + c for c in "&%$#_{}"} | {"~": r"\textasciitilde{}", "^": r"\^{}"}


def latex_escape(text: str) -> str:
    text = text.replace("\\", r"\textbackslash{}")
    return (
        "".join(_LATEX_ESCAPES.get(c, c) for c in text)
        .replace("±", r"$\pm$")
        .replace("†", r"$^\dagger$")
    )


def render_latex(table: Table) -> str:
    """A booktabs table: per column 'Ours' (mean$\\pm$std, best in bold) and 'Paper' (ours
    alone with --no-paper)."""
    best = table.best()
    max_n = max((c.n for r in table.rows for c in r.cells.values()), default=0)
    k = len(table.columns)
    lines = [
        r"% requires \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + latex_escape(caption(table)).replace("(n seeds)", f"(n={max_n})") + "}",
    ]
    if table.paper:
        lines += [
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
    else:
        lines += [
            r"\begin{tabular}{l" + " r" * k + "}",
            r"\toprule",
            " & ".join(["Model"] + [latex_escape(x) for x in table.labels()]) + r" \\",
            r"\midrule",
        ]
    for r, row in enumerate(table.rows):
        cells = [latex_escape(row.name)]
        for col in table.columns:
            cell = row.cells[col]
            cells.append(_latex_cell(cell, table.unit, best.get(col) == r, max_n))
            if table.paper:
                cells.append(fmt_value(cell.paper, table.unit))
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


# ----------------------------------------------------------------------------- CSV, JSON


def seed_list(cell: Cell) -> str | None:
    """The seeds of a cell's values, space-separated ('0 1 2'), for CSV and W&B."""
    return " ".join(str(s) for s in cell.seeds if s is not None) or None


def _flat(number: int, row: str, column: str, cell: Cell, diff: float | None) -> list[Any]:
    return [
        number, row, column, cell.mean, cell.std, cell.n, cell.paper, diff, cell.missing,
        cell.incomplete, seed_list(cell),
    ]  # fmt: skip


def csv_fields(table: Table) -> list[str]:
    """CSV_FIELDS, without paper and diff for a table without the paper (--no-paper)."""
    return CSV_FIELDS if table.paper else [f for f in CSV_FIELDS if f not in _PAPER_FIELDS]


_PAPER_FIELDS = ("paper", "diff")


def flat_rows(table: Table) -> list[list[Any]]:
    """One list per (row, column), csv_fields order; per-fold cells as '<column>/fold <f>'."""
    rows = _flat_rows(table)
    if table.paper:
        return rows
    keep = [i for i, f in enumerate(CSV_FIELDS) if f not in _PAPER_FIELDS]
    return [[line[i] for i in keep] for line in rows]


def _flat_rows(table: Table) -> list[list[Any]]:
    out = []
    for row in table.rows:
        for col in table.columns:
            cell = row.cells[col]
            diff = cell.diff() if table.unit == PERCENT else None
            out.append(_flat(table.number, row.name, column_label(col), cell, diff))
    for ft in table.folds:
        for name, cells in ft.rows:
            for fold in ft.columns:
                label = f"{column_label(ft.task)}/fold {fold}"
                out.append(_flat(table.number, name, label, cells[fold], None))
    return out


def render_csv(table: Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(csv_fields(table))
    for line in flat_rows(table):
        writer.writerow(
            ["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in line]
        )
    return buf.getvalue()


def table_json(table: Table) -> dict[str, Any]:
    with_diff = table.unit == PERCENT
    data: dict[str, Any] = {
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
    if not table.paper:  # --no-paper: no paper numbers anywhere
        for row in data["rows"]:
            del row["paper_row"]
            for cell in row["cells"].values():
                del cell["paper"], cell["diff"]
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
