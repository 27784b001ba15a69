"""CLI handlers for `clapsweep run` and `clapsweep status`: parse, call the runner, print.

Tables go to stdout (rich when stdout is a terminal, plain text otherwise; one JSON object
with --json); progress goes to stderr, one line per stage event. Handlers return the exit
code: 0, or 1 when a stage failed. UserErrors propagate to cli.main (exit 2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Any, TextIO

from clapsweep.sweep.local import Interrupted, stop_signals
from clapsweep.sweep.runner import run_sweep, status
from clapsweep.sweep.spec import SweepSpec, load_spec
from clapsweep.sweep.state import STATES


def add_commands(subparsers: Any) -> None:
    """Add `run` and `status` to the CLI; each parser's `handler` default is its function."""
    run = subparsers.add_parser("run", help="run a sweep: plan, resume, execute what is missing")
    run.add_argument("sweep", metavar="SWEEP", help="the sweep's YAML file")
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
    run.set_defaults(handler=cmd_run)
    stat = subparsers.add_parser("status", help="what is done / running / failed, per stage")
    stat.add_argument("sweep", metavar="SWEEP", help="the sweep's YAML file")
    stat.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    stat.add_argument("--workdir", metavar="DIR", help="the workdir given to `run`, if any")
    stat.set_defaults(handler=cmd_status)
    add_report_command(subparsers)
    add_cancel_command(subparsers)
    add_sync_command(subparsers)


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
    spec = load_spec(args.sweep)
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
        info = run_sweep(spec, dry_run=True)
        if spec.backend.kind == "slurm":
            from clapsweep.sweep.slurm_backend import describe_requests

            info["slurm_requests"] = describe_requests(spec)
        if args.json:
            print(json.dumps(info))
        else:
            _print_plan(info)
        return 0
    printer = ProgressPrinter(sys.stderr)

    def on_event(e: dict[str, Any]) -> None:
        try:
            show(e)
        except OSError:  # a terminal gone with SIGHUP: the sweep goes on without it
            pass

    def show(e: dict[str, Any]) -> None:
        if e["event"] in ("retry", "interrupt"):
            label = "retry" if e["event"] == "retry" else "stop"
            name = f"{e['name']}: " if "name" in e else ""
            printer._say(f"{label:7} {name}{e['message']}")
        elif e["event"] == "elsewhere":
            printer._say(f"busy    {e['name']}: running elsewhere ({e['owner']}); left alone")
        else:
            printer(e)

    stop = None
    try:
        with stop_signals():
            summary = run_sweep(
                spec, on_event=on_event, retries=args.retries, grace=args.grace, redo=args.redo
            )
    except Interrupted as e:
        if e.summary is None:  # before the first layer, or while it was wrapping up
            with contextlib.suppress(OSError):
                print(f"clapsweep: interrupted by {e.signal_name}; rerun the same command to "
                      "resume", file=sys.stderr)  # fmt: skip
            return e.exit_code
        stop, summary = e, e.summary
    try:
        if args.json:
            print(json.dumps(summary))
        else:
            _print_summary(summary)
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


def cmd_status(args: argparse.Namespace) -> int:
    spec = load_with_overrides(args)
    info = status(spec)
    info["slurm_jobs"] = _slurm_jobs(spec)
    if args.json:
        print(json.dumps(info))
        return 0
    for line in info["drift"]:
        print(f"warning: the spec now resolves differently from the stored plan: {line}",
              file=sys.stderr)  # fmt: skip
    fields = ["total", *STATES]
    rows = [
        [kind] + [str(c[f]) for f in fields] + [_size(c["bytes"])]
        for kind, c in [*info["kinds"].items(), ("all", info["totals"])]
    ]
    state = "a run holds the lock" if info["locked"] else "no run is active"
    _table(f"{info['sweep']} ({info['workdir']}; {state})", ["stage", *fields, "disk"], rows)
    if info["slurm_jobs"]:
        jobs = [[j["stage"], j["job_id"], j["state"], j["log"]] for j in info["slurm_jobs"]]
        _table("SLURM jobs not finished", ["stage", "job", "state", "log"], jobs)
    _print_failures(info["failures"])
    return 0


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _slurm_jobs(spec: SweepSpec) -> list[dict[str, Any]]:
    """The sweep's pending/running SLURM jobs, if it ever ran on SLURM (jobs.json)."""
    from clapsweep.sweep.slurm_backend import jobs_path, slurm_jobs

    return slurm_jobs(spec.workdir) if jobs_path(spec.workdir).is_file() else []


