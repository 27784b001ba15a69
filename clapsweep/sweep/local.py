"""The backend interface, and the local backend: stages run one by one in this process, or
in a pool of worker processes on this machine.

A backend runs one DAG layer at a time. It receives the layer's stages (none depends on
another) and `execute`, a picklable callable that runs one stage completely: it resumes the
stage's .partial folder, calls the stage function, writes meta.json and renames the folder
into place, or records the failure and raises StageFailed. A backend only decides where and
when `execute` runs (this process, Ray workers, SLURM jobs) and passes on progress: `execute`
takes an optional `report` callable for the backend's own reporting (e.g. ray.tune.report).
A backend whose stages run in other processes forwards their progress to the driver's
`on_event` as {"event": "progress", "metrics": ..., name, kind, ...} events, at most one per
PROGRESS_EVERY_S per stage and always the stage's last one (Throttle); the tracker still
logs every report where the stage runs.

Stopping. A KeyboardInterrupt (Ctrl-C, or SIGTERM / SIGHUP turned into `Interrupted` by the
driver's handlers) stops a layer: no further stage starts, and run_layer raises `Interrupted`
with the results of the stages that finished. A result whose exception has a true
`stops_sweep` attribute (a full disk) also stops the layer: the stages not started yet are
left out of the results, and the driver stops the sweep.

The worker pool. Each worker is a spawned process that runs one stage at a time, so when a
worker dies (killed, out of memory, a crash in native code) the stage it ran is known: only
that stage is lost, and it runs again in a fresh worker (`retries` times); the other workers
and the stages not started yet are not disturbed. Workers ignore SIGINT and SIGHUP (the
driver decides when they stop: on an interrupt they get `grace` seconds to finish the stage
they run, then SIGTERM, then SIGKILL) and never outlive the driver: on Linux the kernel kills
them when it dies (PR_SET_PDEATHSIG), and everywhere a thread of theirs exits them once their
parent is gone. A worker sends its stage's progress over the same pipe as its answer,
("progress", metrics) messages before ("ok" | "error", value); the driver reads them while it
waits for the answers.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

from clapsweep.store import Store
from clapsweep.sweep.plan import PlannedStage

Report = Callable[[dict[str, Any]], None]
Results = dict[str, dict[str, Any] | BaseException]
PROGRESS_EVERY_S = 0.5  # forwarded progress: at most 2 events a second per stage


class Throttle:
    """A report callable that passes on at most one report per `every` seconds to `send`
    and holds back the rest; flush() (at the end of the stage) sends the last one held back,
    so the driver always sees a stage's final metrics."""

    def __init__(self, send: Report, every: float = PROGRESS_EVERY_S) -> None:
        self.send, self.every = send, every
        self.sent_at = -float("inf")
        self.held: dict[str, Any] | None = None

    def __call__(self, metrics: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self.sent_at < self.every:
            self.held = metrics
            return
        self.sent_at, self.held = now, None
        self.send(metrics)

    def flush(self) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            self.send(held)


class Execute(Protocol):
    def __call__(self, stage: PlannedStage, report: Report | None = None) -> dict[str, Any]: ...


class Interrupted(KeyboardInterrupt):
    """The sweep was asked to stop: Ctrl-C (SIGINT), SIGTERM or SIGHUP. `results` holds the
    interrupted layer's results so far; run_sweep adds the sweep's `summary`."""

    def __init__(self, signum: int = signal.SIGINT, results: Results | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.results: Results = results or {}
        self.summary: dict[str, Any] | None = None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_RECEIVED: list[int] = []  # the signals stop_signals' handler received, in order


def interrupted(e: KeyboardInterrupt, results: Results | None = None) -> Interrupted:
    """`e` as an Interrupted, with `results` added. A plain KeyboardInterrupt is Ctrl-C, or
    the signal stop_signals received when a library (Ray) raised its own in its place."""
    out = e if isinstance(e, Interrupted) else Interrupted(_RECEIVED[0] if _RECEIVED else 2)
    if results:
        out.results = {**out.results, **results}
    return out


class WorkerDied(RuntimeError):
    """The worker process running a stage died; the message says how."""


def stops_sweep(outcome: Any) -> bool:
    return bool(getattr(outcome, "stops_sweep", False))


class Backend:
    """Runs the stages of one layer; returns per stage name its result dict or exception."""

    name = "base"
    # Whether the driver leaves alone a stage whose .partial folder another live process on
    # this host owns (Store.live_owner): "running elsewhere". Not for a backend that
    # re-attaches to the stages it started before (SLURM's jobs), whose owners are its own.
    checks_owners = False

    def run_layer(self, stages: list[PlannedStage], execute: Execute) -> Results:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the backend started (a Ray runtime, ...). Called once, at the end."""


class LocalBackend(Backend):
    """On this machine. With workers=0 in this process, in the order given (debugging, CI);
    with workers=N in N worker processes, so a small machine runs N small stages at once
    instead of one stage on N contending threads (each stage sets its own thread count,
    runtime.threads). `retries`: how many more times a stage whose worker died runs (in a
    fresh worker); `grace`: seconds the running stages get to finish after an interrupt."""

    name = "local"
    checks_owners = True

    def __init__(self, workers: int = 0, retries: int = 1, grace: float = 10.0):
        self.workers = workers
        self.retries = retries
        self.grace = grace
        self.pool: WorkerPool | None = None

    def run_layer(self, stages: list[PlannedStage], execute: Execute) -> Results:
        if self.workers:
            return self._run_in_pool(stages, execute)
        results: Results = {}
        for stage in stages:
            try:
                results[stage.name] = execute(stage)
            except KeyboardInterrupt as e:  # the stage ended at once; its .partial stays
                raise interrupted(e, results) from None
            except Exception as e:  # recorded by execute; the rest of the layer goes on
                results[stage.name] = e
                if stops_sweep(e):
                    break
        return results

    def _run_in_pool(self, stages: list[PlannedStage], execute: Execute) -> Results:
        if self.pool is None:
            self.pool = WorkerPool(self.workers)
        pool = self.pool
        on_event = getattr(execute, "on_event", None)
        emit = on_event or (lambda event: None)
        forward = None
        if on_event is not None:  # workers cannot print through the driver's console
            execute = dataclasses.replace(execute, on_event=None, reported=set())

            def forward(stage: PlannedStage, metrics: dict[str, Any]) -> None:
                emit({"event": "progress", "metrics": metrics} | stage.event_fields())

        store = execute.open_store() if hasattr(execute, "open_store") else None
        queue = collections.deque(stages)
        deaths: collections.Counter[str] = collections.Counter()
        results: Results = {}
        try:
            while queue or pool.busy:
                while queue and pool.has_room:
                    stage = queue.popleft()
                    try:
                        task = pickle.dumps((execute, stage))
                    except Exception as e:  # a stage function defined where workers lack it
                        results[stage.name] = RuntimeError(
                            f"cannot send this stage to a worker process: {type(e).__name__}: {e}"
                        )
                        continue
                    emit({"event": "start", **stage.event_fields()})
                    pool.submit(stage, task)
                for stage, outcome in pool.wait_any(on_progress=forward):
                    if isinstance(outcome, WorkerDied):
                        deaths[stage.name] += 1
                        message = f"{outcome} while it ran this stage"
                        if deaths[stage.name] <= self.retries:
                            message += (
                                "; retrying in a fresh worker "
                                f"(retry {deaths[stage.name]} of {self.retries})"
                            )
                            _note(store, stage.name, message)
                            emit({"event": "retry", "message": message, **stage.event_fields()})
                            queue.appendleft(stage)
                            continue
                        if self.retries:
                            message += f" (after {self.retries} retries)"
                        outcome = WorkerDied(message)
                    results[stage.name] = outcome
                    if stops_sweep(outcome):
                        queue.clear()  # the rest of the layer does not start
        except KeyboardInterrupt as e:
            stop = interrupted(e)
            running = pool.running()
            try:
                if running:
                    emit(
                        {
                            "event": "interrupt",
                            "message": f"interrupted by {stop.signal_name}: no new stage "
                            f"starts; waiting up to {self.grace:g} s for the {len(running)} "
                            f"running ({', '.join(running)}), then stopping them",
                        }
                    )
            finally:
                results.update(pool.wind_down(self.grace))
            raise interrupted(stop, results) from None
        return results

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def _note(store: Store | None, name: str, line: str) -> None:
    if store is not None:
        store.note(name, line)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """While the driver runs: SIGTERM and SIGHUP, like Ctrl-C, raise Interrupted in the main
    thread (run_sweep then stops the sweep and raises it, with the summary of what ran); a
    second one kills the workers and exits at once with 128 + its number. A signal the
    process was started ignoring (nohup, a background job) stays ignored. Nothing is
    installed off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = _RECEIVED
    received.clear()

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        if len(received) > 1:
            kill_all_workers()
            name = signal.Signals(signum).name
            with contextlib.suppress(OSError):
                os.write(2, f"clapsweep: {name} again: stopped at once\n".encode())
            os._exit(128 + signum)
        raise Interrupted(signum)

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        received.clear()


# ----------------------------------------------------------------------------- the pool


@dataclasses.dataclass(eq=False)
class _Worker:
    process: Any  # a spawn-context Process
    conn: Connection
    stage: PlannedStage | None = None


_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()  # every worker process started here
_RUNNING = object()  # _receive: the worker sent progress only, its stage still runs
OnProgress = Callable[[PlannedStage, dict[str, Any]], None]
_AT_EXIT: list[Any] = []


def kill_all_workers() -> None:
    """SIGKILL every worker this process started (for a signal handler: never raises)."""
    with contextlib.suppress(Exception):
        for process in list(_LIVE):
            with contextlib.suppress(Exception):
                if process.pid is not None:
                    os.kill(process.pid, signal.SIGKILL)


class WorkerPool:
    """`size` spawned worker processes, one stage each at a time (see the module docstring)."""

    def __init__(self, size: int) -> None:
        self.size = size
        # spawn: the driver may hold OpenMP threads, which fork does not survive.
        self.context = mp.get_context("spawn")
        self.workers: list[_Worker] = []
        # Workers are not daemons (a stage may start DataLoader workers), so at exit
        # multiprocessing joins them: a pool never closed must not hold the exit up. Runs
        # before that join (atexit is last in, first out; multiprocessing registered first).
        if not _AT_EXIT:
            _AT_EXIT.append(atexit.register(kill_all_workers))

    @property
    def busy(self) -> bool:
        return any(w.stage is not None for w in self.workers)

    @property
    def has_room(self) -> bool:
        return sum(w.stage is not None for w in self.workers) < self.size

    def running(self) -> list[str]:
        return [w.stage.name for w in self.workers if w.stage is not None]

    def submit(self, stage: PlannedStage, task: bytes) -> None:
        """Send a pickled (execute, stage) to an idle worker, started if there is none."""
        for w in [w for w in self.workers if w.stage is None and not w.process.is_alive()]:
            w.process.join(0)
            self._discard(w)  # an idle worker that died: the stage goes to a live one
        worker = next((w for w in self.workers if w.stage is None), None) or self._start()
        worker.stage = stage  # before sending: an interrupt in between still finds it
        try:
            worker.conn.send_bytes(task)
        except (OSError, EOFError):
            pass  # it died: wait_any reports that, and the stage runs again

    def _start(self) -> _Worker:
        ours, theirs = self.context.Pipe()
        process = self.context.Process(
            target=_worker_main, args=(theirs, os.getpid()), name="clapsweep-worker"
        )
        process.start()
        _LIVE.add(process)
        theirs.close()
        worker = _Worker(process, ours)
        self.workers.append(worker)
        return worker

    def wait_any(
        self, timeout: float | None = None, on_progress: OnProgress | None = None
    ) -> list[tuple[PlannedStage, Any]]:
        """Block until a busy worker answers, dies or reports progress (or timeout);
        (stage, outcome) for each that answered or died: the result dict, the exception the
        stage raised, or WorkerDied. Progress goes to on_progress(stage, metrics)."""
        busy = [w for w in self.workers if w.stage is not None]
        if not busy:
            return []
        ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout))
        out = []
        for w in busy:
            if w.conn not in ready and w.process.sentinel not in ready:
                continue
            outcome = self._receive(w, on_progress)
            if outcome is _RUNNING:
                continue
            stage, w.stage = w.stage, None
            if isinstance(outcome, WorkerDied):
                self._discard(w)
            out.append((stage, outcome))
        return out

    def _receive(self, w: _Worker, on_progress: OnProgress | None) -> Any:
        """The worker's answer after the progress it sent first; _RUNNING when it sent only
        progress and is alive."""
        try:
            while w.conn.poll():
                kind, value = pickle.loads(w.conn.recv_bytes())
                if kind != "progress":
                    return value
                if on_progress is not None and w.stage is not None:
                    on_progress(w.stage, value)
        except (EOFError, OSError):
            pass
        except Exception as e:  # an answer that does not unpickle here
            return RuntimeError(f"the worker's answer could not be read: {e}")
        else:
            if w.process.is_alive():
                return _RUNNING
        w.process.join(5)
        return WorkerDied(f"worker process {w.process.pid} died ({_how(w.process.exitcode)})")

    def wind_down(self, grace: float) -> Results:
        """After an interrupt: the running stages' results within `grace` seconds (a second
        KeyboardInterrupt cuts it short); then every worker stops. Stages whose worker died
        or was stopped are left out (they were not run; their .partial stays)."""
        results: Results = {}
        deadline = time.monotonic() + grace
        try:
            while self.busy and (left := deadline - time.monotonic()) > 0:
                for stage, outcome in self.wait_any(min(left, 0.5)):
                    if not isinstance(outcome, WorkerDied):
                        results[stage.name] = outcome
        except KeyboardInterrupt:
            pass
        finally:
            self.close(wait=0)
        return results

    def close(self, wait: float = 5.0) -> None:
        """Idle workers are told to exit (and get `wait` seconds); busy ones, and any still
        there after that, are terminated, then killed."""
        for w in self.workers:
            if w.stage is None:
                with contextlib.suppress(OSError, EOFError):
                    w.conn.send_bytes(pickle.dumps(None))
        deadline = time.monotonic() + wait
        for w in self.workers:
            if w.stage is None:
                w.process.join(max(0.0, deadline - time.monotonic()))
        for w in self.workers:
            if w.process.is_alive():
                w.process.terminate()
        deadline = time.monotonic() + 2
        for w in self.workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(5)
        for w in list(self.workers):
            self._discard(w)

    def _discard(self, w: _Worker) -> None:
        with contextlib.suppress(Exception):
            w.conn.close()
        with contextlib.suppress(Exception):
            w.process.close()  # only once it has exited; a live one stays tracked in _LIVE
        if w in self.workers:
            self.workers.remove(w)


