"""Command line: parses arguments, calls the library, prints. No logic of its own."""

from __future__ import annotations

import argparse
import json
import os
import sys

from clapsweep import version
from clapsweep.bench import cli as bench_cli
from clapsweep.errors import UserError
from clapsweep.sweep import commands, verify


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clapsweep",
        description="Unsupervised improvement of audio-text CLAP models, run as tracked sweeps.",
    )
    p.add_argument("--version", action="version", version=f"clapsweep {version()}")
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="generate synthworld or summarise a data root")
    dsub = data.add_subparsers(dest="data_command", required=True)
    synth = dsub.add_parser("synth", help="write the offline synthworld datasets")
    synth.add_argument("--out", required=True, help="folder to write the datasets into")
    synth.add_argument("--scale", default="demo", help="tiny | demo | large (default demo)")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(handler=_cmd_data)
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
    summ.set_defaults(handler=_cmd_data)
    train = sub.add_parser(
        "train", help="train a teacher (or a student) from a job config, then evaluate it"
    )
    train.add_argument("--config", required=True, help="job YAML (see configs/)")
    train.set_defaults(handler=_cmd_train)
    emb = sub.add_parser("embed", help="teacher embeddings for curation and soft labels")
    emb.add_argument("--teacher", required=True, help="a teacher folder from `clapsweep train`")
    emb.add_argument("--out", required=True)
    emb.set_defaults(handler=_cmd_embed)
    cur = sub.add_parser("curate", help="a DU / DS / ADS Improvement-Set from embeddings")
    cur.add_argument("--embed", required=True, help="a folder from `clapsweep embed`")
    cur.add_argument("--strategy", required=True, help="du | ds | ads")
    cur.add_argument("--task", help="esc50 | us8k | tut17 (ds, ads)")
    cur.add_argument("--sigma", type=float, help="caption-clip threshold (du, ads)")
    cur.add_argument("--sigma-ds", type=float, help="caption-prompt threshold (ds, ads)")
    cur.add_argument("--top-k", type=int, help="keep at most k captions per clip")
    cur.add_argument("--out", required=True)
    cur.set_defaults(handler=_cmd_curate)
    ev = sub.add_parser("eval", help="zero-shot accuracy and retrieval of a trained job")
    ev.add_argument("--checkpoint", required=True, help="job folder or its model.pt")
    ev.add_argument("--tasks", nargs="+", help="subset of esc50 us8k tut17")
    ev.set_defaults(handler=_cmd_eval)
    commands.add_commands(sub)
    verify.add_verify_command(sub)
    bench_cli.add_commands(sub)
    return p


def _cmd_train(args: argparse.Namespace) -> None:
    from clapsweep import jobs
    from clapsweep.progress import StepProgress

    with StepProgress("train") as progress:
        result = jobs.train_job(args.config, report=progress)
    print(json.dumps(result, indent=2))


def _cmd_embed(args: argparse.Namespace) -> None:
    from clapsweep import jobs
    from clapsweep.progress import StepProgress

    with StepProgress("embed") as progress:
        print(json.dumps(jobs.embed_job(args.teacher, args.out, report=progress), indent=2))


def _cmd_curate(args: argparse.Namespace) -> None:
    from clapsweep import jobs

    options = {"strategy": args.strategy, "task": args.task, "sigma": args.sigma}
    options |= {"sigma_ds": args.sigma_ds, "top_k": args.top_k}
    print(json.dumps(jobs.curate_job(args.embed, args.out, **options), indent=2))


def _cmd_eval(args: argparse.Namespace) -> None:
    from clapsweep import jobs

    print(json.dumps(jobs.eval_job(args.checkpoint, args.tasks), indent=2))


def _cmd_data(args: argparse.Namespace) -> int | None:
    if args.data_command == "synth":
        from clapsweep.data import synthworld

        info = synthworld.generate(args.out, scale=args.scale, seed=args.seed)
        print(json.dumps(info, indent=2))
    else:
        return _cmd_data_summary(args)


def _cmd_data_summary(args: argparse.Namespace) -> int:
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


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status.

    0 success, 2 a UserError (one line on stderr), 130 interrupted, and 141 (128 + SIGPIPE, as a
    shell reports a command killed by SIGPIPE) when the reader of stdout went away, as in
    `clapsweep data summary ROOT | head -1`: then it exits quietly, without a traceback.
    """
    args = _parser().parse_args(argv)
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
