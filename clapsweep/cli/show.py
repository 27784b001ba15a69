"""How the sweep commands print: plans, summaries and status as tables (rich on a terminal,
aligned plain text otherwise), and progress as one line per stage event."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def print_plan(info: dict[str, Any]) -> None:
    fields = ["total", "done", "new", "shared"]
    if info["totals"].get("other_sweeps"):  # a project store other sweeps also use
        fields.append("other_sweeps")
    rows = [[kind] + [str(c[f]) for f in fields] for kind, c in info["kinds"].items()]
    rows.append(["all"] + [str(info["totals"][f]) for f in fields])
    title = f"plan of {info['sweep']}: {info['layers']} layers, backend {info['backend']}"
    table(title, ["stage"] + fields, rows)
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
        table("planned steps per student", ["row", "fraction", "students", "steps"], rows)


def print_summary(s: dict[str, Any]) -> None:
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
    print_failures(s["failures"])
    if s.get("stopped"):
        if any(f["message"] == s["stopped"] for f in s["failures"]):
            print("the sweep stopped there (see above): the stages after it did not start")
        else:
            print(f"the sweep stopped: {s['stopped']}")
    if s.get("interrupted"):
        print(f"interrupted by {s['interrupted']}; rerun the same command to resume")


def print_failures(failures: list[dict[str, Any]]) -> None:
    for f in failures:
        print(f"FAILED {f['name']}: {f['message']}\n  log: {f['log']}")
    if failures:
        print("A failed stage is retried by the next `clapsweep run`.")


def table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        t = Table(title=title)
        for i, h in enumerate(headers):
            t.add_column(h, justify="left" if i == 0 else "right")
        for row in rows:
            t.add_row(*row)
        Console().print(t)
        return
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    print(title)
    for row in [headers, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells))


def size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


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
    """run's on_event callback: one line per stage start, finish, failure, skip, retry or
    stop; training progress at most every `every` seconds per stage."""

    def __init__(self, stream: TextIO, every: float = 10.0) -> None:
        self.stream, self.every = stream, every
        self.started: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e["event"]
        if kind == "plan":
            todo = e["stages_total"] - e["stages_cached"]
            self._say(f"{e['stages_total']} stages: {e['stages_cached']} done, {todo} to run")
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
        else:
            line = notice(e)
            if line is not None:
                self._say(line)

    def _say(self, line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", file=self.stream, flush=True)


def notice(e: dict[str, Any]) -> str | None:
    """The line of an event that is news on its own (a failure, a skip, a retry, a stop, a
    stage left alone, data being generated, a SLURM message); None for the others. The
    progress printer and the live view both print these."""
    kind = e["event"]
    if kind == "data":
        return f"synthworld ({e['scale']}) in {e['root']}: generated on first use"
    if kind == "failed":
        return f"FAILED  {e['name']}: {e['message']} (log: {e['log']})"
    if kind == "slurm":
        return f"slurm   {e['message']}"
    if kind == "skipped":
        return f"skipped {e['name']}: its input {e['because']} did not finish"
    if kind in ("retry", "interrupt"):
        label = "retry" if kind == "retry" else "stop"
        name = f"{e['name']}: " if "name" in e else ""
        return f"{label:7} {name}{e['message']}"
    if kind == "elsewhere":
        return f"busy    {e['name']}: running elsewhere ({e['owner']}); left alone"
    return None


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def duration(seconds: float) -> str:
    """'42 s', '12 min 5 s', '3 h 20 min', '2 d 4 h'."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def print_estimate(est: dict[str, Any]) -> None:
    """The dry run's compute estimate (clapsweep.bench.estimate), per stage kind."""
    if est["missing"]:
        print(est["missing"])
        return
    if not est["kinds"]:
        print("estimated compute: nothing to run (every stage is done)")
        return
    sources = "; ".join(
        f"{r['benchmark']} measured {str(r.get('measured', '?'))[:10]} on "
        f"{r.get('device_name') or '?'} ({r.get('device') or '?'})"
        for r in est["sources"]
    )
    unknown = sum(k["unknown"] for k in est["kinds"].values())
    total = duration(est["seconds"])
    if unknown:
        total += f" + {unknown} stage(s) not estimated"
    print(f"estimated compute: {total} (from {est['file']}, {sources or 'no figure matched'})")
    for kind, k in est["kinds"].items():
        known = k["stages"] - k["unknown"]
        text = f"  {kind:8} {k['stages']:4} to run"
        if known:
            text += f"  {duration(k['seconds'])} for {known} ({k['work']:,} {k['unit']})"
        if k["unknown"]:
            text += f"  {k['unknown']} not estimated: {k['why']}"
        print(text)
    print("  (stage compute, not wall time: stages that run at once share it)")
