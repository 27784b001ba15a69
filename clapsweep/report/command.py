"""`clapsweep report`: pick the sweep, build the table, print it; draw it (--plot) and log it
to W&B (--wandb) when asked. Every check (table, format, plot file, tracking) comes before
any output.

Which table:
    --table N                  the paper's Table N (--by FIELD labels and groups its rows,
                               --no-paper hides the paper's rows and numbers, --metric TASK
                               keeps one task)
    --table N --paired         Table N's student rows against their own seed's teacher
    --by AXIS                  any sweep: accuracy against the axis values, per task (--metric)
    --by AXIS --paired         the same for Δ against the same seed's teacher
    --paired                   any sweep: every student row against its own seed's teacher
Without --sweep, the newest sweep under --workdir-root (declaring Table N, with --table).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from clapsweep.errors import UserError
from clapsweep.recipe import tables
from clapsweep.recipe.search_spec import VALIDATION_FOLDS
from clapsweep.report.build import build_table, check_table
from clapsweep.report.load import Sweep, find_sweep, load_sweep, why
from clapsweep.report.model import Table
from clapsweep.report.plot import check_plot, plot_table
from clapsweep.report.render import FORMATS, render, render_text
from clapsweep.report.search import (
    check_search_format,
    plot_search,
    render_search,
    search_report,
)
from clapsweep.report.sweep_plot import plot_sweep_table
from clapsweep.report.sweep_render import render_sweep, render_sweep_text
from clapsweep.report.sweeps import SweepTable, axis_table, paired_table
from clapsweep.report.wandb import report_tracker, wandb_tables


def report_command(
    number: int | None = None,
    sweep: str | None = None,
    fmt: str = "text",
    plot: str | None = None,
    by: str | None = None,
    folds: bool = False,
    workdir_root: str = "runs",
    out: TextIO | None = None,
    err: TextIO | None = None,
    wandb: bool = False,
    no_paper: bool = False,
    metric: str | None = None,
    paired: bool = False,
    search: bool = False,
) -> int:
    """`clapsweep report`: render Table `number` of a sweep (the newest declaring it), or,
    without a number, a report of any sweep by an axis (`by`) or paired (`paired`).

    Read-only unless asked: `plot` writes the figure, `wandb` logs the table to the sweep's
    one W&B summary run. Every check (table, format, plot file, tracking) comes before any
    output."""
    out, err = out or sys.stdout, err or sys.stderr
    if search:
        check_search_format(fmt)
    else:
        _check_options(number, by, folds, paired)
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    if plot:
        check_plot(plot)

    def warn(line: str) -> None:
        print(f"report: {line}", file=err)

    path = Path(sweep) if sweep else find_sweep(number, workdir_root, warn)
    loaded = load_sweep(path)
    if search:
        return _search(loaded, fmt, plot, out, err)
    tracker = report_tracker(loaded) if wandb else None
    print(
        f"report: {_what(number, by, paired)} of sweep {loaded.name} ({loaded.workdir})", file=err
    )
    table = _build(loaded, number, by, folds, no_paper, metric, paired)
    if isinstance(table, SweepTable):
        if fmt == "text":
            render_sweep_text(table, out)
        else:
            out.write(render_sweep(table, fmt))
    elif fmt == "text":
        render_text(table, out)
    else:
        out.write(render(table, fmt))
    _validation_note(loaded, out)
    out.flush()
    if plot:
        _draw(table, plot)
        print(f"report: wrote {plot}", file=err)
    if tracker is not None:
        _log(tracker, table, err)
    return 0


def _search(loaded: Sweep, fmt: str, plot: str | None, out: TextIO, err: TextIO) -> int:
    results = search_report(loaded)
    render_search(results, fmt, out)
    out.flush()
    if plot:
        plot_search(results, plot)
        print(f"report: wrote {plot}", file=err)
    return 0


def _validation_note(loaded: Sweep, out: TextIO) -> None:
    """A searching sweep chose values on validation folds: its evals leave them out."""
    search = loaded.spec.get("search")
    if not isinstance(search, dict):
        return
    folds = {**VALIDATION_FOLDS, **(search.get("validation") or {})}
    tasks = (loaded.spec.get("data") or {}).get("tasks") or []
    shown = "; ".join(f"{t} {', '.join(str(f) for f in folds.get(t, []))}" for t in tasks)
    print(f"(validation folds, left out of every number: {shown})", file=out)


def _check_options(number: int | None, by: str | None, folds: bool, paired: bool) -> None:
    if number is not None:
        check_table(number)
    elif by is None and not paired:
        raise UserError(
            "--table N: which of the paper's tables (1, 2 or 3); for a report of any sweep, "
            "--by AXIS (e.g. --by sigma) or --paired"
        )
    if folds and (number is None or paired):
        raise UserError("--folds: per-fold accuracy is part of a paper table; use --table N alone")
    if number is not None and by is not None and paired:
        raise UserError(
            f"--paired --by {by}: Δ against {by} is a report of the whole sweep; leave out "
            f"--table {number} (or --by, for Table {number}'s rows against their teachers)"
        )


def _what(number: int | None, by: str | None, paired: bool) -> str:
    if number is not None:
        return f"Table {number}" + (" paired with the teachers" if paired else "")
    what = "Δ against the teachers" if paired else "accuracy"
    return what + (f" by {by}" if by else "")


def _build(
    sweep: Sweep,
    number: int | None,
    by: str | None,
    folds: bool,
    no_paper: bool,
    metric: str | None,
    paired: bool,
) -> Table | SweepTable:
    if number is None and by is not None:
        return axis_table(sweep, by, metric, paired)
    if number is None:
        return paired_table(sweep, metric)
    if paired:
        if tables.get(number).kind != tables.ACCURACY:
            raise UserError(
                f"--paired: Table {number} counts pairs; the paired comparison is of "
                "accuracies (Tables 2 and 3, or no --table)"
            )
        return paired_table(sweep, table=build_table(sweep, number, metric=metric))
    return build_table(sweep, number, by=by, folds=folds, paper=not no_paper, metric=metric)


def _draw(table: Table | SweepTable, plot: str) -> None:
    try:
        if isinstance(table, SweepTable):
            plot_sweep_table(table, plot)
        else:
            plot_table(table, plot)
    except OSError as e:
        raise UserError(f"--plot {plot}: cannot write it ({why(e)})") from None
    except RuntimeError as e:  # a format matplotlib lists but cannot write here (.pgf)
        Path(plot).unlink(missing_ok=True)
        raise UserError(f"--plot {plot}: matplotlib cannot write it here ({e})") from None


def _log(tracker: Any, table: Table | SweepTable, err: TextIO) -> None:
    logged = wandb_tables(table)
    tracker.log_tables(logged)
    where = tracker.wandb_dir if tracker.mode == "offline" else "W&B"
    print(
        f"report: logged {', '.join(logged)} to the summary run {tracker.sweep}-summary "
        f"({tracker.mode}, {where})",
        file=err,
    )
