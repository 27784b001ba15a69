"""Faults of a real driver and its real worker processes, with real signals: SIGTERM, SIGHUP
and SIGINT to the driver, a worker killed mid-layer, the driver killed with SIGKILL, a stage
that another live process owns, a full disk.

Every test runs `clapsweep run` in a subprocess: `cli` below is the real command line with
the stand-in `stage` (FakeStages of test_runner, plus the sleeps, big files and records that
the environment variable CONTROL asks for) in place of the real stage function. Spawned
workers import it from this module by reference, so tests/ is on their PYTHONPATH. Each
driver's environment carries CONTROL (with this test's own folder in it): a process whose
environment holds that folder is the driver or one of its workers, which is how the tests see
that none is left behind.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import owner_of, small_tmpfs
from test_runner import FakeStages, write_spec

from clapsweep import store as store_module
from clapsweep.recipe.plan import build_plan
from clapsweep.recipe.spec import load_spec
from clapsweep.store import StageBusy, Store

TESTS = Path(__file__).resolve().parent
CONTROL = "CLAPSWEEP_TEST_FAULTS"
# One fraction, DU and DS: 12 stages in 5 layers (teacher | embed, teacher eval | 3 curations
# | 3 students | 3 evals), so a layer of 3 keeps 2 workers busy and one stage waiting.
GRID = {
    "seed": [0],
    "teacher_fraction": [1.0],
    "rows": [
        {"name": "DU", "strategy": "du", "sigma": 0.3},
        {"name": "DS", "strategy": "ds", "sigma_ds": 0.4},
    ],
}
TOTAL = 12


def stage(kind, config, inputs, out, report=None):
    """The stand-in stage: records the call (name, kind, pid) in calls.jsonl and its pid in
    running/<name>, sleeps if CONTROL says so for its name or kind (on every attempt, or
    only the first one for the names in first_only), writes a big file if asked, then does
    what FakeStages does."""
    control = json.loads(os.environ[CONTROL])
    folder = Path(control["dir"])
    name = out.name.removesuffix(".partial")
    first = not (folder / "running" / name).exists()
    with open(folder / "calls.jsonl", "a") as f:
        f.write(json.dumps({"name": name, "kind": kind, "pid": os.getpid()}) + "\n")
    (folder / "running" / name).write_text(str(os.getpid()))
    sleep = control.get("sleep", {})
    seconds = sleep.get(name, sleep.get(kind, 0))
    if seconds and (first or name not in control.get("first_only", [])):
        time.sleep(seconds)
    size = control.get("big", {}).get(kind)
    if size:
        with open(out / "big.bin", "wb") as f:
            for _ in range(0, size, 65536):
                f.write(b"\0" * 65536)
    return FakeStages()(kind, config, inputs, out, report)


def cli(argv: list[str]) -> int:
    """The driver subprocess: clapsweep's command line with `stage` as the stage function."""
    from clapsweep import cli as command_line
    from clapsweep.recipe import run

    run.pipeline_stage = stage
    return command_line.main(argv)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Driver:
    """`clapsweep run SPEC --no-track ARGS` in a subprocess, its output in files."""

    def __init__(self, folder: Path, spec: Path, *args: str, **control) -> None:
        self.folder = folder
        (folder / "running").mkdir(parents=True, exist_ok=True)
        env = os.environ | {
            "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)]),
            CONTROL: json.dumps({"dir": str(folder)} | control),
        }
        code = "import sys, test_faults; sys.exit(test_faults.cli(sys.argv[1:]))"
        self.out, self.err = open(folder / "stdout", "w"), open(folder / "stderr", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "run", str(spec), "--no-track", *args],
            env=env,
            stdout=self.out,
            stderr=self.err,
            start_new_session=True,  # its own process group, as a shell gives a command
            # As in a terminal: a shell running this suite in the background (`cmd &`
            # without job control) hands its children SIGINT ignored.
            preexec_fn=_default_sigint,
        )

    def signal(self, signum: int, group: bool = False) -> None:
        """To the driver, or to its process group (a terminal's Ctrl-C or hangup)."""
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            self.proc.send_signal(signum)

    def wait(self, timeout: float = 60) -> tuple[int, str, str]:
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.out.close()
            self.err.close()
        return code, (self.folder / "stdout").read_text(), (self.folder / "stderr").read_text()

    def running(self, *names: str, timeout: float = 30) -> list[int]:
        """Wait until these stages started; their pids."""
        paths = [self.folder / "running" / n for n in names]
        wait_for(lambda: all(p.is_file() and p.read_text() for p in paths), timeout, self)
        return [int(p.read_text()) for p in paths]

    def calls(self) -> list[dict]:
        path = self.folder / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def processes(self, workers_only: bool = False) -> list[int]:
        """The driver and its children that are alive: its workers and multiprocessing's
        resource tracker (which exits on its own once the driver is gone). Their environment
        names our folder; a zombie has no environment left."""
        token = json.dumps(str(self.folder)).encode()
        pids = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if token in (proc / "environ").read_bytes() and (
                        not workers_only or b"spawn_main" in (proc / "cmdline").read_bytes()
                    ):
                        pids.append(int(proc.name))
                except OSError:
                    pass
        return pids

    def none_left(self) -> None:
        """No worker is left once the driver exited, and nothing else within seconds."""
        assert self.processes(workers_only=True) == []
        wait_for(lambda: self.processes() == [], 5)


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, killed but not reaped yet, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def wait_for(predicate, timeout: float, driver: Driver | None = None) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if driver is not None and driver.proc.poll() is not None:
            pytest.fail(f"the driver exited early:\n{(driver.folder / 'stderr').read_text()}")
        if time.time() > deadline:
            pytest.fail("timed out waiting")
        time.sleep(0.05)


