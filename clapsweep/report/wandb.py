"""`clapsweep report --wandb`: the tables, logged to the sweep's one W&B summary run through
its tracker (clapsweep.sweep.tracking, optional: reports work without it). The only part of
the report that writes anything."""

from __future__ import annotations

from typing import Any

from clapsweep.errors import UserError
from clapsweep.recipe.spec import load_spec
from clapsweep.report.load import Sweep, damaged_message, why
from clapsweep.report.model import Table
from clapsweep.report.render import csv_fields, flat_rows
from clapsweep.report.sweep_render import CSV_FIELDS as SWEEP_CSV_FIELDS
from clapsweep.report.sweep_render import flat_rows as sweep_flat_rows
from clapsweep.report.sweeps import SweepTable


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
        from clapsweep.sweep.tracking import WandbTracker  # optional: wandb may be absent
    except ModuleNotFoundError as e:
        if e.name != "clapsweep.sweep.tracking":
            raise
        return None
    return WandbTracker(spec)


def wandb_tables(table: Table | SweepTable) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """{name: (columns, rows)}: table2 (a paper table), by_sigma, paired, ... (SweepTable.name)."""
    if isinstance(table, SweepTable):
        return {table.name: (SWEEP_CSV_FIELDS, sweep_flat_rows(table))}
    return {f"table{table.number}": (csv_fields(table), flat_rows(table))}


def report_tracker(sweep: Sweep) -> Any:
    """For --wandb: the tracker of the sweep as its run stored it (spec.yaml); a UserError
    when that spec does not load or turns tracking off, before anything is printed."""
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
        raise UserError(f"--wandb: {damaged_message(spec_file, why(e), 'clapsweep run')}") from None
    tracker = _tracker(spec)
    if tracker is None:
        raise UserError(
            f"--wandb: W&B tracking is off for sweep {sweep.name} (tracking.wandb in "
            f"{spec_file}); enable it in the sweep file and `clapsweep run` it, or report "
            "without --wandb"
        )
    return tracker
