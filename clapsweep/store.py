"""The artifact store: one folder per finished stage, written atomically.

Layout under a sweep's workdir:
    stages/<kind>-<key>/            a finished artifact: the stage's files and meta.json
    stages/<kind>-<key>.partial/    the stage at work; a stable name, so a stage that was
                                    interrupted finds its checkpoint there when it runs again
    stages/<kind>-<key>.partial/owner.tmp  who works on it: host, pid, start time (a run
                                    leaves a stage whose owner is alive on this host alone)
    stages/<kind>-<key>.failed.json the last attempt failed: message, log path, time
    logs/<kind>-<key>.log           one line per attempt, and the traceback of a failure
    .lock                           held (fcntl.flock) by the one driver working on the sweep

A stage is finished when its final folder holds a meta.json that parses, every output file
it lists is there with its recorded size, and the outputs of its inputs are still the ones it
was computed from (meta.json records each input's output digest): a damaged or stale stage is
not done, so the next run recomputes it. meta.json is written inside the .partial folder,
which is then renamed to the final name: a reader sees either nothing or the whole artifact,
whenever the writer is killed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import platform
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from clapsweep.errors import UserError

META = "meta.json"
# Who began a .partial folder. A name with `.tmp`: commit drops it with the temporaries, so
# it never becomes one of the stage's outputs (nor changes their digest).
OWNER = "owner.tmp"


class StageBusy(Exception):
    """Another live process on this host owns the stage's .partial folder: left alone."""

    def __init__(self, name: str, owner: str) -> None:
        super().__init__(name, owner)
        self.name, self.owner = name, owner

    def __str__(self) -> str:
        return f"{self.name} is running elsewhere ({self.owner})"