def add_cancel_command(subparsers: Any) -> None:
    """Add `cancel`: scancel the sweep's pending and running SLURM jobs (from jobs.json)."""
    cancel = subparsers.add_parser("cancel", help="cancel a sweep's pending and running SLURM jobs")
    cancel.add_argument("sweep", metavar="SWEEP", help="the sweep's YAML file")
    cancel.add_argument("--workdir", metavar="DIR", help="the workdir given to `run`, if any")
    cancel.set_defaults(handler=cmd_cancel)


def cmd_cancel(args: argparse.Namespace) -> int:
    from clapsweep.sweep.slurm_backend import cancel_sweep

    spec = load_with_overrides(args)
    cancelled = cancel_sweep(spec.workdir)
    for job in cancelled:
        print(f"cancelled SLURM job {job['job_id']} ({job['state']}): {job['stage']}")
    print(f"{spec.name}: {len(cancelled)} SLURM job(s) cancelled ({spec.workdir})")
    return 0


def add_report_command(subparsers: Any) -> None:
    """Add `report`: the paper's Tables 1-3 from a sweep's results (clapsweep.report)."""
    rep = subparsers.add_parser("report", help="the paper's tables from a sweep's results")
    rep.add_argument("--table", type=int, required=True, metavar="N", help="1, 2 or 3")
    rep.add_argument(
        "--sweep", metavar="SWEEP", help="the sweep's YAML or workdir (default: newest)"
    )
    rep.add_argument("--format", default="text", choices=["text", "md", "latex", "csv", "json"])
    rep.add_argument(
        "--plot", metavar="FILE.png", help="also draw the table as a figure (.png, .pdf, .svg, ...)"
    )
    rep.add_argument(
        "--by",
        choices=["sigma", "sigma_ds", "beta", "replay", "soft_target"],
        help="label and group rows by this row setting",
    )
    rep.add_argument("--folds", action="store_true", help="add per-fold accuracy tables")
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
    )


def add_sync_command(subparsers: Any) -> None:
    """Add `sync`: upload the sweep's offline W&B runs (clapsweep.sweep.sync)."""
    sync = subparsers.add_parser("sync", help="upload a sweep's offline W&B runs")
    sync.add_argument("sweep", metavar="SWEEP", help="the sweep's YAML file")
    sync.add_argument("--workdir", metavar="DIR", help="the workdir given to `run`, if any")
    sync.add_argument("--dry-run", action="store_true", help="print the wandb command only")
    sync.set_defaults(handler=cmd_sync)


def cmd_sync(args: argparse.Namespace) -> int:
    from clapsweep.sweep.sync import sync_sweep

    sync_sweep(load_with_overrides(args), dry_run=args.dry_run)
    return 0


COMMANDS = {
    "run": cmd_run,
    "status": cmd_status,
    "report": cmd_report,
    "cancel": cmd_cancel,
    "sync": cmd_sync,
}


# ----------------------------------------------------------------------------- printing


def _print_plan(info: dict[str, Any]) -> None:
    fields = ["total", "done", "new", "shared"]
    rows = [[kind] + [str(c[f]) for f in fields] for kind, c in info["kinds"].items()]
    rows.append(["all"] + [str(info["totals"][f]) for f in fields])
    title = f"plan of {info['sweep']}: {info['layers']} layers, backend {info['backend']}"
    _table(title, ["stage"] + fields, rows)
    if info.get("slurm_requests"):
        from clapsweep.sweep.slurm_backend import sbatch_flags

        for kind, request in info["slurm_requests"].items():
            if info["kinds"][kind]["total"]:
                print(f"  {kind} jobs ask sbatch for {sbatch_flags(request)}")
    else:
        for kind, r in info["resources"].items():
            print(f"  {kind} asks for {r['cpu']:g} cpu, {r['gpu']:g} gpu")
    _print_schedule(info["schedule"])
    print(f"workdir: {info['workdir']}")


