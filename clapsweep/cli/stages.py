"""The method's stages by hand: `clapsweep train`, `embed`, `curate`, `eval` (clapsweep.jobs,
which runs each through the sweep's StageExecutor into a folder of its own)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_commands(subparsers: Any) -> None:
    train = subparsers.add_parser(
        "train", help="train a teacher (or a student) from a job config, then evaluate it"
    )
    train.add_argument("--config", required=True, help="job YAML (see configs/)")
    train.set_defaults(handler=cmd_train)
    emb = subparsers.add_parser("embed", help="teacher embeddings for curation and soft labels")
    emb.add_argument("--teacher", required=True, help="a teacher folder from `clapsweep train`")
    emb.add_argument("--out", required=True)
    emb.set_defaults(handler=cmd_embed)
    cur = subparsers.add_parser("curate", help="a DU / DS / ADS Improvement-Set from embeddings")
    cur.add_argument("--embed", required=True, help="a folder from `clapsweep embed`")
    cur.add_argument("--strategy", required=True, help="du | ds | ads")
    cur.add_argument("--task", help="esc50 | us8k | tut17 (ds, ads)")
    cur.add_argument("--sigma", type=float, help="caption-clip threshold (du, ads)")
    cur.add_argument("--sigma-ds", type=float, help="caption-prompt threshold (ds, ads)")
    cur.add_argument("--top-k", type=int, help="keep at most k captions per clip")
    cur.add_argument("--out", required=True)
    cur.set_defaults(handler=cmd_curate)
    ev = subparsers.add_parser("eval", help="zero-shot accuracy and retrieval of a trained job")
    ev.add_argument("--checkpoint", required=True, help="job folder or its model.pt")
    ev.add_argument("--tasks", nargs="+", help="subset of esc50 us8k tut17")
    ev.set_defaults(handler=cmd_eval)


def cmd_train(args: argparse.Namespace) -> None:
    from clapsweep import jobs
    from clapsweep.progress import StepProgress

    with StepProgress("train") as progress:
        result = jobs.train_job(args.config, report=progress)
    print(json.dumps(result, indent=2))


def cmd_embed(args: argparse.Namespace) -> None:
    from clapsweep import jobs
    from clapsweep.progress import StepProgress

    with StepProgress("embed") as progress:
        print(json.dumps(jobs.embed_job(args.teacher, args.out, report=progress), indent=2))


def cmd_curate(args: argparse.Namespace) -> None:
    from clapsweep import jobs

    options = {"strategy": args.strategy, "task": args.task, "sigma": args.sigma}
    options |= {"sigma_ds": args.sigma_ds, "top_k": args.top_k}
    print(json.dumps(jobs.curate_job(args.embed, args.out, **options), indent=2))


def cmd_eval(args: argparse.Namespace) -> None:
    from clapsweep import jobs

    print(json.dumps(jobs.eval_job(args.checkpoint, args.tasks), indent=2))
