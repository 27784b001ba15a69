"""Command line: `clapsweep COMMAND ...`. Each module of this package adds its commands'
parsers; their handlers parse, call the library and print, with no logic of their own:

    data     data synth, data summary         (clapsweep.data)
    stages   train, embed, curate, eval       (clapsweep.jobs)
    sweep    run, status, cancel, sync, verify, gc (clapsweep.sweep)
    report   report                           (clapsweep.report)
    bench    bench train|data|curate|eval     (clapsweep.bench)

main() runs one command and maps its errors to exit codes.
"""

from __future__ import annotations

import argparse
import os
import sys

from clapsweep import version
from clapsweep.errors import UserError


def _parser() -> argparse.ArgumentParser:
    # Imported here: `python -m clapsweep.bench` imports clapsweep.cli.bench alone, without
    # the sweep machinery the other commands pull in.
    from clapsweep.cli import bench, data, report, stages, sweep

    p = argparse.ArgumentParser(
        prog="clapsweep",
        description="Unsupervised improvement of audio-text CLAP models, run as tracked sweeps.",
    )
    p.add_argument("--version", action="version", version=f"clapsweep {version()}")
    sub = p.add_subparsers(dest="command", required=True)
    # In the order `clapsweep --help` lists them.
    for add in (
        data.add_commands,
        stages.add_commands,
        sweep.add_run_command,
        sweep.add_status_command,
        report.add_commands,
        sweep.add_cancel_command,
        sweep.add_sync_command,
        sweep.add_verify_command,
        sweep.add_gc_command,
        bench.add_commands,
    ):
        add(sub)
    return p


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The arguments; `run`'s PATH=VALUE overrides may also follow its options (argparse
    takes a positional list in one piece, wherever the first one is)."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "overrides", None) is not None:
        overrides = [e for e in extra if "=" in e and not e.startswith("-")]
        args.overrides += overrides
        extra = [e for e in extra if e not in overrides]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status.

    0 success, 2 a UserError (one line on stderr), 130 interrupted, and 141 (128 + SIGPIPE, as a
    shell reports a command killed by SIGPIPE) when the reader of stdout went away, as in
    `clapsweep data summary ROOT | head -1`: then it exits quietly, without a traceback.
    """
    args = _parse(argv)
    try:
        code = args.handler(args)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here, not at exit
    except BrokenPipeError:
        # The Python docs' SIGPIPE recipe: point stdout at devnull so that the interpreter's
        # final flush does not fail again and print "Exception ignored ...".
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except UserError as e:
        print(f"clapsweep: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C; SIGTERM / SIGHUP where `run` handles them
        print("clapsweep: interrupted", file=sys.stderr)
        return getattr(e, "exit_code", 130)
    return code or 0