def sweep(tmp_path: Path, workdir: str = "work", workers: int = 2) -> tuple[Path, list]:
    """A 12-stage sweep; its spec file and its layers (stage names)."""
    path = write_spec(tmp_path, workdir, grid=GRID, backend={"kind": "local", "workers": workers})
    layers = [[s.name for s in layer] for layer in build_plan(load_spec(path)).layers()]
    return path, layers


def students(layers: list) -> list[str]:
    return layers[3]


# ----------------------------------------------------------------------------- signals


@pytest.mark.slow
@pytest.mark.parametrize(
    "signame, workers", [("SIGTERM", 2), ("SIGHUP", 2), ("SIGINT", 0)], ids=str
)
def test_signal_stops_the_sweep_prints_the_summary_and_a_rerun_completes(
    tmp_path, signame, workers
):
    """No new stage after the signal; in a pool the running ones get --grace seconds (one
    finishes in time, the other is stopped), in the driver the stage ends at once; the summary
    says what ran, exit 128 + the signal's number, no worker left; the same command again
    finishes the sweep. SIGHUP and SIGINT go to the whole process group, as from a terminal:
    the workers ignore them (the driver stops them after the grace period)."""
    signum = signal.Signals[signame]
    spec, layers = sweep(tmp_path, workers=workers)
    long, short, waiting = students(layers)
    sleep = {long: 60, short: 1.0}
    driver = Driver(tmp_path / "first", spec, "--grace", "3", sleep=sleep)
    driver.running(long, *([short] if workers else []))
    workers_seen = {c["pid"] for c in driver.calls()}
    started = time.time()
    driver.signal(signum, group=signame != "SIGTERM")
    code, out, err = driver.wait(30)
    took = time.time() - started
    assert code == 128 + signum, err
    assert "Traceback" not in err
    assert f"interrupted by {signame}; rerun the same command to resume" in out
    store = Store(load_spec(spec).workdir)
    assert not store.is_done(long) and store.has_partial(long)  # stopped, not failed
    assert store.failure(long) is None
    assert not store.is_done(waiting)
    assert waiting not in {c["name"] for c in driver.calls()}  # never submitted
    if workers:
        assert store.is_done(short)  # finished during the grace period
        assert 2.5 < took < 10, took  # the grace period, then the workers were stopped
        done, not_run = 7, 5
    else:
        assert took < 5, took  # the in-process stage ended at once
        done, not_run = 6, 6
    assert f"{done} run, 0 cached, 0 failed, 0 skipped, {not_run} not run" in out
    assert not any(alive(pid) for pid in workers_seen - {driver.proc.pid})
    driver.none_left()

    again = Driver(tmp_path / "again", spec)
    code, out, err = again.wait(60)
    assert code == 0, err
    assert f"{TOTAL - done} run, {done} cached, 0 failed" in out
    assert all(store.is_done(n) for layer in layers for n in layer)


@pytest.mark.slow
def test_a_second_signal_stops_at_once(tmp_path):
    spec, layers = sweep(tmp_path)
    long, other, _ = students(layers)
    driver = Driver(tmp_path / "first", spec, "--grace", "60", sleep={"student": 60})
    driver.running(long, other)
    started = time.time()
    driver.signal(signal.SIGINT, group=True)  # Ctrl-C
    time.sleep(0.5)
    assert driver.proc.poll() is None  # in the grace period
    assert len(driver.processes(workers_only=True)) == 2
    driver.proc.send_signal(signal.SIGTERM)
    code, out, err = driver.wait(20)
    assert time.time() - started < 5
    assert code == 143, err  # the second signal's
    assert "SIGTERM again: stopped at once" in err and "Traceback" not in err
    wait_for(lambda: driver.processes(workers_only=True) == [], 3)  # killed, maybe not reaped
    driver.none_left()


