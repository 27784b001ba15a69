"""`clapsweep report --table N`: pick the sweep, build the table, print it; draw it (--plot)
and log it to W&B (--wandb) when asked. Every check (table, format, plot file, tracking)
comes before any output."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from clapsweep.errors import UserError
from clapsweep.report.build import build_table, check_table
from clapsweep.report.load import find_sweep, load_sweep, why
from clapsweep.report.model import Table
from clapsweep.report.plot import check_plot, plot_table
from clapsweep.report.render import FORMATS, render, render_text
from clapsweep.report.wandb import report_tracker, wandb_tables


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
        _draw(table, plot)
        print(f"report: wrote {plot}", file=err)
    if tracker is not None:
        _log(tracker, table, err)
    return 0


def _draw(table: Table, plot: str) -> None:
    try:
        plot_table(table, plot)
    except OSError as e:
        raise UserError(f"--plot {plot}: cannot write it ({why(e)})") from None
    except RuntimeError as e:  # a format matplotlib lists but cannot write here (.pgf)
        Path(plot).unlink(missing_ok=True)
        raise UserError(f"--plot {plot}: matplotlib cannot write it here ({e})") from None


def _log(tracker: Any, table: Table, err: TextIO) -> None:
    tracker.log_tables(wandb_tables(table))
    where = tracker.wandb_dir if tracker.mode == "offline" else "W&B"
    print(
        f"report: logged table{table.number} to the summary run {tracker.sweep}-summary "
        f"({tracker.mode}, {where})",
        file=err,
    )
