"""`clapsweep data synth` and `clapsweep data summary` (clapsweep.data)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from clapsweep.errors import UserError


def add_commands(subparsers: Any) -> None:
    data = subparsers.add_parser("data", help="generate synthworld or summarise a data root")
    dsub = data.add_subparsers(dest="data_command", required=True)
    synth = dsub.add_parser("synth", help="write the offline synthworld datasets")
    synth.add_argument("--out", required=True, help="folder to write the datasets into")
    synth.add_argument("--scale", default="demo", help="tiny | demo | large (default demo)")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(handler=cmd_synth)
    summ = dsub.add_parser(
        "summary",
        help="per dataset: clips, captions, classes, skipped",
        description="Load every dataset under a data root and count what it holds. Exit 2 when "
        "a dataset is unusable (missing metadata, misplaced folders, no readable audio). The bad "
        "files --deep finds do not change the exit status (sweeps skip and count truncated and "
        "corrupt files), unless no clip of a dataset decodes.",
    )
    summ.add_argument("root", nargs="?", metavar="ROOT", help="the data root")
    summ.add_argument("--root", dest="root_option", metavar="ROOT", help="same as ROOT")
    summ.add_argument("--json", action="store_true")
    summ.add_argument(
        "--deep",
        action="store_true",
        help="decode every clip with the trainer's decoder; count truncated, corrupt and "
        "silent files (peak below 1e-4) per dataset",
    )
    summ.add_argument(
        "--jobs", type=int, help="processes for --deep (default: the CPUs this process may use)"
    )
    summ.add_argument("--bad-files", metavar="CSV", help="with --deep: write the bad files here")
    summ.set_defaults(handler=cmd_summary)


def cmd_synth(args: argparse.Namespace) -> None:
    from clapsweep.data import synthworld

    print(json.dumps(synthworld.generate(args.out, scale=args.scale, seed=args.seed), indent=2))


def cmd_summary(args: argparse.Namespace) -> int:
    from clapsweep.data import deep, summary

    root = args.root or args.root_option
    if not root or (args.root and args.root_option):
        raise UserError("data summary: give the data root once, as ROOT or --root ROOT")
    if args.bad_files and not args.deep:
        raise UserError("data summary: --bad-files lists what --deep finds; add --deep")
    jobs = deep.default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        raise UserError(f"data summary: --jobs must be at least 1, got {jobs}")
    result = summary.summarize(root, deep=args.deep, jobs=jobs, bad_files=args.bad_files)
    print(json.dumps(result, indent=2) if args.json else summary.render(result), flush=True)
    broken = summary.unusable(result)
    if broken:
        print(f"clapsweep: error: unusable: {', '.join(broken)} (see above)", file=sys.stderr)
        return 2
    return 0