# ----------------------------------------------------------------------------- dead processes


@pytest.mark.slow
def test_a_killed_worker_fails_only_its_stage_which_is_retried(tmp_path):
    """SIGKILL to the worker running one student while another runs and a third waits: only
    the killed stage is attempted again (in a fresh worker) and the sweep completes; with
    --retries 0 only that stage fails and only its eval is skipped."""
    for retries, workdir in ((1, "work"), (0, "noretry")):
        spec, layers = sweep(tmp_path, workdir)
        victim, neighbour, waiting = students(layers)
        driver = Driver(
            tmp_path / f"run-{workdir}",
            spec,
            "--json",
            "--retries",
            str(retries),
            sleep={victim: 30, neighbour: 1.5},
            first_only=[victim],
        )
        pid, neighbour_pid = driver.running(victim, neighbour)
        os.kill(pid, signal.SIGKILL)
        code, out, err = driver.wait(60)
        summary = json.loads(out)
        calls = [c["name"] for c in driver.calls()]
        log = Path(load_spec(spec).workdir, "logs", f"{victim}.log").read_text()
        assert "killed by SIGKILL" in log
        assert calls.count(neighbour) == calls.count(waiting) == 1  # not disturbed
        assert [c["pid"] for c in driver.calls() if c["name"] == neighbour] == [neighbour_pid]
        if retries:
            assert code == 0, err
            assert calls.count(victim) == 2
            assert summary["stages_executed"] == TOTAL and summary["stages_failed"] == 0
            second = [c["pid"] for c in driver.calls() if c["name"] == victim][1]
            assert second not in (pid, neighbour_pid)  # a fresh worker
            assert "retrying in a fresh worker" in err
        else:
            assert code == 1, err
            assert calls.count(victim) == 1
            assert (summary["stages_failed"], summary["stages_skipped"]) == (1, 1)
            assert summary["stages_executed"] == TOTAL - 2
            (failure,) = summary["failures"]
            assert failure["name"] == victim and "killed by SIGKILL" in failure["message"]
        driver.none_left()


@pytest.mark.slow
def test_workers_die_with_a_driver_killed_by_sigkill(tmp_path):
    spec, layers = sweep(tmp_path)
    driver = Driver(tmp_path / "first", spec, sleep={"student": 60})
    pids = driver.running(*students(layers)[:2])
    assert driver.proc.pid not in pids and len(set(pids)) == 2
    driver.proc.send_signal(signal.SIGKILL)
    driver.wait(10)
    started = time.time()
    wait_for(lambda: not any(alive(pid) for pid in pids), 5)
    assert time.time() - started < 3
    driver.none_left()


# ----------------------------------------------------------------------------- ownership


@pytest.mark.slow
def test_a_stage_a_live_process_owns_is_left_alone(tmp_path):
    """A .partial whose owner (this test process) is alive on this host: the run reports it
    as running elsewhere, does not touch, fail or retry it, skips what needs it and runs the
    rest; once the owner is gone, the next run takes it over."""
    spec, layers = sweep(tmp_path, workers=0)
    store = Store(load_spec(spec).workdir)
    owned = layers[2][0]
    work = store.begin(owned)  # owned by this process
    (work / "checkpoint").write_text("half way")
    owner = store.owner(owned)
    assert owner["pid"] == os.getpid()
    assert store.live_owner(owned) is None  # to this process itself the stage is free

    code, out, err = Driver(tmp_path / "first", spec, "--json").wait(60)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["stages_elsewhere"] == 1 and summary["elsewhere"][0]["name"] == owned
    assert f"pid {os.getpid()}" in summary["elsewhere"][0]["owner"]
    assert summary["stages_failed"] == 0 and summary["stages_skipped"] == 2  # student, eval
    assert summary["stages_executed"] == TOTAL - 3
    assert store.owner(owned) == owner and (work / "checkpoint").is_file()
    assert store.failure(owned) is None and not store.is_done(owned)
    assert owned not in {c["name"] for c in json_calls(tmp_path / "first")}

    # The owner died (a pid no process has now): taken over and finished.
    gone = subprocess.Popen(["true"])
    gone.wait()
    store.owner_path(owned).write_text(json.dumps(owner | {"pid": gone.pid}))
    assert store.live_owner(owned) is None
    code, out, err = Driver(tmp_path / "again", spec).wait(60)
    assert code == 0, err
    assert all(store.is_done(n) for layer in layers for n in layer)
    meta = store.meta(owned)
    assert "owner.tmp" not in meta["files"] and "checkpoint" in meta["files"]


