"""The paper's tables from a sweep's results: `clapsweep report --table 1|2|3`; and reports
of any sweep: accuracy against a swept axis (`--by AXIS`) and each student against its own
seed's teacher (`--paired`), mean ± 95 % CI (t) over seeds.

Reads a sweep's work directory (spec.yaml, plan.json and the store's stages/), never runs
anything. The tables are entries of the registry clapsweep.recipe.tables (number, title,
kind, teacher fraction, baselines, the paper's rows, columns). Accuracy tables (2 and 3)
hold zero-shot accuracy in percent per task: for each sweep row at the table's teacher
fraction, the mean, sample standard deviation (n - 1) and number of seeds of the eval
stages' accuracies, beside the paper's number and the difference. Table 1 holds the
Improvement-Set sizes (number of pairs) of the curate stages. Every output says what ± is
and lists the seeds that contributed.

Read-only: a damaged record never makes a traceback. A damaged spec.yaml or plan.json stops
the report with one message naming the file (`clapsweep run` rewrites it); a damaged or stale
stage is a cell without a value that says so, and a note names the file. Only `--wandb` writes
anything: the tables, to the sweep's one W&B summary run (clapsweep.sweep.tracking).

The parts, each importing only those before it:
    stats         t-intervals and the paired t-test, standard library only
    model         Table, Row, Cell and how values are written
    load          a sweep's stored records, read-only (Sweep, load_sweep, find_sweep)
    settings      what a row or a planned trial sets (--by: row fields and sweep axes)
    build         Tables from a loaded sweep, one build function per table kind
    sweeps        SweepTables: --by AXIS without --table, --paired
    render        text, md, latex, csv, json
    sweep_render  the same for SweepTables
    plot          the figure (--plot); reads the model only
    sweep_plot    the figure of a SweepTable: lines with 95 % bands, or paired Δ
    wandb         the tables to the sweep's W&B summary run (--wandb)
    command       `clapsweep report`
"""

from __future__ import annotations

from clapsweep.report.build import (
    BUILDERS,
    BY_FIELDS,
    build_table,
    builder,
    check_axis,
    check_table,
    fold_order,
    row_setting,
    sweep_axes,
)
from clapsweep.report.command import report_command
from clapsweep.report.load import Sweep, find_sweep, load_sweep, read_spec_record
from clapsweep.report.model import (
    PAIRS,
    PERCENT,
    Cell,
    FoldTable,
    Row,
    Table,
    all_notes,
    cell_text,
    fmt_value,
    seeds_text,
    table_seeds,
)
from clapsweep.report.plot import check_plot, plot_formats, plot_table, row_color
from clapsweep.report.render import (
    CSV_FIELDS,
    FORMATS,
    STATISTIC,
    csv_fields,
    flat_rows,
    grid,
    latex_escape,
    render,
    render_csv,
    render_latex,
    render_md,
    render_text,
    table_json,
)
from clapsweep.report.stats import PairedTest, ci_half_width, paired_test, t_quantile
from clapsweep.report.sweep_plot import plot_sweep_table
from clapsweep.report.sweep_render import render_sweep, render_sweep_text, sweep_json
from clapsweep.report.sweeps import Line, PairedCell, Section, SweepTable, axis_table, paired_table
from clapsweep.report.wandb import log_report_tables, report_tracker, wandb_tables

__all__ = [
    "BUILDERS", "BY_FIELDS", "CSV_FIELDS", "FORMATS", "PAIRS", "PERCENT", "STATISTIC", "Cell",
    "FoldTable", "Line", "PairedCell", "PairedTest", "Row", "Section", "Sweep", "SweepTable",
    "Table", "all_notes", "axis_table", "build_table", "builder", "cell_text", "check_axis",
    "check_plot", "check_table", "ci_half_width", "csv_fields", "find_sweep", "flat_rows",
    "fmt_value", "fold_order", "grid", "latex_escape", "load_sweep", "log_report_tables",
    "paired_table", "paired_test", "plot_formats", "plot_sweep_table", "plot_table",
    "read_spec_record", "render", "render_csv", "render_latex", "render_md", "render_sweep",
    "render_sweep_text", "render_text", "report_command", "report_tracker", "row_color",
    "row_setting", "seeds_text", "sweep_axes", "sweep_json", "t_quantile", "table_json",
    "table_seeds", "wandb_tables",
]  # fmt: skip
