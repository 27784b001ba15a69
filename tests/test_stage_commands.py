"""The method's stages run by hand from the command line on the tiny synthworld:
train (teacher) -> embed -> curate -> train (student) -> eval, and their user errors. Each
job's folder is a store stage (meta.json, committed atomically), and an interrupted job
resumes."""

import hashlib
import json
from pathlib import Path

import pytest
import torch
import yaml

from clapsweep import jobs
from clapsweep.cli import main
from clapsweep.errors import UserError
from clapsweep.progress import StepProgress
from clapsweep.store import Store, make_meta
from clapsweep.train import load_weights

TINY = {
    "frontend": {
        "sample_rate": 16000, "clip_seconds": 1.0, "n_fft": 512, "win_length": 512,
        "hop_length": 320, "n_mels": 32, "f_max": 8000,
    },
    "model": {"audio": "small_cnn", "audio_width": 8, "text": "minilm", "text_pooling": "mean", "dim": 32},
    "train": {"epochs": 1, "batch_size": 16, "lr": 1.0e-3, "freeze_text": True},
}  # fmt: skip


def _job(path, **extra):
    path.write_text(yaml.safe_dump(TINY | extra))
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A job's data section: the tiny synthworld, generated once for this module."""
    root = tmp_path_factory.mktemp("world") / "world"
    return {"root": str(root), "synth": {"scale": "tiny"}, "tasks": ["esc50"]}


def _files(folder: Path) -> dict:
    """Every file but meta.json: size and sha256, as Store.commit records them."""
    return {
        p.relative_to(folder).as_posix(): {
            "size": p.stat().st_size,
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
        }
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "meta.json"
    }


def _assert_committed(folder: Path, kind: str) -> dict:
    """`folder` is a finished store stage of `kind` and nothing half-written is left."""
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["kind"] == kind and meta["files"] == _files(folder)
    assert jobs.stage_problem(folder) is None
    leftovers = [p for p in folder.parent.rglob("*") if ".partial" in p.name or ".tmp" in p.name]
    assert leftovers == []
    return meta


