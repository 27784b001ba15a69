"""The live view of `clapsweep run`: its state model fed scripted event sequences (counts per
kind, step k/N, samples/s, ETA numbers, with a hand-driven clock), its rendering to a rich
recording console, and the real command under a pseudo-terminal against plain pipes."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import stub_data_root
from rich.console import Console

from clapsweep.cli.live import LiveView, SweepProgress, render


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def ev(event: str, name: str = "", **fields) -> dict:
    kind = name.split("-")[0] if name else None
    return {"event": event, "name": name, "kind": kind, "key": "k", "users": [], **fields}


PLAN = {
    "event": "plan",
    "stages_total": 5,
    "stages_cached": 1,
    "kinds": {"teacher": {"total": 2, "cached": 0}, "eval": {"total": 3, "cached": 1}},
}


def progress(parallelism=None) -> tuple[SweepProgress, Clock]:
    clock = Clock()
    p = SweepProgress(parallelism=parallelism, clock=clock)
    p.update(PLAN)
    return p, clock


def test_counts_steps_and_eta_follow_the_events():
    p, clock = progress(parallelism=2)
    p.update(ev("start", "teacher-a"))
    p.update(ev("progress", "teacher-a", metrics={"step": 5, "total_steps": 20,
                                                  "loss": 1.5, "samples_per_s": 12.5}))  # fmt: skip
    a = p.running["teacher-a"]
    assert (a.step, a.of, a.samples_per_s) == (5, 20, 12.5)
    assert p.eta() == (None, "ETA unknown (no teacher stage finished yet)")
    clock.t = 100.0
    p.update(ev("done", "teacher-a", seconds=100.0))
    p.update(ev("start", "teacher-b"))
    clock.t = 130.0
    # A teacher finished, no eval yet: still unknown, for the eval kind now.
    assert p.eta() == (None, "ETA unknown (no eval stage finished yet)")
    p.update(ev("start", "eval-c"))
    p.update(ev("progress", "eval-c", metrics={"embedded": 64, "of": 200}))
    assert (p.running["eval-c"].step, p.running["eval-c"].of) == (64, 200)
    clock.t = 140.0
    p.update(ev("done", "eval-c", seconds=10.0))
    counts = p.counts()
    assert counts["teacher"] == {"total": 2, "done": 1, "running": 1, "failed": 0,
                                 "skipped": 0, "pending": 0}  # fmt: skip
    assert counts["eval"] == {"total": 3, "done": 2, "running": 0, "failed": 0,
                              "skipped": 0, "pending": 1}  # fmt: skip
    # teacher-b ran 40 of the mean 100 s: 60 left; one eval of 10 s; two at a time.
    assert p.eta() == (pytest.approx(35.0), "")
    p.update(ev("failed", "eval-d", message="boom", log="x.log"))
    assert p.counts()["eval"]["failed"] == 1 and p.counts()["eval"]["pending"] == 0
    assert p.eta() == (pytest.approx(30.0), "")
    clock.t = 500.0  # past the mean: a running stage counts as about to finish
    assert p.eta() == (0.0, "")


def test_events_told_twice_count_once():
    """A worker's forwarded events and the driver's may both arrive for one stage."""
    p, clock = progress(parallelism=1)
    p.update(ev("start", "teacher-a"))
    clock.t = 5.0
    p.update(ev("start", "teacher-a"))  # the same attempt: its start time stays
    assert p.running["teacher-a"].started == 0.0
    clock.t = 50.0
    p.update(ev("done", "teacher-a", seconds=None))  # no seconds: measured from its start
    p.update(ev("done", "teacher-a", seconds=7.0))
    assert p.durations["teacher"] == [50.0]
    assert p.counts()["teacher"]["done"] == 1 and p.counts()["teacher"]["pending"] == 1
    p.update(ev("skipped", "eval-x", because="teacher-a"))
    p.update(ev("elsewhere", "eval-y", owner="pid 1"))
    assert p.counts()["eval"] == {"total": 3, "done": 1, "running": 0, "failed": 0,
                                  "skipped": 2, "pending": 0}  # fmt: skip


def test_retry_restarts_progress_and_parallelism_defaults_to_most_seen():
    p, clock = progress(parallelism=None)
    for name in ("teacher-a", "teacher-b", "eval-c"):
        p.update(ev("start", name))
    p.update(ev("progress", "teacher-a", metrics={"step": 3, "total_steps": 9}))
    p.update(ev("retry", "teacher-a", message="worker died; retrying"))
    assert p.running["teacher-a"].step is None
    clock.t = 10.0
    p.update(ev("done", "eval-c", seconds=10.0))
    p.update(ev("done", "teacher-a", seconds=20.0))
    assert p.parallel() == 3  # three ran at once
    # teacher-b: 20 - 10 left; one eval pending: 10; over three.
    assert p.eta() == (pytest.approx(20.0 / 3), "")


def test_progress_before_its_start_and_planning_state():
    p = SweepProgress(clock=Clock())
    assert p.eta() == (None, "ETA unknown (planning)")
    p.update(ev("progress", "student-s", metrics={"step": 2, "total_steps": 4}))
    assert p.counts()["student"]["running"] == 1 and p.running["student-s"].of == 4


def test_render_shows_counts_running_steps_and_eta():
    p, clock = progress(parallelism=2)
    p.update(ev("start", "teacher-a", users=[{"row": "teacher", "seed": 0, "fraction": 1.0}]))
    p.update(ev("progress", "teacher-a", metrics={"step": 5, "total_steps": 20,
                                                  "samples_per_s": 12.5}))  # fmt: skip
    clock.t = 65.0
    console = Console(record=True, width=100, file=io.StringIO())
    console.print(render(p))
    text = console.export_text()
    assert "teacher seed 0 f=1.0" in text and "5/20" in text and "12.5" in text
    assert "1 min 5 s" in text  # elapsed
    rows = {line.split()[1]: line.split()[2:] for line in text.splitlines() if "│" in line}
    numbers = [c for c in rows["teacher"] if c != "│"]
    assert numbers == ["2", "0", "1", "0", "0", "1"]  # total done running failed skipped pending
    assert [c for c in rows["all"] if c != "│"] == ["5", "1", "1", "0", "0", "3"]
    assert "ETA unknown (no teacher stage finished yet)" in text
    p.update(ev("done", "teacher-a", seconds=60.0))
    console.print(render(p))
    assert "ETA unknown (no eval stage finished yet)" in console.export_text()


def test_live_view_prints_notices_above_the_table():
    console = Console(record=True, width=120, file=io.StringIO(), force_terminal=True)
    view = LiveView(SweepProgress(parallelism=1, clock=Clock()), console)
    with view:
        view(PLAN)
        view(ev("start", "teacher-a"))
        view(ev("failed", "teacher-a", message="bad [data]", log="/x/teacher-a.log"))
    text = console.export_text()
    assert "FAILED  teacher-a: bad [data] (log: /x/teacher-a.log)" in text  # no rich markup
    assert "start   teacher-a" not in text  # starts show in the table, not as lines
    assert "nothing left to run" not in text and "ETA unknown" in text


SWEEP = """\
name: livetest
data: {{root: {root}, teacher: [clotho], wild: audioset, tasks: [esc50], cache: false}}
frontend: {{sample_rate: 8000, clip_seconds: 0.5, n_fft: 256, win_length: 256,
           hop_length: 128, n_mels: 16, f_max: 4000}}
