"""Shared pytest fixtures."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SlurmClusterInfo:
    """Where the test SLURM cluster lives and which partition to submit to."""

    state_dir: Path
    slurm_conf: Path
    partition: str


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmClusterInfo]:
    """A real single-node SLURM cluster on loopback (slurm/cluster/start.sh).

    Reuses a running cluster in the state dir (CLAPSWEEP_SLURM_STATE, default
    /tmp/clapsweep-slurm) and leaves it running; stops only a cluster this fixture started.
    Where the cluster cannot start (not root, no packages, a daemon fails) the dependent
    tests are skipped with start.sh's one-line reason.
    """
    state = Path(os.environ.get("CLAPSWEEP_SLURM_STATE", "/tmp/clapsweep-slurm"))
    cluster_dir = _REPO / "slurm" / "cluster"
    try:
        # Generous timeout: the first run on a bare machine installs the Debian packages.
        proc = subprocess.run(
            ["bash", str(cluster_dir / "start.sh"), str(state)],
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"SLURM cluster unavailable: {exc}")
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        reason = lines[-1] if lines else f"start.sh exited with status {proc.returncode}"
        pytest.skip(f"SLURM cluster unavailable: {reason}")
    started_here = "already running" not in proc.stdout
    slurm_conf = state / "etc" / "slurm.conf"
    previous = os.environ.get("SLURM_CONF")
    # Clients (sbatch, sacct, scancel used by submitit) must never look the config up by DNS.
    os.environ["SLURM_CONF"] = str(slurm_conf)
    try:
        yield SlurmClusterInfo(state_dir=state, slurm_conf=slurm_conf, partition="debug")
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        if started_here:
            subprocess.run(
                ["bash", str(cluster_dir / "stop.sh"), str(state)],
                capture_output=True,
                text=True,
                timeout=120,
            )


def stub_data_root(root: Path) -> Path:
    """A data root with an empty folder per dataset, for tests whose stand-in stages read no
    data: the driver checks that every dataset folder exists before it runs anything."""
    for name in ("fsd50k", "clotho", "audiocaps", "macs", "audioset", "esc50", "us8k", "tut17"):
        (root / name).mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """`folder` as a real tmpfs of `size` (e.g. "2m") for the block; skips the test when it
    cannot be mounted (not root, no mount permission)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (mount -t tmpfs)")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def owner_of(pid: int) -> dict:
    """A stage owner record (owner.tmp) naming the live process `pid` on this host."""
    from clapsweep import store

    return {
        "host": socket.gethostname(),
        "pid": pid,
        "started": "then",
        "process_start": store._process_start(pid),
    }