class Store:
    """A sweep's view of the stage store. `workdir` is the sweep's own folder (its lock,
    plan and records); `root` holds the stages and their logs, the workdir itself unless
    the sweep names a project store (`store:`) that several sweeps share."""

    def __init__(self, workdir: str | Path, root: str | Path | None = None) -> None:
        self.workdir = Path(workdir)
        self.root = Path(root) if root else self.workdir
        self.stages = self.root / "stages"
        self.logs = self.root / "logs"

    # ------------------------------------------------------------------ paths and state

    def final(self, name: str) -> Path:
        return self.stages / name

    def partial(self, name: str) -> Path:
        return self.stages / f"{name}.partial"

    def failed_path(self, name: str) -> Path:
        return self.stages / f"{name}.failed.json"

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def is_done(self, name: str) -> bool:
        return self.problem(name) is None

    def problem(self, name: str) -> str | None:
        """Why a stage is not finished and intact ("not run", a damaged file, stale inputs),
        or None when it is."""
        path = self.final(name) / META
        if not path.is_file():
            return "not run"
        meta = _read_json(path)
        if not isinstance(meta, dict):
            return f"{path} is damaged (not JSON)"
        try:
            return self._check_outputs(name, meta)
        except (AttributeError, KeyError, TypeError):
            return f"{path} is damaged (not a stage record)"

    def _check_outputs(self, name: str, meta: dict[str, Any]) -> str | None:
        for rel, info in (meta.get("files") or {}).items():
            f = self.final(name) / rel
            if not f.is_file():
                return f"{f} is missing"
            if f.stat().st_size != info["size"]:
                return f"{f} has {f.stat().st_size} bytes, {info['size']} when it was written"
        for role, digest in (meta.get("input_outputs") or {}).items():
            upstream = self.meta(meta["inputs"][role])
            if upstream is None or upstream.get("outputs") != digest:
                return f"stale: its input {meta['inputs'][role]} changed since it ran"
        return None

    def meta(self, name: str) -> dict[str, Any] | None:
        """meta.json of a finished stage, or None (also when it is damaged)."""
        meta = _read_json(self.final(name) / META)
        return meta if isinstance(meta, dict) else None

    def failure(self, name: str) -> dict[str, Any] | None:
        """The failure record of the last attempt, or None."""
        record = _read_json(self.failed_path(name))
        return record if isinstance(record, dict) else None

    def has_partial(self, name: str) -> bool:
        return self.partial(name).is_dir()

    # ------------------------------------------------------------------ writing

    def begin(self, name: str) -> Path:
        """Start (or resume) a stage: take it over (its owner file names this process),
        clear its failure record, return its .partial folder. StageBusy when the owner
        another process wrote is alive on this host: that process works on the stage now."""
        owner = self.live_owner(name)
        if owner is not None:
            raise StageBusy(name, describe_owner(owner))
        self.failed_path(name).unlink(missing_ok=True)
        work = self.partial(name)
        work.mkdir(parents=True, exist_ok=True)
        resuming = any(p.name != OWNER for p in work.iterdir())
        write_json(work / OWNER, owner_record())
        self._log(name, f"start in {work}" + (" (resuming)" if resuming else ""))
        return work

    def owner_path(self, name: str) -> Path:
        return self.partial(name) / OWNER

    def owner(self, name: str) -> dict[str, Any] | None:
        """Who last began the stage's .partial folder (host, pid, start time), or None."""
        record = _read_json(self.owner_path(name))
        return record if isinstance(record, dict) else None

    def live_owner(self, name: str) -> dict[str, Any] | None:
        """The owner of the stage's .partial folder when it is another process, alive on this
        host (the same pid and process start time); None when the stage is free to take."""
        owner = self.owner(name)
        if owner is None or owner.get("host") != socket.gethostname():
            return None  # another host's process cannot be checked from here
        pid = owner.get("pid")
        if not isinstance(pid, int) or pid == os.getpid() or not _alive(pid):
            return None
        started = owner.get("process_start")
        if started is not None and _process_start(pid) not in (None, started):
            return None  # the pid was reused by a later process
        return owner

    def commit(self, name: str, meta: dict[str, Any]) -> Path:
        """Write meta.json (with the outputs' sizes and hashes) into the .partial folder and
        rename it into place atomically. A finished, intact stage is never replaced: the
        first commit wins and a later duplicate is discarded; a damaged or stale one is."""
        work, final = self.partial(name), self.final(name)
        if self.is_done(name):
            shutil.rmtree(work, ignore_errors=True)
            self._log(name, "already finished by another run: this result is discarded")
            return final
        _remove_temporaries(work)
        files = output_files(work)
        meta = meta | {"files": files, "outputs": files_digest(files)}
        write_json(work / META, meta)
        aside = None
        if final.exists():  # damaged or stale: moved aside, removed once the new one is in
            aside = self.stages / f".{name}.replaced-{os.getpid()}"
            os.replace(final, aside)
        os.replace(work, final)
        _fsync_dir(self.stages)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        self._log(name, f"finished in {meta.get('duration_s', 0):.1f} s")
        return final

    def remove(self, name: str) -> None:
        """Forget a finished stage (`run --redo`): renamed aside first, so a crash midway
        leaves either the stage or nothing, never half of it."""
        final = self.final(name)
        if not final.exists():
            return
        aside = self.stages / f".{name}.removed-{os.getpid()}"
        os.replace(final, aside)
        _fsync_dir(self.stages)
        shutil.rmtree(aside, ignore_errors=True)
        self._log(name, "removed to be computed again (--redo)")

    def input_outputs(self, inputs: dict[str, str]) -> dict[str, str]:
        """Per input role, the output digest of the finished stage it names."""
        return {role: (self.meta(name) or {}).get("outputs", "") for role, name in inputs.items()}

    def fail(self, name: str, message: str, traceback_text: str) -> dict[str, Any]:
        """Record a failed attempt: the traceback in the log, a .failed.json marker. Best
        effort: when the disk is full (or the store unwritable) the record is returned but
        not kept, and no half-written file is left; it never raises over the failure."""
        log = self.log_path(name)
        self._log(name, f"failed: {message}\n{traceback_text.rstrip()}")
        record = {"message": message, "log": str(log), "time": _now()}
        try:
            self.stages.mkdir(parents=True, exist_ok=True)
            write_json(self.failed_path(name), record)
        except OSError:
            pass
        return record

    def note(self, name: str, line: str) -> None:
        """A line in the stage's log (best effort, like every log line)."""
        self._log(name, line)

    def _log(self, name: str, line: str) -> None:
        try:
            self.logs.mkdir(parents=True, exist_ok=True)
            with open(self.log_path(name), "a") as f:
                f.write(f"[{_now()}] {line}\n")
        except OSError:
            pass  # a log line is never worth failing (or hiding the real error) for

    # ------------------------------------------------------------------ the driver lock

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the workdir's lock; a second driver gets a UserError instead of waiting, and
        so does a workdir that cannot be written (the message says why and where)."""
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.workdir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(write_error_message(e, self.workdir)) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(
                    f"{self.workdir}: another run holds this sweep's lock "
                    f"({self.workdir / '.lock'}); wait for it to finish or stop it first"
                ) from None
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
            except OSError:
                pass  # who holds it is informative only; the flock is the lock
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def is_locked(self) -> bool:
        """Whether some driver holds the lock now."""
        path = self.workdir / ".lock"
        if not path.is_file():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


# ----------------------------------------------------------------------------- meta.json


def make_meta(
    kind: str,
    key: str,
    config: dict[str, Any],
    inputs: dict[str, str],
    result: dict[str, Any],
    started: float,
    finished: float,
    input_outputs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The record every artifact carries: what it is, what made it (and from which outputs
    of its inputs), where and when. The store adds the outputs' sizes and hashes."""
    return {
        "kind": kind,
        "key": key,
        "config": config,
        "inputs": inputs,
        "input_outputs": input_outputs or {},
        "result": result,
        "versions": versions(),
        "host": socket.gethostname(),
        "started": _iso(started),
        "finished": _iso(finished),
        "duration_s": round(finished - started, 3),
    }


