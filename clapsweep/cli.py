"""Command line: parses arguments, calls the library, prints. No logic of its own."""

from __future__ import annotations

import argparse
import json
import sys

from clapsweep.errors import UserError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clapsweep", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="generate synthworld or summarise a data root")
    dsub = data.add_subparsers(dest="data_command", required=True)
    synth = dsub.add_parser("synth", help="write the offline synthworld datasets")
    synth.add_argument("--out", required=True, help="folder to write the datasets into")
    synth.add_argument("--scale", default="demo", help="tiny | demo | large (default demo)")
    synth.add_argument("--seed", type=int, default=0)
    summ = dsub.add_parser("summary", help="per dataset: clips, captions, classes, skipped")
    summ.add_argument("--root", required=True)
    summ.add_argument("--json", action="store_true")
    return p


def _cmd_data(args: argparse.Namespace) -> None:
    if args.data_command == "synth":
        from clapsweep.data import synthworld

        info = synthworld.generate(args.out, scale=args.scale, seed=args.seed)
        print(json.dumps(info, indent=2))
    else:
        from clapsweep.data import summary

        result = summary.summarize(args.root)
        print(json.dumps(result, indent=2) if args.json else summary.render(result))


COMMANDS = {"data": _cmd_data}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except UserError as e:
        print(f"clapsweep: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clapsweep: interrupted", file=sys.stderr)
        return 130
    return 0