model: {{audio: small_cnn, audio_width: 4, text: minilm, text_pooling: mean, dim: 16}}
train: {{epochs: 1, batch_size: 4, freeze_text: true}}
grid:
  seed: [0]
  teacher_fraction: [1.0]
  rows: [{{name: DU, strategy: du, sigma: 0.1}}]
backend: {{kind: local}}
tracking: {{wandb: {{enabled: false}}}}
workdir: {workdir}
"""


def _sweep(tmp_path: Path, name: str) -> Path:
    """A sweep whose data folders are empty: the teacher fails at once, the rest is skipped."""
    root = stub_data_root(tmp_path / "data")
    path = tmp_path / f"{name}.yaml"
    path.write_text(SWEEP.format(root=root, workdir=tmp_path / name))
    return path


def _env() -> dict:
    return dict(os.environ, COLUMNS="110", LINES="40", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def _run_on_a_terminal(path: Path) -> tuple[int, str]:
    try:
        leader, follower = pty.openpty()
    except OSError as e:
        pytest.skip(f"no pseudo-terminal here: {e}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "clapsweep", "run", str(path)],
        stdin=follower, stdout=follower, stderr=follower, env=_env(),
    )  # fmt: skip
    os.close(follower)
    out, deadline = b"", time.monotonic() + 120
    while time.monotonic() < deadline:
        if select.select([leader], [], [], 1.0)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the command ended and closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(leader)
    if proc.poll() is None:
        proc.kill()
    return proc.wait(), out.decode(errors="replace")


def test_run_draws_the_view_on_a_terminal_and_plain_lines_otherwise(tmp_path):
    """The real command twice: under a pseudo-terminal (the live view, its final table with
    the plan's per-kind totals, notices as lines), and with stderr a pipe (today's lines)."""
    code, shown = _run_on_a_terminal(_sweep(tmp_path, "tty"))
    assert code == 1, shown
    table = {
        line.split()[1]: [c for c in line.split()[2:] if c != "│"]
        for line in shown.splitlines()
        if line.startswith("│")
    }
    assert table["teacher"] == ["1", "0", "0", "1", "0", "0"]
    assert table["eval"] == ["2", "0", "0", "0", "2", "0"]
    assert table["all"] == ["6", "0", "0", "1", "5", "0"]
    assert "FAILED  teacher-" in shown and "skipped eval-" in shown
    assert "start   teacher-" not in shown and "nothing left to run" in shown
    assert "livetest: 6 stages: 0 run, 0 cached, 1 failed, 5 skipped" in shown  # the summary

    piped = subprocess.run(
        [sys.executable, "-m", "clapsweep", "run", str(_sweep(tmp_path, "pipe"))],
        capture_output=True, text=True, env=_env(), timeout=120,
    )  # fmt: skip
    assert piped.returncode == 1
    lines = [line.split("] ", 1)[1] for line in piped.stderr.splitlines() if line.startswith("[")]
    assert lines[0] == "6 stages: 0 done, 6 to run"
    assert lines[1].startswith("start   teacher-") and lines[2].startswith("FAILED  teacher-")
    assert sum(line.startswith("skipped ") for line in lines) == 5
    assert "│" not in piped.stderr
