"""`clapsweep run`, `status`, `cancel`, `sync` and `verify`: parse, call the sweep library
(clapsweep.sweep), print (clapsweep.cli.show).

Tables go to stdout (rich when stdout is a terminal, plain text otherwise; one JSON object
with --json); progress goes to stderr: a live view when stderr is a terminal
(clapsweep.cli.live), else one line per stage event. Handlers return the exit
code: 0, or 1 when a stage failed (verify: a stage differs). UserErrors propagate to
clapsweep.cli.main (exit 2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from clapsweep.cli.live import LiveView, SweepProgress, parallelism_of, plan_kinds
from clapsweep.cli.show import (
    ProgressPrinter,
    print_estimate,
    print_failures,
    print_plan,
    print_summary,
    size,
    table,
)
from clapsweep.recipe.run import describe_plan, status
from clapsweep.recipe.search import run_method, with_search_results
from clapsweep.recipe.spec import SweepSpec, load_spec
from clapsweep.sweep.local import Interrupted, stop_signals
from clapsweep.sweep.state import STATES

_SWEEP = {"metavar": "SWEEP", "help": "the sweep's YAML file"}
_WORKDIR = {"metavar": "DIR", "help": "the workdir given to `run`, if any"}


def add_run_command(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="run a sweep: plan, resume, execute what is missing")
    run.add_argument("sweep", **_SWEEP)
    run.add_argument(
        "overrides",
        nargs="*",
        metavar="PATH=VALUE",
        help="set a sweep value, checked like the file: grid.seed=[0,1,2] train.lr=3e-4 "
        "'grid.rows[DU].sigma=[0.6,0.7]' (recorded in the run's spec.yaml)",
    )
    run.add_argument("--dry-run", action="store_true", help="print the plan; run nothing")
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    run.add_argument("--backend", choices=["local", "ray", "slurm"], help="override backend.kind")
    run.add_argument("--profile", metavar="NAME", help="slurm: override backend.profile")
    run.add_argument("--workdir", metavar="DIR", help="override the sweep's workdir")
    run.add_argument("--no-track", action="store_true", help="no W&B tracking for this run")
    run.add_argument(
        "--retries",
        type=_count,
        default=1,
        metavar="N",
        help="local workers: run a stage whose worker process died N more times (default 1)",
    )
    run.add_argument(
        "--grace",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="local workers: on SIGINT/SIGTERM/SIGHUP the running stages get this long to "
        "finish before their workers are stopped (default 10; a second signal stops at once)",
    )
    run.add_argument(
        "--redo",
        action="append",
        metavar="KEY",
        help="compute this stage again (its name, key or a unique key prefix; repeatable); "
        "stages that read it follow when its output changes",
    )
    run.add_argument(
        "--search-only",
        action="store_true",
        help="a sweep with search: search (or finish the search) and stop before the re-run",
    )
    run.set_defaults(handler=cmd_run)


def add_status_command(subparsers: Any) -> None:
    stat = subparsers.add_parser("status", help="what is done / running / failed, per stage")
    stat.add_argument("sweep", **_SWEEP)
    stat.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    stat.add_argument("--workdir", **_WORKDIR)
    stat.set_defaults(handler=cmd_status)


def add_cancel_command(subparsers: Any) -> None:
    cancel = subparsers.add_parser("cancel", help="cancel a sweep's pending and running SLURM jobs")
    cancel.add_argument("sweep", **_SWEEP)
    cancel.add_argument("--workdir", **_WORKDIR)
    cancel.set_defaults(handler=cmd_cancel)


def add_sync_command(subparsers: Any) -> None:
    sync = subparsers.add_parser("sync", help="upload a sweep's offline W&B runs")
    sync.add_argument("sweep", **_SWEEP)
    sync.add_argument("--workdir", **_WORKDIR)
    sync.add_argument("--dry-run", action="store_true", help="print the wandb command only")
    sync.set_defaults(handler=cmd_sync)


def add_verify_command(subparsers: Any) -> None:
    v = subparsers.add_parser(
        "verify", help="recompute stages and compare their bytes with the store"
    )
    v.add_argument("sweep", **_SWEEP)
    v.add_argument(
        "--stage", action="append", metavar="KEY", help="a stage key or name (repeatable)"
    )
    v.add_argument("--workdir", **_WORKDIR)
    v.set_defaults(handler=cmd_verify)


def add_gc_command(subparsers: Any) -> None:
    gc = subparsers.add_parser("gc", help="list (or --delete) stages no sweep of a store plans")
    gc.add_argument("--store", default="runs/store", metavar="DIR", help="default runs/store")
    gc.add_argument("--delete", action="store_true", help="remove them (else only list them)")
    gc.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    gc.set_defaults(handler=cmd_gc)


def add_commands(subparsers: Any) -> None:
    """run, status, cancel, sync, verify and gc."""
    add_run_command(subparsers)
    add_status_command(subparsers)
    add_cancel_command(subparsers)
    add_sync_command(subparsers)
    add_verify_command(subparsers)
    add_gc_command(subparsers)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be 0 or more")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be 0 or more seconds")
    return value


def load_with_overrides(args: argparse.Namespace) -> SweepSpec:
    """The sweep's spec with the command's overrides, --backend, --profile, --workdir and
    --no-track."""
    spec = load_spec(args.sweep, getattr(args, "overrides", None))
    if getattr(args, "backend", None):
        spec.backend.kind = args.backend
    if getattr(args, "profile", None):
        is_path = "/" in args.profile or args.profile.endswith(".yaml")
        spec.backend.profile = os.path.abspath(args.profile) if is_path else args.profile
    if spec.backend.kind == "slurm" and (
        getattr(args, "backend", None) or getattr(args, "profile", None)
    ):
        from clapsweep.sweep.slurm_profile import load_profile

        load_profile(spec.backend.profile, spec.backend.slurm)  # fail before anything runs
    if getattr(args, "workdir", None):
        spec.workdir = os.path.abspath(args.workdir)
    if getattr(args, "no_track", False):
        spec.tracking.wandb.enabled = False
    return spec


def cmd_run(args: argparse.Namespace) -> int:
    """Exit code: 0; 1 when a stage failed; 2 when the sweep stopped because the store could
    not be written (a full disk: the message says where and how much is free); 128 + the
    signal's number when SIGINT (130), SIGTERM (143) or SIGHUP (129) stopped it. The summary
    is printed in every case but an interrupt before the first stage."""
    spec = load_with_overrides(args)
    if args.dry_run:
        return _dry_run(spec, args.json)
    # A live view where progress goes to a terminal; plain lines (which tests and CI read)
    # everywhere else.
    view = LiveView(SweepProgress(parallelism_of(spec.backend))) if sys.stderr.isatty() else None
    printer = view or ProgressPrinter(sys.stderr)

    def on_event(e: dict[str, Any]) -> None:
        try:
            if e["event"] == "search":  # a finished search (clapsweep.recipe.search)
                print(search_line(e), file=sys.stderr)
                return
            if view is not None and e["event"] == "plan" and "kinds" not in e:
                e = e | {"kinds": plan_kinds(spec.workdir, spec.store)}
            printer(e)
        except OSError:  # a terminal gone with SIGHUP: the sweep goes on without it
            pass

    stop = None
    try:
        with view or contextlib.nullcontext(), stop_signals():
            summary = run_method(
                spec, args.search_only, on_event,
                retries=args.retries, grace=args.grace, redo=args.redo,
            )  # fmt: skip
    except Interrupted as e:
        if e.summary is None:  # before the first layer, or while it was wrapping up
            with contextlib.suppress(OSError):
                print(f"clapsweep: interrupted by {e.signal_name}; rerun the same command to "
                      "resume", file=sys.stderr)  # fmt: skip
            return e.exit_code
        stop, summary = e, e.summary
    if "search" in summary:  # --search-only
        print(json.dumps(summary) if args.json else f"search done in {summary['duration_s']:.0f} s")
        return 0
    try:
        if args.json:
            print(json.dumps(summary))
        else:
            print_summary(summary)
        sys.stdout.flush()
    except OSError:
        if stop is None:
            raise
        # SIGHUP: the terminal is gone; the exit code still says what happened
    if stop is not None:
        return stop.exit_code
    if summary.get("stopped"):
        print(f"clapsweep: error: {summary['stopped']}", file=sys.stderr)
        return 2
    return 1 if summary["stages_failed"] else 0


def search_line(e: dict[str, Any]) -> str:
    best = e["best"]
    values = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["values"].items()
    )
    return (
        f"search {e['task']}: {e['trials']} trials; chosen {values} "
        f"(validation accuracy {100 * best['val_accuracy']:.1f}%)"
    )


def _dry_run(spec: SweepSpec, as_json: bool) -> int:
    """Print the plan, the resources each backend will request and the compute estimate
    from the bench figures (clapsweep.bench.estimate); run nothing."""
    from clapsweep.bench.estimate import estimate_compute
    from clapsweep.recipe.plan import build_plan
    from clapsweep.store import Store

    plan = build_plan(spec)  # once: describe_plan and the estimate share it
    info = describe_plan(spec, plan) | {"dry_run": True}
    if spec.backend.kind == "slurm":
        from clapsweep.recipe.run import slurm_profile
        from clapsweep.sweep.slurm_backend import describe_requests

        info["slurm_requests"] = describe_requests(slurm_profile(spec), spec.name)
    store = Store(spec.workdir, spec.store)
    info["estimate"] = estimate_compute(plan, store.is_done, info["schedule"])
    if as_json:
        print(json.dumps(info))
    else:
        print_plan(info)
        print_estimate(info["estimate"])
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from clapsweep.sweep.slurm_backend import jobs_path, slurm_jobs

    spec = with_search_results(load_with_overrides(args))  # a search's chosen values
    info = status(spec)
    # The sweep's pending/running SLURM jobs, if it ever ran on SLURM (jobs.json).
    info["slurm_jobs"] = slurm_jobs(spec.workdir) if jobs_path(spec.workdir).is_file() else []
    if args.json:
        print(json.dumps(info))
        return 0
    for line in info["drift"]:
        print(f"warning: the spec now resolves differently from the stored plan: {line}",
              file=sys.stderr)  # fmt: skip
    fields = ["total", *STATES]
    rows = [
        [kind] + [str(c[f]) for f in fields] + [size(c["bytes"])]
        for kind, c in [*info["kinds"].items(), ("all", info["totals"])]
    ]
    state = "a run holds the lock" if info["locked"] else "no run is active"
    table(f"{info['sweep']} ({info['workdir']}; {state})", ["stage", *fields, "disk"], rows)
    if info["slurm_jobs"]:
        jobs = [[j["stage"], j["job_id"], j["state"], j["log"]] for j in info["slurm_jobs"]]
        table("SLURM jobs not finished", ["stage", "job", "state", "log"], jobs)
    print_failures(info["failures"])
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """scancel the sweep's pending and running SLURM jobs (from jobs.json)."""
    from clapsweep.sweep.slurm_backend import cancel_sweep

    spec = load_with_overrides(args)
    cancelled = cancel_sweep(spec.workdir)
    for job in cancelled:
        print(f"cancelled SLURM job {job['job_id']} ({job['state']}): {job['stage']}")
    print(f"{spec.name}: {len(cancelled)} SLURM job(s) cancelled ({spec.workdir})")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Upload the sweep's offline W&B runs (clapsweep.sweep.sync)."""
    from clapsweep.sweep.sync import sync_sweep

    sync_sweep(load_with_overrides(args), dry_run=args.dry_run)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Recompute stages in a scratch folder and compare their bytes with the store
    (clapsweep.sweep.verify)."""
    from clapsweep.sweep.verify import pick_stages, verify_stage

    spec = with_search_results(load_with_overrides(args))
    stages = pick_stages(spec, args.stage)
    bad = 0
    for stage in stages:
        r = verify_stage(spec, stage)
        if r["damaged"]:
            print(f"damaged {r['name']}: {', '.join(r['damaged'])} changed since it was written")
        if r["differ"]:
            print(f"differ  {r['name']}: recomputed {', '.join(r['differ'])} differ")
        if r["damaged"] or r["differ"]:
            bad += 1
        else:
            print(f"match   {r['name']} ({r['files']} files)", flush=True)
    print(f"{len(stages) - bad} of {len(stages)} stage(s) match")
    return 1 if bad else 0


def cmd_gc(args: argparse.Namespace) -> int:
    from clapsweep.sweep.gc import collect

    result = collect(args.store, delete=args.delete)
    if args.json:
        print(json.dumps(result))
        return 0
    for name in result["unreferenced"]:
        print(f"{'removed' if args.delete else 'unused '} {name}")
    verb = "removed" if args.delete else "no sweep plans (rerun with --delete to remove)"
    sweeps = ", ".join(result["sweeps"]) or "none"
    print(
        f"{len(result['unreferenced'])} stage folder(s), {result['bytes'] / 1e6:.1f} MB, {verb}; "
        f"{result['kept']} kept for sweeps: {sweeps}"
    )
    return 0
