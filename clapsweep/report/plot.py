"""The figure of a report table: `clapsweep report --table N --plot FILE.png`.

Accuracy tables (2, 3): one panel per task. Each sweep row is a bar (mean over seeds) with its sample
standard deviation as an error bar and every seed as a dot; the paper's number is a black tick
at the same place, so "ours vs paper" reads at a glance. Rows without a value say why (failed,
not run) instead of a bar; paper-only rows show the tick alone.
Pairs tables (1): one axis on a log scale, a group of bars per Improvement-Set, the paper's size as a
black line across its group.
Row colours come from the strategies registry (recipe.strategies: a family's light colour,
the dark one for +SL). Uses matplotlib's Agg canvas directly: no display and no pyplot state
are needed; matplotlib is imported only when drawing (or checking --plot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clapsweep.errors import UserError
from clapsweep.recipe import strategies
from clapsweep.recipe.tables import column_label
from clapsweep.report.model import PAIRS, PERCENT, Cell, Table, fmt_value

_BASELINE = {"teacher": "#8c8c8c", "msclap": "#9467bd"}
_OTHER = "#66c2a5"
_INK = "#222222"
# Table 1 rows are curation settings, not strategy families: one distinct colour each.
_PALETTE = ("#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363")


def row_color(key: str) -> str:
    """A colour per row family: the baselines their own, a row named after a strategy that
    strategy's colours (recipe.strategies: light, and dark with +SL), others one colour."""
    if key in _BASELINE:
        return _BASELINE[key]
    name = key.split(",")[0].upper().replace(" ", "")
    # The longest label first: a label that begins another one must not take its rows.
    for strategy in sorted(strategies.STRATEGIES.values(), key=lambda s: -len(_norm(s.label))):
        if name.startswith(_norm(strategy.label)):
            light, dark = strategy.colors
            return dark if "+SL" in name else light
    return _OTHER


def _norm(label: str) -> str:
    return label.upper().replace(" ", "")


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


def plot_table(table: Table, path: str | Path) -> Path:
    """Draw the table into a PNG (or any format matplotlib knows by the file's suffix)."""
    fig = _accuracy_figure(table) if table.unit == PERCENT else _counts_figure(table)
    _decorate(fig, table)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _accuracy_figure(table: Table) -> Any:
    panel = max(3.6, 0.55 * len(table.rows) + 1.4)
    fig = _new_figure(panel * len(table.columns), 5.8)
    axes = fig.subplots(1, len(table.columns), squeeze=False)[0]
    for ax, col in zip(axes, table.columns, strict=True):
        shown = [r for r in table.rows if _drawable(r.cells[col])]
        top = 1.0
        for x, row in enumerate(shown):
            # Rows the paper does not have are hatched: same family colour, not the same run.
            hatch = "//" if row.paper_label is None and row.key not in _BASELINE else None
            top = max(top, _draw_bar(ax, x, row.cells[col], row_color(row.key), hatch))
        ax.set_xticks(range(len(shown)))
        labels = [r.name + (" (paper)" if r.source != "sweep" else "") for r in shown]
        ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
        ax.set_xlim(-0.6, max(len(shown), 1) - 0.4)
        ax.set_ylim(0, min(100.0, top * 1.12))
        ax.set_title(column_label(col), fontsize=11, fontweight="bold")
        ax.set_ylabel("zero-shot accuracy (%)")
        _style(ax)
    return fig


def _drawable(cell: Cell) -> bool:
    # Tasks the sweep does not evaluate and have no paper number are left out.
    return cell.n > 0 or cell.paper is not None or (cell.missing or "").startswith("failed")


