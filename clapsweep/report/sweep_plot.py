"""The figure of a SweepTable (clapsweep.report.sweeps): `clapsweep report --by AXIS --plot F`
and `--paired --plot F`.

An axis table: one panel per task, the metric (or, with --paired, Δ against the same seed's
teacher) against the axis values, one line per row family with its 95 % CI (t) as a shaded
band and every seed as a faint dot; the baselines, which do not vary with the axis, are
dashed horizontal lines with their own band. Numeric axes are drawn to scale, others
(strategy) as categories. A paired table: one panel per task, each student row's mean Δ with
its 95 % CI as an error bar, against the zero line. Same Agg canvas as clapsweep.report.plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clapsweep.recipe.tasks import label
from clapsweep.report.plot import _new_figure, _style
from clapsweep.report.sweep_render import p_label
from clapsweep.report.sweeps import ALL, SweepTable

# matplotlib's tab10: lines of one strategy family must still be told apart.
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
_INK = "#222222"


def plot_sweep_table(table: SweepTable, path: str | Path) -> Path:
    fig = _axis_figure(table) if table.axis is not None else _paired_figure(table)
    what = "Δ against the same seed's teacher" if table.paired else "zero-shot accuracy"
    by = f" by {table.axis}" if table.axis else ""
    head = f"sweep {table.sweep}: {what}{by}"
    if table.number is not None:
        head += f" (Table {table.number} rows, teacher fraction {table.fraction:g})"
    head += "\nmean over seeds; " + ("shaded" if table.axis else "bars") + ": 95% CI (t)"
    if table.synth:
        head += f"  |  synthworld data (scale {table.synth.get('scale')})"
    fig.suptitle(head, fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


def _numeric(table: SweepTable) -> bool:
    return all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in table.values.values()
    )


def _axis_figure(table: SweepTable) -> Any:
    n = len(table.sections)
    fig = _new_figure(max(5.0, 4.6 * n), 4.8)
    axes = fig.subplots(1, n, squeeze=False)[0]
    numeric = _numeric(table)
    xs = {c: (table.values[c] if numeric else i) for i, c in enumerate(table.columns)}
    families = [ln.name for s in table.sections for ln in s.lines]
    colors = {name: _COLORS[i % len(_COLORS)] for i, name in enumerate(dict.fromkeys(families))}
    for ax, section in zip(axes, table.sections, strict=True):
        for line in section.lines:
            cols = [c for c in table.columns if c in line.cells and line.cells[c].n]
            if not cols:
                continue
            x = [xs[c] for c in cols]
            mean = [line.cells[c].mean for c in cols]
            half = [line.cells[c].ci95 or 0.0 for c in cols]
            color = colors[line.name]
            ax.plot(x, mean, marker="o", color=color, label=line.name, zorder=3)
            ax.fill_between(x, [m - h for m, h in zip(mean, half, strict=True)],
                            [m + h for m, h in zip(mean, half, strict=True)],
                            color=color, alpha=0.2, linewidth=0, zorder=2)  # fmt: skip
            for c in cols:
                cell = line.cells[c]
                ax.scatter([xs[c]] * cell.n, cell.values, s=8, color=color, alpha=0.5, zorder=4)
        for i, ref in enumerate(section.reference):
            cell = ref.cells[ALL]
            if not cell.n:
                continue
            shade = ("#555555", "#9467bd", "#8c8c8c")[i % 3]
            ax.axhline(cell.mean, color=shade, linestyle="--", linewidth=1.2, label=ref.name)
            if cell.ci95:
                ax.axhspan(cell.mean - cell.ci95, cell.mean + cell.ci95, color=shade, alpha=0.12)
        if table.paired:
            ax.axhline(0.0, color=_INK, linewidth=0.8)
        if not numeric:
            ax.set_xticks(range(len(table.columns)))
            ax.set_xticklabels(table.columns, rotation=30, ha="right")
        ax.set_xlabel(table.axis)
        ax.set_ylabel("Δ accuracy (points)" if table.paired else "zero-shot accuracy (%)")
        ax.set_title(label(section.task), fontsize=11, fontweight="bold")
        _style(ax)
        ax.grid(axis="x", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, frameon=False)
    return fig


def _paired_figure(table: SweepTable) -> Any:
    n = len(table.sections)
    rows = max((len(s.lines) for s in table.sections), default=1)
    fig = _new_figure(max(5.0, 4.4 * n), 1.6 + 0.45 * rows)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, section in zip(axes, table.sections, strict=True):
        names = []
        for y, line in enumerate(section.lines):
            names.append(line.name)
            cell = line.cells[ALL]
            if not cell.n:
                ax.text(0.0, y, cell.missing or "", va="center", fontsize=7, color="#b30000")
                continue
            color = _COLORS[y % len(_COLORS)]
            err = [[cell.ci95 or 0.0], [cell.ci95 or 0.0]]
            ax.errorbar([cell.mean], [y], xerr=err, fmt="o", color=color, capsize=4, zorder=3)
            ax.scatter(cell.values, [y] * cell.n, s=8, color=color, alpha=0.5, zorder=4)
            test = cell.test
            if test is not None and test.p is not None:
                ax.annotate(p_label(test.p), (cell.mean, y), xytext=(0, 7),
                            textcoords="offset points", ha="center", fontsize=7)  # fmt: skip
        ax.axvline(0.0, color=_INK, linewidth=0.8)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names, fontsize=8)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_xlabel("Δ accuracy vs teacher (points)")
        ax.set_title(label(section.task), fontsize=11, fontweight="bold")
        _style(ax)
    return fig