def versions() -> dict[str, str | None]:
    return {
        "python": platform.python_version(),
        "torch": _version("torch"),
        "clapsweep": _version("clapsweep"),
        "platform": sys.platform,
    }


def _version(package: str) -> str | None:
    # Package metadata, so that writing meta.json never imports torch.
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """A file that appears at `path` whole or not at all: written as `<name>.tmp` beside it,
    flushed to disk, then renamed over `path`; on any error the temporary file is removed.
    The one way clapsweep writes a file that a crash must not leave half-written."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """JSON through atomic_file (indented, keys sorted)."""
    with atomic_file(path) as f:
        json.dump(data, f, indent=2, sort_keys=True)


FULL = (errno.ENOSPC, errno.EDQUOT)  # a full disk, a disk quota exceeded


def write_error_message(e: OSError, where: str | Path) -> str:
    """One line for an OSError while writing: what, the path, the free space there, the fix."""
    path = Path(e.filename) if e.filename else Path(where)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
        space = f"{_size(usage.free)} free of {_size(usage.total)} on that filesystem"
    except OSError:
        space = "free space unknown"
    what = e.strerror or type(e).__name__
    if e.errno in FULL:
        fix = (
            "free some space there (or give the sweep another --workdir) and rerun the same "
            "command to resume"
        )
    else:
        fix = "make that path writable (or give the sweep another --workdir) and rerun"
    return f"{what} writing {path} ({space}); {fix}"


def folder_bytes(path: Path) -> int:
    """The bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def owner_record() -> dict[str, Any]:
    """This process as the owner of a stage: host, pid, start times."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": _now(),
        "process_start": _process_start(os.getpid()),
    }


def describe_owner(owner: dict[str, Any]) -> str:
    return f"{owner.get('host')} pid {owner.get('pid')}, since {owner.get('started')}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # gone; without /proc, kill's answer stands
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].split()[0] not in ("Z", "X")  # a zombie is dead


def _process_start(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (Linux /proc), else None: with
    the pid it names one process, even once the pid has been reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _read_json(path: Path) -> Any:
    """A JSON file's content; None when it is absent or damaged (truncated, not UTF-8)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


def output_files(folder: Path) -> dict[str, dict[str, Any]]:
    """Every file of a stage folder but meta.json: relative path -> size and sha256."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != META:
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
            out[rel] = {"size": path.stat().st_size, "sha256": digest}
    return out


def files_digest(files: dict[str, dict[str, Any]]) -> str:
    """One digest of a stage's outputs (what its users record as their input's identity)."""
    blob = json.dumps({k: v["sha256"] for k, v in files.items()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _remove_temporaries(folder: Path) -> None:
    """Half-written files of killed attempts (every atomic write here goes through a name
    with `.tmp`) never enter a finished stage."""
    for path in list(folder.rglob("*.tmp*")):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _now() -> str:
    return _iso(time.time())
