"""The store's promise, tested on real stages: a stage's output depends only on its key.

The smoke sweep (teacher -> embed -> DU/DS/ADS curation -> soft-label students with replay
-> eval, on the tiny synthworld) runs three ways into three empty workdirs:
  (a) in this process (backend local, no workers);
  (b) in a real driver process with `backend: {kind: local, workers: 2}`;
  (c) in a real driver process killed with SIGKILL during teacher training, embedding,
      curation and student training, and restarted each time until it finishes.
Every output file of every stage must be byte-identical across the three, per stage key, and
so must the reports built from them.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clapsweep.cli import main
from clapsweep.recipe.run import run_sweep
from clapsweep.recipe.spec import load_spec

SMOKE = Path(__file__).parents[1] / "sweeps" / "smoke.yaml"
OUTPUTS = (".pt", ".npy", ".npz", ".json")
TIMINGS = ("meta.json",)  # the store's bookkeeping, with wall-clock times
# Where (c) is killed: the first stage folder matching each pattern, once it exists.
KILL_AT = [
    ("teacher", "teacher-*.partial/checkpoint.pt"),  # after its first epoch, of two
    ("embed", "embed-*.partial/captions.json"),
    ("curate", "curate-*.partial"),
    ("student", "student-*.partial/checkpoint.pt"),  # after its first epoch, of two
]

pytestmark = pytest.mark.slow


def _spec(root: Path, name: str, data: Path, backend: str = "{kind: local}") -> Path:
    text = SMOKE.read_text().replace("${CLAPSWEEP_DATA:-data/synthworld-tiny}", str(data))
    text = text.replace("backend: {kind: local}", f"backend: {backend}")
    text = text.replace("student:\n  epochs: 1", "student:\n  epochs: 2")
    path = root / f"{name}.yaml"
    path.write_text(text + f"workdir: {root / name}\n")
    return path


def _env() -> dict[str, str]:
    return os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _driver(spec: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "clapsweep", "run", str(spec), "--no-track"]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen, stages: Path, pattern: str, timeout: float = 300) -> bool:
    """SIGKILL the driver as soon as `pattern` exists under stages/; False if it ended first."""
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        if stages.is_dir() and any(stages.glob(pattern)):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.01)
    proc.wait()
    return False


def _hashes(workdir: Path) -> dict[str, str]:
    """sha256 of every output file, by stage folder and file (not the files with timings)."""
    out = {}
    for path in sorted((workdir / "stages").rglob("*")):
        if path.is_file() and path.suffix in OUTPUTS and path.name not in TIMINGS:
            out[str(path.relative_to(workdir / "stages"))] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return out


def _report(spec: Path, capsys) -> list[dict]:
    tables = []
    for table in ("1", "2", "3"):
        assert main(["report", "--table", table, "--sweep", str(spec), "--format", "json"]) == 0
        tables.append(json.loads(capsys.readouterr().out) | {"workdir": None})
    return tables


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    data = root / "data"
    # (a) in this process
    a = _spec(root, "a", data)
    spec = load_spec(a)
    spec.tracking.wandb.enabled = False
    assert run_sweep(spec)["stages_failed"] == 0
    # (b) a driver with two worker processes
    b = _spec(root, "b", data, "{kind: local, workers: 2}")
    proc = _driver(b)
    assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()[-2000:]
    # (c) killed at each point, restarted
    c = _spec(root, "c", data)
    interrupted = []
    for kind, pattern in KILL_AT:
        proc = _driver(c)
        if _kill_when(proc, root / "c" / "stages", pattern):
            interrupted.append(kind)
    proc = _driver(c)
    assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()[-2000:]
    return {"a": a, "b": b, "c": c, "interrupted": interrupted, "root": root}


def test_every_stage_gives_the_same_bytes_in_process_in_workers_and_after_kills(runs):
    a, b, c = (_hashes(runs["root"] / n) for n in "abc")
    assert len([k for k in a if k.endswith("model.pt")]) == 14  # 2 teachers, 12 students
    assert a == b
    assert a == c
    assert runs["interrupted"] == [kind for kind, _ in KILL_AT]


def test_reports_are_identical(runs, capsys):
    ref = _report(runs["a"], capsys)
    assert _report(runs["b"], capsys) == ref
    assert _report(runs["c"], capsys) == ref


def test_verify_recomputes_and_compares(runs, capsys):
    """`clapsweep verify` recomputes one stage per kind and finds the same bytes; a stored
    file changed behind the store's back is reported as damaged."""
    spec = str(runs["a"])
    assert main(["verify", spec]) == 0
    out = capsys.readouterr().out
    assert out.count("match   ") == 5 and "5 of 5 stage(s) match" in out
    model = next((runs["root"] / "a" / "stages").glob("student-*/model.pt"))
    blob = bytearray(model.read_bytes())
    blob[-20] ^= 0xFF
    model.write_bytes(bytes(blob))
    name = model.parent.name
    assert main(["verify", spec, "--stage", name]) == 1
    assert f"damaged {name}: model.pt changed" in capsys.readouterr().out
    assert main(["verify", spec, "--stage", "nosuchkey"]) == 2
