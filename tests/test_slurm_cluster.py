"""Smoke test of the single-node SLURM test cluster (slurm/cluster/start.sh) with submitit.

Skipped, with start.sh's reason, where the cluster cannot start (not root, no packages).
The submitted callables are standard-library functions so that the job's Python unpickles
them by reference without importing this test module.
"""

from __future__ import annotations

import operator
import os
import subprocess
import time
from pathlib import Path

import submitit


def _executor(folder: Path, partition: str) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(timeout_min=5, slurm_partition=partition, cpus_per_task=1)
    return executor


def _sacct_state(job: submitit.Job) -> str:
    """The job's state as sacct reports it now (no submitit caching)."""
    return job.get_info(mode="force").get("State", "UNKNOWN")


def _wait_state(job: submitit.Job, prefix: str, timeout_s: float) -> str:
    """Poll sacct until the job's state starts with prefix; return the last state seen."""
    deadline = time.monotonic() + timeout_s
    state = _sacct_state(job)
    while not state.startswith(prefix) and time.monotonic() < deadline:
        time.sleep(0.2)
        state = _sacct_state(job)
    return state


def test_config_binds_loopback_and_slurm_conf_is_set(slurm_cluster) -> None:
    assert os.environ["SLURM_CONF"] == str(slurm_cluster.slurm_conf)
    conf = slurm_cluster.slurm_conf.read_text()
    assert "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny" in conf
    assert "JobRequeue=1" in conf
    assert f"CPUs={os.cpu_count()} " in conf
    out = subprocess.run(
        ["sinfo", "-h", "-p", slurm_cluster.partition, "-o", "%P %a %T"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == "debug*" and out[1] == "up"  # the default partition, up


def test_submit_result_and_completed_state(slurm_cluster, tmp_path: Path) -> None:
    executor = _executor(tmp_path, slurm_cluster.partition)
    t0 = time.monotonic()
    # The job reads its own SLURM_JOB_ID: the value proves it ran as this SLURM job.
    job = executor.submit(os.getenv, "SLURM_JOB_ID")
    assert job.result() == job.job_id
    latency = time.monotonic() - t0
    print(f"\nsubmitit submit -> result latency: {latency:.2f} s (job {job.job_id})")
    # COMPLETED comes from sacct, so accounting (slurmdbd) works.
    assert _wait_state(job, "COMPLETED", 15) == "COMPLETED"
    assert job.state == "COMPLETED"


def test_map_array_of_three(slurm_cluster, tmp_path: Path) -> None:
    executor = _executor(tmp_path, slurm_cluster.partition)
    jobs = executor.map_array(operator.pow, [2, 3, 4], [3, 3, 3])
    assert len(jobs) == 3
    # One array job: ids share the array's id and carry indexes 0, 1, 2.
    array_id = jobs[0].job_id.split("_")[0]
    assert [j.job_id for j in jobs] == [f"{array_id}_{i}" for i in range(3)]
    assert [j.result() for j in jobs] == [8, 27, 64]


def test_cancel_sleeping_job(slurm_cluster, tmp_path: Path) -> None:
    executor = _executor(tmp_path, slurm_cluster.partition)
    job = executor.submit(time.sleep, 240)
    assert _wait_state(job, "RUNNING", 20) == "RUNNING"
    job.cancel()
    # sacct writes "CANCELLED by <uid>".
    assert _wait_state(job, "CANCELLED", 20).startswith("CANCELLED")
    # submitit sees it finished (a job that never reports done would hang a sweep).
    assert job.done(force_check=True)


def test_an_array_over_max_array_size_is_refused(slurm_cluster, tmp_path: Path) -> None:
    """Why the backend splits large layers: sbatch takes indices 0..MaxArraySize-1 only."""
    from clapsweep.sweep.slurm_backend import cluster_max_array_size

    size = cluster_max_array_size()  # 1001 here: slurm.conf keeps SLURM's default

    def sbatch(last: int) -> subprocess.CompletedProcess:
        # Held: nothing runs; the pending array is one record until scancel.
        command = ["sbatch", "--parsable", "--hold", f"--array=0-{last}"]
        command += ["-o", str(tmp_path / "%A_%a.out"), "--wrap", "true"]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    refused = sbatch(size)  # size + 1 tasks
    assert refused.returncode != 0 and "Invalid job array specification" in refused.stderr
    accepted = sbatch(size - 1)  # size tasks
    assert accepted.returncode == 0, accepted.stderr
    subprocess.run(["scancel", accepted.stdout.strip().split(";")[0]], check=True, timeout=60)