def test_the_owner_is_one_live_process_on_this_host(tmp_path):
    """Begin refuses a stage that a live process owns; not one whose pid now names a later
    process, a dead or reaped one, or one on another host."""
    store, name = Store(tmp_path), "curate-0123456789abcdef"
    child = subprocess.Popen(["sleep", "30"])
    try:
        store.partial(name).mkdir(parents=True)
        record = owner_of(child.pid)
        store.owner_path(name).write_text(json.dumps(record))
        assert store.live_owner(name)["pid"] == child.pid
        with pytest.raises(StageBusy, match="running elsewhere"):
            store.begin(name)
        for other in ({"process_start": 1}, {"host": "elsewhere.example"}):
            store.owner_path(name).write_text(json.dumps(record | other))
            assert store.live_owner(name) is None
    finally:
        child.kill()
        child.wait()
    store.owner_path(name).write_text(json.dumps(record))
    assert store.live_owner(name) is None
    store.begin(name)
    assert store.owner(name)["pid"] == os.getpid()


def test_failure_records_are_best_effort_when_the_disk_is_full(tmp_path, monkeypatch):
    """Store.fail never raises over the stage's own error and leaves no temporary file."""
    store, name = Store(tmp_path), "embed-0123456789abcdef"
    store.begin(name)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "fsync", full)
    record = store.fail(name, "OSError: disk full", "Traceback ...")
    assert record["message"] == "OSError: disk full"
    assert not store.failed_path(name).exists()
    assert list(tmp_path.rglob("*.json.tmp")) == []
    assert "failed: OSError: disk full" in store.log_path(name).read_text()


def json_calls(folder: Path) -> list[dict]:
    path = folder / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ----------------------------------------------------------------------------- --redo


@pytest.mark.slow
def test_redo_recomputes_a_stage_and_what_reads_it_only_when_its_output_changed(tmp_path):
    """`--redo` by key prefix: a teacher computed again to the same bytes leaves its 11
    dependants cached; computed to other bytes (a bigger file), the stages that read it are
    stale and run again, and theirs only if their bytes changed (the stand-ins' do not). A
    key no stage has is one message and exit 2, with nothing removed."""
    spec, layers = sweep(tmp_path, workers=0)
    (teacher,) = layers[0]
    assert Driver(tmp_path / "first", spec).wait(60)[0] == 0
    prefix = teacher.split("-", 1)[1][:6]
    code, _, err = Driver(tmp_path / "same", spec, "--redo", prefix).wait(60)
    assert code == 0, err
    assert [c["name"] for c in json_calls(tmp_path / "same")] == [teacher]
    code, _, err = Driver(tmp_path / "other", spec, "--redo", teacher, big={"teacher": 1}).wait(60)
    assert code == 0, err
    plan = build_plan(load_spec(spec))
    readers = {n for n, s in plan.stages.items() if teacher in s.inputs.values()}
    assert len(readers) == 5  # embed, the teacher's eval, 3 students
    assert {c["name"] for c in json_calls(tmp_path / "other")} == readers | {teacher}
    code, _, err = Driver(tmp_path / "bad", spec, "--redo", "zzzz").wait(60)
    assert code == 2 and "--redo zzzz: no stage of this sweep" in err and "Traceback" not in err
    assert Store(load_spec(spec).workdir).is_done(teacher)


# ----------------------------------------------------------------------------- disk full


@pytest.mark.slow
def test_disk_full_stops_with_one_message_and_a_rerun_resumes(tmp_path):
    """The workdir on a 2 MiB tmpfs that a ballast file fills but ~100 kB; the teacher (in a
    worker) writes 300 kB. One message (path, free space, fix), the summary, exit 2, no
    traceback and no temporary file; the same command after freeing space finishes."""
    with small_tmpfs(tmp_path / "disk", "2m") as disk:
        path = write_spec(tmp_path, "disk/work", grid=GRID, backend={"kind": "local", "workers": 2})
        ballast = disk / "ballast"
        with open(ballast, "wb") as f:
            f.write(b"\0" * (os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize - 100_000))
        big = {"teacher": 300_000}
        code, out, err = Driver(tmp_path / "first", path, big=big).wait(60)
        assert code == 2, err
        assert "Traceback" not in err and "Traceback" not in out
        (line,) = [x for x in err.splitlines() if x.startswith("clapsweep: error:")]
        assert "No space left on device writing " in line
        assert f"{disk}/work/stages/teacher-" in line and ".partial (" in line
        assert "free of 2.1 MB on that filesystem" in line and "rerun the same command" in line
        assert "0 run, 0 cached, 1 failed, 0 skipped, 11 not run" in out
        assert [p for p in disk.rglob("*.tmp*") if p.name != "owner.tmp"] == []
        ballast.unlink()  # space freed
        code, out, err = Driver(tmp_path / "again", path, big=big).wait(60)
        assert code == 0, err
        assert f"{TOTAL} run, 0 cached, 0 failed" in out