def _how(exitcode: int | None) -> str:
    if exitcode is None:
        return "no exit status"
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
        return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


# ----------------------------------------------------------------------------- in a worker


def _worker_main(conn: Connection, parent: int) -> None:
    """A worker's loop: receive (execute, stage), run it, send ("ok", result) or ("error",
    exception); exit on None, or when the driver is gone."""
    _die_with_parent(parent)
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # the driver decides when a stage stops
    while True:
        try:
            task = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        except Exception as e:  # a task that does not unpickle here (an import error)
            conn.send_bytes(_answer("error", e))
            continue
        if task is None:
            return
        execute, stage = task
        report = Throttle(lambda metrics: _send_progress(conn, metrics))
        try:
            answer = _answer("ok", execute(stage, report))
        except BaseException as e:  # noqa: B036 - SystemExit too: the driver hears of it
            answer = _answer("error", e)
        report.flush()
        conn.send_bytes(answer)


def _send_progress(conn: Connection, metrics: dict[str, Any]) -> None:
    """Best effort: metrics that do not pickle are not shown live (the tracker has them)."""
    with contextlib.suppress(Exception):
        conn.send_bytes(pickle.dumps(("progress", metrics)))


def _answer(kind: str, value: Any) -> bytes:
    try:
        return pickle.dumps((kind, value))
    except Exception as e:
        if isinstance(value, BaseException):
            text = "".join(traceback.format_exception(value))
            value = RuntimeError(f"{type(value).__name__}: {value} (not picklable)\n{text}")
        else:
            value = RuntimeError(f"the stage's result could not be sent back: {e}")
        return pickle.dumps(("error", value))


PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Exit when the driver (pid `parent`) dies, however it dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
