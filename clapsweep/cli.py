"""Command line: parses arguments, calls the library, prints. No logic of its own."""

from __future__ import annotations

import argparse
import json
import sys

from clapsweep import bench_cli
from clapsweep.errors import UserError
from clapsweep.sweep import commands, verify


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clapsweep",
        description="Unsupervised improvement of audio-text CLAP models, run as tracked sweeps.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="generate synthworld or summarise a data root")
    dsub = data.add_subparsers(dest="data_command", required=True)
    synth = dsub.add_parser("synth", help="write the offline synthworld datasets")
    synth.add_argument("--out", required=True, help="folder to write the datasets into")
    synth.add_argument("--scale", default="demo", help="tiny | demo | large (default demo)")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(handler=_cmd_data)
    summ = dsub.add_parser("summary", help="per dataset: clips, captions, classes, skipped")
    summ.add_argument("--root", required=True)
    summ.add_argument("--json", action="store_true")
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


def _cmd_data(args: argparse.Namespace) -> None:
    if args.data_command == "synth":
        from clapsweep.data import synthworld

        info = synthworld.generate(args.out, scale=args.scale, seed=args.seed)
        print(json.dumps(info, indent=2))
    else:
        from clapsweep.data import summary

        result = summary.summarize(args.root)
        print(json.dumps(result, indent=2) if args.json else summary.render(result))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code = args.handler(args)
    except UserError as e:
        print(f"clapsweep: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C; SIGTERM / SIGHUP where `run` handles them
        print("clapsweep: interrupted", file=sys.stderr)
        return getattr(e, "exit_code", 130)
    return code or 0
