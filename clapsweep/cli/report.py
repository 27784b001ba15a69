"""`clapsweep report`: paper tables and any sweep's results against its axes (clapsweep.report)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(subparsers: Any) -> None:
    rep = subparsers.add_parser("report", help="the paper's tables from a sweep's results")
    rep.add_argument(
        "--table",
        type=int,
        metavar="N",
        help="the paper's Table 1, 2 or 3 (optional with --by or --paired)",
    )
    rep.add_argument(
        "--sweep", metavar="SWEEP", help="the sweep's YAML or workdir (default: newest)"
    )
    rep.add_argument("--format", default="text", choices=["text", "md", "latex", "csv", "json"])
    rep.add_argument(
        "--plot", metavar="FILE.png", help="also draw the table as a figure (.png, .pdf, .svg, ...)"
    )
    rep.add_argument(
        "--by",
        metavar="AXIS",
        help="with --table: label and group its rows by this setting; without: the metric "
        "against this swept axis (sigma, sigma_ds, beta, replay, soft_target, strategy, "
        "fraction, or a student train key such as lr)",
    )
    rep.add_argument(
        "--metric", metavar="TASK", help="one task's accuracy (esc50, us8k, tut17; default: all)"
    )
    rep.add_argument(
        "--paired",
        action="store_true",
        help="each student against the teacher of its own seed and fraction: mean Δ, its 95%% "
        "CI and a paired t-test p over seeds",
    )
    rep.add_argument(
        "--no-paper",
        action="store_true",
        help="leave out the rows only the paper has and the paper and Δ columns",
    )
    rep.add_argument("--folds", action="store_true", help="add per-fold accuracy tables")
    rep.add_argument(
        "--search",
        action="store_true",
        help="a searching sweep's trials, chosen values and their test accuracy (with --plot: "
        "validation accuracy against each searched axis)",
    )
    rep.add_argument(
        "--workdir-root", default="runs", metavar="DIR", help="where to look without --sweep"
    )
    rep.add_argument(
        "--wandb",
        action="store_true",
        help="also log the table to the sweep's one W&B summary run (else nothing is written)",
    )
    rep.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from clapsweep.report import report_command

    return report_command(
        args.table,
        sweep=args.sweep,
        fmt=args.format,
        plot=args.plot,
        by=args.by,
        folds=args.folds,
        workdir_root=args.workdir_root,
        wandb=args.wandb,
        no_paper=args.no_paper,
        metric=args.metric,
        paired=args.paired,
        search=args.search,
    )