def _print_schedule(schedule: dict[str, Any]) -> None:
    if schedule.get("teacher_pairs") is None:
        print(f"teacher pairs and student steps unavailable: {schedule.get('unavailable')}")
        return
    counts = schedule["teacher_pairs"]
    shown = ", ".join(f"{n} {c}" for n, c in counts.items())
    print(f"teacher pairs: {sum(counts.values())} ({shown})")
    groups: dict[tuple, list] = {}
    for st in schedule["students"]:
        groups.setdefault((st["row"], st["fraction"]), []).append(st)
    rows = []
    for (row, fraction), group in groups.items():
        steps = sorted({"after curation" if g["steps"] is None else str(g["steps"]) for g in group})
        rows.append([row, f"{fraction:g}", str(len(group)), " / ".join(steps)])
    if rows:
        _table("planned steps per student", ["row", "fraction", "students", "steps"], rows)


def _print_summary(s: dict[str, Any]) -> None:
    elsewhere = s.get("elsewhere") or []
    print(
        f"{s['sweep']}: {s['stages_total']} stages: {s['stages_executed']} run, "
        f"{s['stages_cached']} cached, {s['stages_failed']} failed, "
        f"{s['stages_skipped']} skipped, {s.get('stages_not_run', 0)} not run"
        + (f", {len(elsewhere)} running elsewhere" if elsewhere else "")
        + f", in {s['duration_s']:.1f} s ({s['workdir']})"
    )
    for e in elsewhere:
        print(f"RUNNING ELSEWHERE {e['name']}: {e['owner']}; left alone (rerun once it ended)")
    _print_failures(s["failures"])
    if s.get("stopped"):
        if any(f["message"] == s["stopped"] for f in s["failures"]):
            print("the sweep stopped there (see above): the stages after it did not start")
        else:
            print(f"the sweep stopped: {s['stopped']}")
    if s.get("interrupted"):
        print(f"interrupted by {s['interrupted']}; rerun the same command to resume")


def _print_failures(failures: list[dict[str, Any]]) -> None:
    for f in failures:
        print(f"FAILED {f['name']}: {f['message']}\n  log: {f['log']}")
    if failures:
        print("A failed stage is retried by the next `clapsweep run`.")


def _table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for i, h in enumerate(headers):
            table.add_column(h, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    print(title)
    for row in [headers, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells))


def describe_users(users: list[dict[str, Any]]) -> str:
    """'DU seed 0 f=1.0 esc50,us8k (+3 more)': who a stage is for."""
    if not users:
        return ""
    u = users[0]
    text = str(u["row"])
    if u.get("seed") is not None:
        text += f" seed {u['seed']} f={u['fraction']}"
    if len(u.get("tasks", [])) == 1:
        text += f" {u['tasks'][0]}"
    return text + (f" (+{len(users) - 1} more)" if len(users) > 1 else "")


class ProgressPrinter:
    """on_event callback: one line per stage start, finish, failure or skip; training
    progress at most every `every` seconds per stage."""

    def __init__(self, stream: TextIO, every: float = 10.0) -> None:
        self.stream, self.every = stream, every
        self.started: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e["event"]
        if kind == "plan":
            todo = e["stages_total"] - e["stages_cached"]
            self._say(f"{e['stages_total']} stages: {e['stages_cached']} done, {todo} to run")
        elif kind == "data":
            self._say(f"synthworld ({e['scale']}) in {e['root']}: generated on first use")
        elif kind == "start":
            self.started[e["name"]] = time.time()
            self._say(f"start   {e['name']}  {describe_users(e['users'])}")
        elif kind == "progress":
            now = time.time()
            if now - self.last.get(e["name"], 0.0) >= self.every:
                self.last[e["name"]] = now
                shown = " ".join(f"{k} {_short(v)}" for k, v in e["metrics"].items())
                self._say(f"        {e['name']}  {shown}")
        elif kind == "done":
            took = e.get("seconds") or time.time() - self.started.get(e["name"], time.time())
            self._say(f"done    {e['name']}  {took:.1f} s")
        elif kind == "failed":
            self._say(f"FAILED  {e['name']}: {e['message']} (log: {e['log']})")
        elif kind == "slurm":
            self._say(f"slurm   {e['message']}")
        elif kind == "skipped":
            self._say(f"skipped {e['name']}: its input {e['because']} did not finish")

    def _say(self, line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", file=self.stream, flush=True)


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