@pytest.mark.slow
def test_teacher_embed_curate_student_by_hand(tmp_path, capsys, data):
    teacher = tmp_path / "teacher"
    assert main(["train", "--config", _job(tmp_path / "t.yaml", out=str(teacher), data=data)]) == 0
    assert json.loads(capsys.readouterr().out)["eval"]["esc50"]["n"] == 15
    assert main(["embed", "--teacher", str(teacher), "--out", str(tmp_path / "emb")]) == 0
    assert json.loads(capsys.readouterr().out)["wild_clips"] > 0
    imp = tmp_path / "du"
    args = ["curate", "--embed", str(tmp_path / "emb"), "--strategy", "du", "--sigma", "0.0"]
    assert main([*args, "--top-k", "1", "--out", str(imp)]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["n_pairs"] == counts["n_unique_clips"] > 0  # top-1: one caption per clip
    student = {"teacher": str(teacher), "embed": str(tmp_path / "emb"), "improvement": str(imp)}
    train = TINY["train"] | {"beta": 0.3, "replay": 0.5}
    job = _job(
        tmp_path / "s.yaml", out=str(tmp_path / "s"), data=data, student=student, train=train
    )
    assert main(["train", "--config", job]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["train"]["pairs"] == counts["n_pairs"] and out["train"]["steps"] >= 1
    assert main(["eval", "--checkpoint", str(tmp_path / "s"), "--tasks", "esc50"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["esc50"]["accuracy"] <= 1.0
    # Every job's folder is a store stage; eval left the student's as it was.
    _assert_committed(teacher, "teacher")
    _assert_committed(tmp_path / "emb", "embed")
    assert _assert_committed(imp, "curate")["inputs"] == {"embed": str(tmp_path / "emb")}
    meta = _assert_committed(tmp_path / "s", "student")
    assert meta["inputs"] == student and set(meta["input_outputs"]) == set(student)
    assert meta["result"]["train"] == out["train"]


@pytest.mark.slow
def test_hand_run_train_is_committed_and_resumes_after_an_interrupt(
    tmp_path, capsys, monkeypatch, data
):
    teacher = tmp_path / "teacher"
    train = TINY["train"] | {"epochs": 2, "log_every": 1}
    job = _job(tmp_path / "t.yaml", out=str(teacher), data=data, train=train)
    steps = []

    def record(self, event):
        if "step" in event:
            steps.append(event["step"])
            if stop_at and event["epoch"] == 1:  # after the first epoch's checkpoint
                raise KeyboardInterrupt

    monkeypatch.setattr(StepProgress, "__call__", record)
    stop_at = True
    assert main(["train", "--config", job]) == 130
    assert capsys.readouterr().err.strip().endswith("clapsweep: interrupted")
    assert not teacher.exists()  # nothing half-done where the job's output goes
    (work,) = (tmp_path / "teacher.partial" / "stages").glob("teacher-*.partial")
    assert (work / "checkpoint.pt").is_file()
    per_epoch = steps[-1] - 1

    steps.clear()
    stop_at = False
    assert main(["train", "--config", job]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert steps[0] == per_epoch + 1  # resumed in the second epoch, not from the start
    assert printed["train"]["steps"] == 2 * per_epoch and printed["out"] == str(teacher)
    meta = _assert_committed(teacher, "teacher")
    assert meta["result"] == {"train": printed["train"], "eval": printed["eval"]}
    assert meta["config"]["train"]["epochs"] == 2 and (teacher / "model.pt").is_file()
    assert not (teacher / "checkpoint.pt").exists()

    steps.clear()  # the same job again: its result, nothing computed
    assert main(["train", "--config", job]) == 0
    assert json.loads(capsys.readouterr().out) == printed and steps == []
    # eval accepts the job's folder and leaves it as it was
    assert main(["eval", "--checkpoint", str(teacher), "--tasks", "esc50"]) == 0
    assert json.loads(capsys.readouterr().out)["esc50"] == printed["eval"]["esc50"]
    assert _assert_committed(teacher, "teacher") == meta


def _fake_stage(calls, stop):
    """A stand-in stage function: one file; a UserError when config asks; a KeyboardInterrupt
    while `stop` holds something."""

    def stage(kind, config, inputs, out, report):
        calls.append((kind, dict(inputs), sorted(p.name for p in out.iterdir())))
        (out / "part.bin").write_bytes(b"x" * 3)
        if config.get("fail"):
            raise UserError("this stage cannot run")
        if stop:
            raise stop.pop()
        return {"n": len(calls)}

    return stage


def _sweep_stage(store: Store, kind: str, inputs: dict, content: bytes) -> Path:
    name = f"{kind}-{hashlib.sha256(content).hexdigest()[:16]}"
    (store.begin(name) / "x.bin").write_bytes(content)
    meta = make_meta(kind, name[-16:], {}, inputs, {}, 0.0, 1.0, store.input_outputs(inputs))
    return store.commit(name, meta)


def test_a_job_commits_beside_its_inputs_and_resumes(tmp_path):
    """run_job with a stand-in stage: inputs from a sweep's store, the atomic commit into
    OUT, the same job again, a stale input, another job at OUT, a failure and a resume."""
    sweep = Store(tmp_path / "work")
    teacher = _sweep_stage(sweep, "teacher", {}, b"t")
    embed = _sweep_stage(sweep, "embed", {"teacher": teacher.name}, b"e")
    assert jobs.stage_problem(embed) is None  # its input is found in its own store
    calls, stop = [], []
    run = _fake_stage(calls, stop)

    def job(out, **config):
        return jobs.run_job("curate", config, {"embed": embed}, out, "--out", stage_fn=run)

    out = tmp_path / "cur"
    assert job(out, sigma=0.5) == {"n": 1} and calls[-1][:2] == ("curate", {"embed": embed})
    meta = _assert_committed(out, "curate")
    assert meta["inputs"] == {"embed": str(embed)} and set(meta["files"]) == {"part.bin"}
    assert meta["input_outputs"] == {"embed": sweep.meta(embed.name)["outputs"]}
    assert job(out, sigma=0.5) == {"n": 1} and len(calls) == 1  # finished: nothing runs
    with pytest.raises(UserError, match="cur exists and is not this job's output"):
        job(out, sigma=0.7)
    sweep.remove(embed.name)  # the input computed again, with other bytes: OUT is stale
    _sweep_stage(sweep, "embed", {"teacher": teacher.name}, b"e")
    (sweep.final(embed.name) / "x.bin").write_bytes(b"E")
    (sweep.final(embed.name) / "meta.json").write_text(
        json.dumps(sweep.meta(embed.name) | {"outputs": "another digest"})
    )
    assert "stale" in jobs.stage_problem(out)
    assert job(out, sigma=0.5) == {"n": 2}  # computed again, OUT replaced
    assert _assert_committed(out, "curate")["input_outputs"] == {"embed": "another digest"}

    again = tmp_path / "again"
    with pytest.raises(UserError, match="this stage cannot run"):  # as the stage raised it
        job(again, fail=True)
    stop.append(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        job(again)
    assert not again.exists() and calls[-1][2] == ["owner.tmp"]  # another job: a fresh start
    assert job(again) == {"n": 5} and calls[-1][2] == ["owner.tmp", "part.bin"]  # resumed
    _assert_committed(again, "curate")  # and the failed job's .partial is gone with the rest
    with pytest.raises(UserError, match="is not a finished job or sweep stage .no meta.json"):
        jobs.check_input(tmp_path, "--embed")


def test_user_errors_exit_2_with_one_message(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("out: x\ntrain: {beta: 2.0}\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"clapsweep: error: {bad}: train.beta: expected a value in [0.0, 1.0], got 2.0"
    )
    student = {"teacher": str(tmp_path / "t"), "embed": str(tmp_path), "improvement": str(tmp_path)}
    job = _job(tmp_path / "s.yaml", out=str(tmp_path / "s"), student=student)
    assert main(["train", "--config", job]) == 2
    assert "student.teacher: " in capsys.readouterr().err and not (tmp_path / "s").exists()
    assert main(["eval", "--checkpoint", str(tmp_path / "nothing")]) == 2
    assert f"--checkpoint: {tmp_path / 'nothing'} does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["eval", "--checkpoint", str(tmp_path / "empty")]) == 2
    assert "empty/config.json: not found" in capsys.readouterr().err
    args = ["curate", "--embed", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main([*args, "--strategy", "ads", "--task", "esc50", "--sigma", "0.5"]) == 2
    assert "--sigma-ds: required by --strategy ads" in capsys.readouterr().err
    assert main([*args, "--strategy", "du", "--sigma", "0.5"]) == 2
    assert "holds no embeddings; run `clapsweep embed` first" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main([*args, "--strategy", "dss"]) == 2
    assert "--strategy: expected du, ds or ads, got 'dss'" in capsys.readouterr().err
    assert main([*args, "--strategy", "du", "--sigma", "1.4"]) == 2
    assert "--sigma: expected a value in [0, 1], got 1.4" in capsys.readouterr().err
    assert main([*args, "--strategy", "ds", "--task", "dcase", "--sigma-ds", "0.5"]) == 2
    assert "--task: expected esc50, us8k or tut17, got 'dcase'" in capsys.readouterr().err
    job = tmp_path / "job"
    job.mkdir()
    (job / "config.json").write_text("{}")
    assert main(["eval", "--checkpoint", str(job)]) == 2
    assert "config.json: has no 'data' section" in capsys.readouterr().err
    (job / "config.json").write_text('{"data": {}, "frontend": {}, "model": {}}')
    assert main(["eval", "--checkpoint", str(job), "--tasks", "esc50", "dcase"]) == 2
    assert "--tasks: unknown task dcase" in capsys.readouterr().err
    (job / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="model.pt: .*not a PyTorch checkpoint file"):
        load_weights(torch.nn.Linear(1, 1), job / "model.pt")
    nodata = {"root": str(tmp_path / "none")}
    assert main(["train", "--config", _job(tmp_path / "n.yaml", out=str(job), data=nodata)]) == 2
    assert "data.root: " in capsys.readouterr().err


def test_version_flag_prints_the_installed_version(capsys, monkeypatch):
    import importlib.metadata

    from clapsweep import __version__, cli, version

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"clapsweep {importlib.metadata.version('clapsweep')}\n"

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert version() == __version__
