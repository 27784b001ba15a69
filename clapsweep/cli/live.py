"""The live view of `clapsweep run` on a terminal: per stage kind done / running / failed /
skipped / pending, each running stage with its step k/N and samples/s, and an ETA for the
sweep, redrawn at most 4 times a second (rich.live). Where progress does not go to a
terminal, `run` prints plain lines instead (clapsweep.cli.show.ProgressPrinter).

SweepProgress is the state (plain, fed the run's events, testable without a terminal);
render() draws it; LiveView joins the two as run's on_event callback.

The ETA: per kind, the mean duration of the stages of that kind finished in this run times
what is left of it (the pending stages, and what the mean leaves of each running one),
summed over the kinds and divided by the parallelism (the backend's workers or
max_concurrent, else the most stages seen running at once). "ETA unknown" until one stage
of every kind with work left has finished.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from clapsweep.cli.show import describe_users, duration, notice

REFRESH_PER_S = 4
MAX_RUNNING_ROWS = 12  # more running stages are summed up in one line
KINDS = ("teacher", "embed", "curate", "student", "eval")  # the pipeline's order
COLUMNS = ("total", "done", "running", "failed", "skipped", "pending")


@dataclass
class Running:
    """A stage running now, as far as its progress events tell."""

    kind: str
    users: list
    started: float
    step: int | None = None
    of: int | None = None
    samples_per_s: float | None = None


class SweepProgress:
    """Counts per stage kind, the running stages and the ETA, from run's events.

    The plan event must carry `kinds` ({kind: {"total", "cached"}}: the CLI adds it from
    plan.json); events are idempotent per stage (a start or done told twice counts once).
    `clock` is injectable for tests."""

    def __init__(self, parallelism: int | None = None, clock: Callable[[], float] = time.monotonic):
        self.parallelism = parallelism
        self.clock = clock
        self.totals: dict[str, int] = {}
        self.cached: dict[str, int] = {}
        self.status: dict[str, tuple[str, str]] = {}  # name -> (kind, done|failed|skipped)
        self.running: dict[str, Running] = {}
        self.durations: dict[str, list[float]] = {}  # kind -> seconds of finished stages
        self.peak = 0  # the most stages seen running at once
        self.planned = False

    def update(self, e: dict[str, Any]) -> None:
        kind, now = e["event"], self.clock()
        if kind == "plan":
            for k, c in (e.get("kinds") or {}).items():
                self.totals[k], self.cached[k] = c["total"], c["cached"]
            self.planned = True
        elif kind == "start":
            self.status.pop(e["name"], None)
            if e["name"] not in self.running:
                self.running[e["name"]] = Running(e["kind"], e.get("users", []), now)
            self.peak = max(self.peak, len(self.running))
        elif kind == "progress":
            self._progress(e, now)
        elif kind == "retry" and e.get("name") in self.running:
            stage = self.running[e["name"]]  # a fresh worker starts it over
            stage.step = stage.of = stage.samples_per_s = None
        elif kind == "done":
            stage = self.running.pop(e["name"], None)
            if self.status.get(e["name"], ("", ""))[1] != "done":
                seconds = e.get("seconds")
                if not isinstance(seconds, int | float):
                    seconds = now - stage.started if stage else None
                if seconds is not None:
                    self.durations.setdefault(e["kind"], []).append(float(seconds))
            self.status[e["name"]] = (e["kind"], "done")
        elif kind in ("failed", "skipped", "elsewhere"):
            self.running.pop(e["name"], None)
            self.status[e["name"]] = (e["kind"], "failed" if kind == "failed" else "skipped")

    def _progress(self, e: dict[str, Any], now: float) -> None:
        stage = self.running.get(e["name"])
        if stage is None:  # a forwarded report that overtook its start
            stage = self.running[e["name"]] = Running(e["kind"], e.get("users", []), now)
        m = e.get("metrics", {})
        if "step" in m:
            stage.step, stage.of = m["step"], m.get("total_steps", stage.of)
        elif "embedded" in m:
            stage.step, stage.of = m["embedded"], m.get("of", stage.of)
        if isinstance(m.get("samples_per_s"), int | float):
            stage.samples_per_s = float(m["samples_per_s"])

    def counts(self) -> dict[str, dict[str, int]]:
        """Per kind (the pipeline's order, then any others seen), the COLUMNS."""
        seen = {k for k, _ in self.status.values()} | {r.kind for r in self.running.values()}
        seen |= set(self.totals)
        out = {}
        for k in [k for k in KINDS if k in seen] + sorted(seen - set(KINDS)):
            states = [st for kind, st in self.status.values() if kind == k]
            c = {s: states.count(s) for s in ("done", "failed", "skipped")}
            c["done"] += self.cached.get(k, 0)
            c["running"] = sum(1 for r in self.running.values() if r.kind == k)
            seen_here = c["done"] + c["failed"] + c["skipped"] + c["running"]
            c["total"] = max(self.totals.get(k, 0), seen_here)
            c["pending"] = c["total"] - seen_here
            out[k] = {col: c[col] for col in COLUMNS}
        return out

    def eta(self) -> tuple[float | None, str]:
        """(seconds left, "") or (None, why not)."""
        if not self.planned:
            return None, "ETA unknown (planning)"
        now, work = self.clock(), 0.0
        for kind, c in self.counts().items():
            running = [r for r in self.running.values() if r.kind == kind]
            if not c["pending"] and not running:
                continue
            finished = self.durations.get(kind)
            if not finished:
                return None, f"ETA unknown (no {kind} stage finished yet)"
            mean = sum(finished) / len(finished)
            work += c["pending"] * mean + sum(max(0.0, mean - (now - r.started)) for r in running)
        return work / self.parallel(), ""

    def parallel(self) -> int:
        return self.parallelism or max(1, self.peak)


def render(p: SweepProgress) -> Group:
    """The view: the counts table, the running stages, the ETA line."""
    counts = Table(title="stages" if p.planned else "stages (planning)", title_justify="left")
    counts.add_column("kind")
    for col in COLUMNS:
        counts.add_column(col, justify="right")
    rows = p.counts()
    for kind, c in rows.items():
        counts.add_row(kind, *(str(c[col]) for col in COLUMNS))
    if len(rows) > 1:
        counts.add_row("all", *(str(sum(c[col] for c in rows.values())) for col in COLUMNS))
    parts: list[Any] = [counts]
    if p.running:
        parts.append(_running_table(p))
    seconds, why = p.eta()
    left = any(c["pending"] or c["running"] for c in rows.values())
    eta = why or f"ETA {duration(seconds)} (parallelism {p.parallel()})"
    if p.planned and not left:
        eta = "nothing left to run"
    parts.append(Text(eta))
    return Group(*parts)


def _running_table(p: SweepProgress) -> Table:
    t = Table(title="running", title_justify="left")
    for col, justify in (("stage", "left"), ("for", "left"), ("step", "right"),
                         ("samples/s", "right"), ("elapsed", "right")):  # fmt: skip
        t.add_column(col, justify=justify)
    now = p.clock()
    stages = sorted(p.running.items(), key=lambda item: item[1].started)
    for name, r in stages[:MAX_RUNNING_ROWS]:
        step = "" if r.step is None else f"{r.step}/{r.of}" if r.of else str(r.step)
        rate = "" if r.samples_per_s is None else f"{r.samples_per_s:.1f}"
        t.add_row(name, describe_users(r.users), step, rate, duration(now - r.started))
    if len(stages) > MAX_RUNNING_ROWS:
        t.add_row(f"+{len(stages) - MAX_RUNNING_ROWS} more", "", "", "", "")
    return t


class LiveView:
    """run's on_event callback on a terminal: updates a SweepProgress, prints notices
    (failures, skips, retries, stops) above the view, and redraws it at most REFRESH_PER_S
    times a second. Use as a context manager around the run."""

    def __init__(self, progress: SweepProgress, console: Console | None = None) -> None:
        self.progress = progress
        self.lock = threading.Lock()  # the redraw runs in rich's thread, events in ours
        self.live = Live(
            console=console or Console(stderr=True),
            get_renderable=self._renderable,
            refresh_per_second=REFRESH_PER_S,
            # Stray prints go above the view; a piped stdout (--json) stays untouched.
            redirect_stdout=sys.stdout.isatty(),
        )

    def __enter__(self) -> LiveView:
        self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.live.stop()
        except OSError:  # a terminal gone with SIGHUP: nothing left to draw on
            pass

    def __call__(self, e: dict[str, Any]) -> None:
        with self.lock:
            self.progress.update(e)
        line = notice(e)
        if line is not None:
            stamped = f"[{time.strftime('%H:%M:%S')}] {line}"
            self.live.console.print(stamped, markup=False, highlight=False, soft_wrap=True)

    def _renderable(self) -> Group:
        with self.lock:
            return render(self.progress)


def parallelism_of(backend: Any) -> int | None:
    """How many stages the backend runs at once, when its spec says (local workers, Ray's
    max_concurrent); None lets the view use the most it has seen."""
    if backend.kind == "local":
        return max(1, backend.workers)
    if backend.kind == "ray" and backend.max_concurrent:
        return backend.max_concurrent
    return None


def plan_kinds(workdir: str, store_root: str | None) -> dict[str, dict[str, int]]:
    """Per kind, the stages of the plan the run just stored (plan.json) and how many are
    done: what the plan event lacks for the per-kind counts."""
    from clapsweep.store import Store
    from clapsweep.sweep.plan import load_plan

    plan = load_plan(workdir)
    store = Store(workdir, store_root)
    kinds: dict[str, dict[str, int]] = {}
    for stage in plan.stages.values() if plan else []:
        c = kinds.setdefault(stage.kind, {"total": 0, "cached": 0})
        c["total"] += 1
        c["cached"] += store.is_done(stage.name)
    return kinds