def _draw_bar(ax: Any, x: int, cell: Cell, color: str, hatch: str | None = None) -> float:
    """One row's bar, error bar, seed dots, value label and paper tick; returns the top y."""
    top = cell.paper or 0.0
    if cell.n:
        mean, std = cell.mean, cell.std or 0.0
        ax.bar(x, mean, width=0.7, color=color, edgecolor="#444444", linewidth=0.6, hatch=hatch,
               zorder=2)  # fmt: skip
        if std:
            ax.errorbar(x, mean, yerr=std, color=_INK, capsize=4, linewidth=1.2, zorder=4)
        offsets = [0.0] if cell.n == 1 else [-0.12 + 0.24 * i / (cell.n - 1) for i in range(cell.n)]
        ax.scatter([x + o for o in offsets], cell.values, s=10, color=_INK, zorder=5)
        high = max([mean + std, *cell.values, cell.paper or 0.0])
        ax.text(x, high + 1.0, f"{mean:.1f}\nn={cell.n}", ha="center", va="bottom", fontsize=7)
        top = max(top, high + 7.0)
    elif cell.missing and cell.missing != "paper only":
        reason = cell.missing.split(":")[0]
        ax.text(x, 1.0, reason, ha="center", va="bottom", rotation=90, fontsize=8, color="#b30000")
    if cell.paper is not None:
        ax.plot([x], [cell.paper], marker="_", color="black", markersize=22, mew=2.5, zorder=7)
    return top


def _counts_figure(table: Table) -> Any:
    fig = _new_figure(max(9.0, 1.6 * len(table.columns) + 2.0), 5.8)
    ax = fig.subplots()
    rows = [r for r in table.rows if r.source == "sweep"]
    colors = {r.key: _PALETTE[i % len(_PALETTE)] for i, r in enumerate(rows)}
    paper = next((r for r in table.rows if r.source != "sweep"), None)  # the paper's sizes
    for x, col in enumerate(table.columns):
        shown = [r for r in rows if r.cells[col].n]
        width = 0.8 / max(len(shown), 1)
        for i, row in enumerate(shown):
            cell = row.cells[col]
            xi = x - 0.4 + width * (i + 0.5)
            ax.bar(xi, cell.mean, width=width * 0.9, color=colors[row.key], label=row.name,
                   edgecolor="#444444", linewidth=0.6, zorder=2)  # fmt: skip
            if cell.std:
                ax.errorbar(xi, cell.mean, yerr=cell.std, color=_INK, capsize=3, zorder=4)
            ax.scatter([xi] * cell.n, cell.values, s=8, color=_INK, zorder=5)
            ax.text(xi, cell.mean * 1.3, fmt_value(cell.mean, PAIRS), ha="center", va="bottom",
                    fontsize=7, rotation=90 if len(shown) > 2 else 0)  # fmt: skip
        value = paper.cells[col].paper if paper is not None else None
        if value is not None:
            ax.plot([x - 0.42, x + 0.42], [value, value], color="black", linewidth=2.5, zorder=6)
            ax.text(x, value * 1.2, fmt_value(value, PAIRS), ha="center", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("audio-caption pairs (log scale)")
    ax.set_xticks(range(len(table.columns)))
    ax.set_xticklabels([column_label(c).replace(" ", "\n", 1) for c in table.columns])
    _style(ax)
    # One legend entry per row: its bars repeat the label in every group.
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=8, frameon=False, loc="upper right")
    return fig


def _style(ax: Any) -> None:
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _decorate(fig: Any, table: Table) -> None:
    """Title (table, sweep, teacher fraction, synthworld) and the shared legend."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    title = f"{table.title}\nsweep {table.sweep}"
    if table.fraction is not None:
        title += f", teacher fraction {table.fraction:g}"
    if table.synth:
        scale = table.synth.get("scale")
        title += f"  |  synthworld data (scale {scale}), not the paper's datasets"
    fig.suptitle(title, fontsize=12)
    handles = [
        Patch(facecolor="#bbbbbb", edgecolor="#444444", label="this sweep: mean ± std"),
        Line2D([], [], marker="o", linestyle="", color=_INK, markersize=4, label="one seed"),
    ]
    if table.paper:
        handles.append(Line2D([], [], marker="_", linestyle="", color="black", markersize=16,
                              mew=2.5, label="paper"))  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
