"""The artifact store: atomic commit, resumable .partial folders, failure records, the lock."""

import subprocess
import sys
import time

import pytest

from clapsweep.errors import UserError
from clapsweep.store import Store, make_meta

NAME = "teacher-0123456789abcdef"


def test_begin_commit_is_atomic_and_writes_meta(tmp_path):
    store = Store(tmp_path)
    work = store.begin(NAME)
    assert work == tmp_path / "stages" / f"{NAME}.partial" and work.is_dir()
    (work / "model.pt").write_bytes(b"weights")
    assert not store.is_done(NAME) and store.meta(NAME) is None
    meta = make_meta("teacher", "0123456789abcdef", {"lr": 0.1}, {}, {"loss": 1.5}, 100.0, 112.5)
    final = store.commit(NAME, meta)
    assert final == tmp_path / "stages" / NAME
    assert not work.exists()
    assert (final / "model.pt").read_bytes() == b"weights"
    got = store.meta(NAME)
    assert store.is_done(NAME)
    assert got["result"] == {"loss": 1.5} and got["config"] == {"lr": 0.1}
    assert got["duration_s"] == 12.5
    assert got["started"] == "1970-01-01T00:01:40+00:00"
    assert got["finished"] == "1970-01-01T00:01:52+00:00"
    assert set(got["versions"]) >= {"python", "torch", "clapsweep"} and got["host"]
    assert "start in" in store.log_path(NAME).read_text()


def test_partial_folder_is_kept_for_resuming(tmp_path):
    store = Store(tmp_path)
    (store.begin(NAME) / "checkpoint.pt").write_text("step 40")
    # A new driver after a crash: the same folder, with the checkpoint in it.
    again = Store(tmp_path).begin(NAME)
    assert (again / "checkpoint.pt").read_text() == "step 40"
    assert "(resuming)" in store.log_path(NAME).read_text()


def test_failure_record_log_and_retry(tmp_path):
    store = Store(tmp_path)
    store.begin(NAME)
    record = store.fail(NAME, "empty Improvement-Set", "Traceback (most recent call last):\n  x\n")
    assert record["message"] == "empty Improvement-Set"
    assert record["log"] == str(tmp_path / "logs" / f"{NAME}.log")
    assert store.failure(NAME)["message"] == "empty Improvement-Set"
    log = store.log_path(NAME).read_text()
    assert "failed: empty Improvement-Set" in log and "Traceback" in log
    store.begin(NAME)  # the retry clears the marker
    assert store.failure(NAME) is None
    assert not store.failed_path(NAME).exists()


def test_commit_replaces_a_damaged_final_folder(tmp_path):
    store = Store(tmp_path)
    (tmp_path / "stages" / NAME).mkdir(parents=True)
    (tmp_path / "stages" / NAME / "junk").write_text("no meta.json here")
    assert not store.is_done(NAME)
    (store.begin(NAME) / "good").write_text("1")
    store.commit(NAME, {"kind": "teacher", "duration_s": 0.0})
    assert sorted(p.name for p in store.final(NAME).iterdir()) == ["good", "meta.json"]


def test_lock_refuses_a_second_driver(tmp_path):
    store = Store(tmp_path)
    assert not store.is_locked()
    with store.lock():
        assert store.is_locked()
        with pytest.raises(UserError, match="another run holds this sweep's lock"):
            with Store(tmp_path).lock():
                pass
    assert not store.is_locked()
    with store.lock():  # free again once released
        pass


def test_lock_held_by_another_process(tmp_path):
    code = (
        "import sys, time; from clapsweep.store import Store\n"
        "with Store(sys.argv[1]).lock():\n"
        "    print('held', flush=True); time.sleep(30)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        assert Store(tmp_path).is_locked()
        with pytest.raises(UserError, match="another run"):
            with Store(tmp_path).lock():
                pass
    finally:
        proc.kill()
        proc.wait()
    deadline = time.time() + 5
    while Store(tmp_path).is_locked() and time.time() < deadline:
        time.sleep(0.05)
    with Store(tmp_path).lock():  # a killed holder leaves no stale lock
        pass
